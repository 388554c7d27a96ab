"""Find and clean orphan frame files, rows without their file, and stuck validations."""

from django.core.management.base import BaseCommand

from inspection.orphans import orphans_sweep


class Command(BaseCommand):
    help = (
        "Delete frame files no inspection names, clear the image of inspections whose file "
        "is gone, and fail versions stuck in 'validating' (all older than "
        "LINESIGHT_ORPHAN_GRACE_SECONDS). The task worker runs it periodically."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be cleaned; change nothing."
        )
        parser.add_argument(
            "--grace",
            type=int,
            default=None,
            help="Seconds a file or row must be old to count (default: the setting).",
        )

        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Only the frames of the last N days (default: every frame).",
        )

    def handle(self, *args, **options):
        report = orphans_sweep(
            dry_run=options["dry_run"], grace_seconds=options["grace"], days=options["days"]
        )
        self.stdout.write(report.summary() + ("" if report.dry_run else "."))
        for name in report.files_sample:
            self.stdout.write(f"  file without a row: {name}")
        for pk in report.rows_sample:
            self.stdout.write(f"  frame #{pk} without its file")
        for pk in report.versions:
            self.stdout.write(f"  model version id {pk} stuck in 'validating'")
