from django.db import models


class VersionStatus(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"
    VALIDATING = "validating", "Validating"
    READY = "ready", "Ready"
    INVALID = "invalid", "Invalid"


class ArtifactFormat(models.TextChoices):
    SAVEDMODEL_ZIP = "savedmodel_zip", "SavedModel (.zip)"
    SAVEDMODEL_TAR = "savedmodel_tar", "SavedModel (.tar.gz)"
    KERAS = "keras", "Keras (.keras)"


class ServingRuntime(models.TextChoices):
    TFLITE = "tflite", "TFLite (LiteRT)"
    SAVEDMODEL = "savedmodel", "SavedModel (TensorFlow)"


class ResizeMode(models.TextChoices):
    STRETCH = "stretch", "Stretch to the input size"
    LETTERBOX = "letterbox", "Fit inside, pad with black"
    CENTER_CROP = "center_crop", "Scale to cover, crop the centre"


class ResizeInterpolation(models.TextChoices):
    """How pixels are resampled to the input size; values as in common.preprocessing."""

    BILINEAR = "bilinear", "Bilinear, antialiased (Pillow; tf.image.resize antialias=True)"
    BILINEAR_TF = "bilinear_tf", "Bilinear, no antialiasing (tf.image.resize and Keras default)"
    AREA = "area", "Area average (Pillow box; tf.image.resize method='area')"


class ValueScale(models.TextChoices):
    UNIT = "0_1", "0..1"
    SYMMETRIC = "-1_1", "-1..1"
    RAW = "0_255", "0..255"


class ColorMode(models.TextChoices):
    RGB = "rgb", "RGB"
    GRAYSCALE = "grayscale", "Greyscale"


class DeploymentAction(models.TextChoices):
    ACTIVATE = "activate", "Activate"
    ROLLBACK = "rollback", "Rollback"
    DEACTIVATE = "deactivate", "Deactivate"
