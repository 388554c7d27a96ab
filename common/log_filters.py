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
