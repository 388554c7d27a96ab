"""One way to write numbers and dates on every page: ``{% load linesight_format %}``.

Confidences and rates as percentages, durations in ms or s, byte sizes, dates
in the site's time zone, small differences with two significant digits. A
missing value is an em dash everywhere. static/inspection/live.js (LS.pct,
LS.ms, LS.time) writes the same shapes for what the dashboards update live.
"""

import math
from datetime import date, datetime

from django import template
from django.utils import timezone

register = template.Library()

MISSING = "—"
BYTE_UNITS = ("bytes", "KB", "MB", "GB", "TB")


def _number(value) -> float | None:
    """The value as a finite float, or None for a missing or unreadable one."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@register.filter
def percent(value, digits: int = 1) -> str:
    """0.9734 -> "97.3 %": a confidence, threshold or rate given as a fraction of 1."""
    number = _number(value)
    if number is None:
        return MISSING
    text = f"{number * 100:.{int(digits)}f}"
    if "." in text:  # 80.0 % reads as 80 %
        text = text.rstrip("0").rstrip(".")
    return f"{text} %"


@register.filter
def ms(value) -> str:
    """0.0042 -> "0.0042 ms", 0.678155 -> "0.68 ms", 14.23 -> "14.2 ms", 1234.5 -> "1,235 ms"."""
    number = _number(value)
    if number is None:
        return MISSING
    if abs(number) < 0.001:
        return "0 ms" if number == 0 else "< 0.001 ms"
    if abs(number) < 1:
        return f"{number:.2g} ms"  # two significant digits: a tiny model's microseconds show
    if abs(number) < 10:
        return f"{number:.2f} ms"
    if abs(number) < 100:
        return f"{number:.1f} ms"
    return f"{number:,.0f} ms"


@register.filter
def seconds(value) -> str:
    """A duration given in seconds: "0.42 s", "12.3 s", "2 min 05 s"."""
    number = _number(value)
    if number is None:
        return MISSING
    if number < 10:
        return f"{number:.2f} s"
    if number < 60:
        return f"{number:.1f} s"
    minutes, rest = divmod(round(number), 60)
    return f"{minutes} min {rest:02d} s"


@register.filter
def bytesize(value) -> str:
    """16234567 -> "15.5 MB" (powers of 1024, as file managers show them)."""
    number = _number(value)
    if number is None:
        return MISSING
    unit = 0
    while abs(number) >= 1024 and unit < len(BYTE_UNITS) - 1:
        number /= 1024
        unit += 1
    if unit == 0:
        return f"{number:,.0f} bytes"
    return f"{number:.1f} {BYTE_UNITS[unit]}"


@register.filter
def sig(value, digits: int = 2) -> str:
    """A small difference or score with ``digits`` significant digits: 3.1e-07, 0.0012."""
    number = _number(value)
    if number is None:
        return MISSING
    return f"{number:.{int(digits)}g}"


@register.filter
def when(value, precision: str = "minutes") -> str:
    """A date-time in the site's time zone: "2026-12-01 14:34" (or with ":05" seconds)."""
    if not isinstance(value, (datetime, date)):
        return MISSING
    if not isinstance(value, datetime):
        return value.strftime("%Y-%m-%d")
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    pattern = "%Y-%m-%d %H:%M:%S" if precision == "seconds" else "%Y-%m-%d %H:%M"
    return value.strftime(pattern)
