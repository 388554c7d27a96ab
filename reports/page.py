"""What the reports page shows: its tables, chart series and filter choices, from the selectors.

The view only renders this context; the page's columns are the workbook's.
"""

from django.utils.http import urlencode

from masterdata.models import Line, Plant, Product, Shift, Station
from models_registry.models import ModelVersion, version_label
from reports import exports, figures, selectors
from reports.filters import ReportFilters

VOLUME_TABLES = (
    ("day", "By day"),
    ("shift", "By shift"),
    ("line", "By line"),
    ("station", "By station"),
    ("product", "By product"),
)


def filter_choices() -> dict:
    """Choices for the filter form."""
    versions = ModelVersion.objects.order_by("model__name", "number")
    return {
        "plants": Plant.objects.values_list("code", flat=True),
        "lines": Line.objects.values_list("code", flat=True),
        "stations": Station.objects.values_list("code", flat=True),
        "products": Product.objects.values_list("sku", flat=True),
        "model_versions": [
            version_label(name, number)
            for name, number in versions.values_list("model__name", "number")
        ],
        "shift_names": Shift.objects.order_by("name").values_list("name", flat=True).distinct(),
    }


def report_context(filters: ReportFilters) -> dict:
    """Every table of the page, one query each, and the data its charts draw."""
    daily = selectors.volume(filters, by="day")
    pareto = selectors.pareto(filters)
    versions = selectors.model_versions(filters)
    agreement = selectors.agreement_by_day(filters)
    for version in versions:
        version["heat"] = heat_rows(version)
    return {
        "filters": filters,
        "query": urlencode(filters.as_params()),
        "rollups": rollup_note(filters),
        "totals": selectors.totals(filters),
        "tables": [
            {
                "id": by,
                "title": title,
                "columns": exports.DIMENSION_COLUMNS[by] + exports.VOLUME_COLUMNS,
                "rows": daily if by == "day" else selectors.volume(filters, by=by),
            }
            for by, title in VOLUME_TABLES
        ],
        "volume_columns": exports.VOLUME_COLUMNS,
        "pareto": pareto,
        "pareto_columns": exports.PARETO_COLUMNS,
        "versions": versions,
        "version_columns": exports.VERSION_COLUMNS,
        "lab": selectors.lab_against_line(versions),
        "lab_columns": exports.LAB_COLUMNS,
        "precision_columns": exports.PRECISION_COLUMNS[1:],
        "agreement": agreement,
        "agreement_columns": exports.AGREEMENT_COLUMNS,
        "inspectors": selectors.inspectors(filters),
        "inspector_columns": exports.INSPECTOR_COLUMNS,
        "definitions": figures.DEFINITIONS,
        "chart_data": chart_data(filters, daily, pareto, agreement),
    }


def rollup_note(filters: ReportFilters) -> dict:
    """How current the rollups behind the figures are, for the line above the totals."""
    status = selectors.rollup_status(filters)
    mark = status["rolled_up_to"]
    return {
        **status,
        "up_to": mark.astimezone(filters.time_zone).strftime("%Y-%m-%d %H:%M") if mark else None,
        "lag_minutes": round(status["lag_seconds"] / 60) if mark else None,
    }


def chart_data(
    filters: ReportFilters, daily: list[dict], pareto: list[dict], agreement: list[dict]
) -> dict:
    """The series the page's charts draw, from the rows of its tables."""
    return {
        "daily": {
            "labels": [row["date"].isoformat() for row in daily],
            "defect_rate": [row["defect_rate"] for row in daily],
            "first_pass_yield": [row["first_pass_yield"] for row in daily],
            # Under two days with frames a line has nothing to join: the chart draws bars.
            "days_with_frames": sum(1 for row in daily if row["frames"]),
        },
        "pareto": {
            "labels": [row["defect_type"] for row in pareto],
            "confirmed": [row["confirmed"] for row in pareto],
            "cumulative_share": [row["cumulative_share"] for row in pareto],
        },
        "agreement": agreement_series(filters, agreement),
    }


def agreement_series(filters: ReportFilters, agreement: list[dict]) -> dict:
    """Agreement per version on every day of the period; None where it had no verified frame."""
    labels = [day.isoformat() for day in filters.days]
    series: dict[str, dict[str, float | None]] = {}
    for row in agreement:
        by_day = series.setdefault(row["model_version"], dict.fromkeys(labels))
        by_day[row["date"].isoformat()] = row["agreement"]
    return {
        "labels": labels,
        "versions": {name: list(by_day.values()) for name, by_day in series.items()},
    }


def heat_rows(version: dict) -> list[dict]:
    """The confusion matrix with each cell's share of its row, to shade the heat map."""
    names = [label or "no defect" for label in version["labels"]]
    rows = []
    for name, counts in zip(names, version["matrix"], strict=True):
        total = sum(counts)
        rows.append(
            {
                "label": name,
                "cells": [
                    {
                        "column": column,
                        "count": count,
                        "heat": f"{count / total:.2f}" if total else "0",
                        "hot": bool(total) and count / total >= 0.6,
                        "diagonal": column == name,
                    }
                    for column, count in zip(names, counts, strict=True)
                ],
            }
        )
    return rows
