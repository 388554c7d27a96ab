"""Talking to the plant: verdicts, decisions, deployments and jobs out over MQTT and webhooks."""
