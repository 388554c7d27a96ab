"""`export_report --from ... --to ... [--line ...] --out file.xlsx`, for scheduled reports."""

import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from reports.exports import write_workbook
from reports.filters import ReportFilterError, report_filters


class Command(BaseCommand):
    help = "Write the report workbook for a period (and optional filters) to an .xlsx file."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="from", required=True, help="First date, YYYY-MM-DD.")
        parser.add_argument("--to", dest="to", required=True, help="Last date, YYYY-MM-DD.")
        for name, what in (
            ("plant", "plant code"),
            ("line", "line code"),
            ("station", "station code"),
            ("product", "product SKU"),
            ("model-version", "'name:number'"),
            ("shift", "shift name"),
        ):
            parser.add_argument(f"--{name}", dest=name.replace("-", "_"), help=f"Only this {what}.")
        parser.add_argument("--out", required=True, help="The .xlsx file to write.")

    def handle(self, *args, **options) -> None:
        params = {
            key: options[key]
            for key in (
                "from",
                "to",
                "plant",
                "line",
                "station",
                "product",
                "model_version",
                "shift",
            )
            if options.get(key)
        }
        try:
            filters = report_filters(params)
        except ReportFilterError as error:
            raise CommandError(error.message) from None
        out = Path(options["out"])
        if out.suffix.lower() != ".xlsx":
            raise CommandError(f"--out must name an .xlsx file, not '{out}'.")
        if not out.parent.is_dir():
            raise CommandError(f"The folder '{out.parent}' does not exist.")
        # Write next to the target and rename: a failed export leaves no half-written file.
        handle, partial = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                rows = write_workbook(filters, stream)
            os.replace(partial, out)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        self.stdout.write(
            f"Wrote {out} ({rows} rows) for {filters.date_from} to {filters.date_to}."
        )
