"""Training model versions from dataset snapshots: recipes, the training job, its process.

``worker`` runs as a separate, limited process and imports nothing from
Django; this package's ``__init__`` stays import-free so it can start
without Django.
"""
