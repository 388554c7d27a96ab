"""Webhooks: signed HTTP deliveries of the outbox's events to the plant's systems.

``fanout`` turns outbox messages into deliveries for the matching
subscriptions; ``delivery`` posts them on the task queue "webhooks" in order
per (subscription, station), retried with backoff; ``services`` is what
admin and the API call.
"""
