"""MQTT: the outbox's events published to the plant's broker (topics, client, sender)."""
