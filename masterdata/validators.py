from django.core.validators import RegexValidator

# Codes appear in URLs, channel group names, file paths and spreadsheets, so
# they stay plain: letters, digits, '-', '_' and '.'.
code_validator = RegexValidator(
    regex=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$",
    message="Use 1-50 letters, digits, '.', '-' or '_', starting with a letter or digit.",
)
