"""`rollups_rebuild [--from YYYY-MM-DD] [--to YYYY-MM-DD]`: recompute report rollups from raw rows.

After a restore, a bulk import or a change to how figures are counted. One
transaction per capture day; the reports stay exact meanwhile (a day is either
its old rollups or its new ones). Days whose rows retention may have deleted
keep their rollups.
"""

import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inspection.retention import rows_kept_since
from reports.filters import ReportDateField
from reports.rollups import rollups_rebuild


def _date(value: str | None, name: str):
    if value is None:
        return None
    try:
        return ReportDateField().clean(value)
    except ValidationError as error:
        raise CommandError(f"--{name} ({value}): {error.messages[0]}") from None


class Command(BaseCommand):
    help = "Recompute the report rollups of a range of capture days (default: every day)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from", dest="from", help="First capture date, YYYY-MM-DD.")
        parser.add_argument("--to", dest="to", help="Last capture date, YYYY-MM-DD.")

    def handle(self, *args, **options) -> None:
        date_from = _date(options["from"], "from")
        date_to = _date(options["to"], "to")
        if date_from and date_to and date_from > date_to:
            raise CommandError(f"--from ({date_from}) is after --to ({date_to}).")
        kept_since = rows_kept_since()
        if kept_since is not None and (date_from is None or date_from < kept_since):
            self.stdout.write(
                f"Days before {kept_since} keep their rollups: retention deletes rows older "
                "than a plant's rows_days, so the rows left there no longer add up to them."
            )
            date_from = kept_since
        started = time.monotonic()
        days = rows = 0
        for day, written in rollups_rebuild(date_from=date_from, date_to=date_to):
            days += 1
            rows += written
            if options["verbosity"] > 1:
                self.stdout.write(f"{day}: {written} rollup rows")
        self.stdout.write(
            f"Rebuilt {days} day(s): {rows} rollup rows in {time.monotonic() - started:.1f} s."
        )
