"""The three roles of the product, as Django groups (created by a migration)."""

QUALITY_ENGINEERS = "Quality engineers"
INSPECTORS = "Inspectors"
VIEWERS = "Viewers"

ALL_ROLES = (QUALITY_ENGINEERS, INSPECTORS, VIEWERS)
