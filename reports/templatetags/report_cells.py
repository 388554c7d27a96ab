"""Show a report value the way its column is formatted in the workbook."""

import datetime as dt

from django import template

register = template.Library()


@register.filter
def cell(row: dict, column) -> str:
    """``row[column.key]`` as text: percentages with one decimal, empty values as a dash."""
    value = row.get(column.key)
    if value is None:
        return "—"
    if column.number_format and column.number_format.endswith("%"):
        return f"{value * 100:.1f} %"
    if column.number_format == "0.00":
        return f"{value:.2f}"
    if column.number_format == "0.0":
        return f"{value:.1f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


@register.filter
def raw(row: dict, column) -> str:
    """The exact value, for ``data-value`` attributes scripts and tests can read."""
    value = row.get(column.key)
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(value)


@register.filter
def definition(key: str) -> str:
    """What a figure means, from reports.figures."""
    from reports.figures import DEFINITIONS

    return DEFINITIONS.get(key, ("", ""))[1]


@register.filter
def is_text(row: dict, column) -> bool:
    """Text reads left-aligned, numbers right-aligned."""
    value = row.get(column.key)
    return isinstance(value, str) or (value is None and not column.number_format)
