"""Datasets of labelled photographs: import, splits and immutable snapshots."""
