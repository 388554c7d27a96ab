from django.db import models


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VALIDATION = "validation", "Validation"
    TEST = "test", "Test"
    UNASSIGNED = "unassigned", "Unassigned"


class ImageSource(models.TextChoices):
    UPLOAD = "upload", "Uploaded archive"
    INSPECTION = "inspection", "Verified inspection"
