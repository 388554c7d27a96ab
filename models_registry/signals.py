"""Signals other apps listen to (the registry may not import them)."""

from django.dispatch import Signal

# Sent after the transaction that changed which deployment serves a station
# commits. Arguments: station (Station), deployment (Deployment | None).
deployment_changed = Signal()
