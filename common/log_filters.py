"""Logging filters named in settings.LOGGING."""

import logging


class ForbiddenInOneLine(logging.Filter):
    """Drop the traceback Django attaches to "Forbidden (Permission denied)" warnings.

    A 403 is a person opening a page their role does not include: the request
    line says all there is to say, and a 30-line traceback per click buries
    real faults in the console.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True


class RefusalAsWarning(logging.Filter):
    """Log a 503 answer as a WARNING, not an ERROR.

    Every 503 this product gives is a deliberate refusal with ``Retry-After``
    (database restarting, model not loaded yet, storage full, too many frames
    in flight) that the device retries; the cause is logged once where it is
    found. An ERROR per refused frame would page the plant's IT for each retry.
    A 500 stays an ERROR with its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "django.request" and getattr(record, "status_code", None) == 503:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        return True
