"""Apply every plant's retention policy now, or show what it would remove (--dry-run)."""

from django.core.management.base import BaseCommand, CommandError

from inspection.retention import retention_apply
from masterdata.models import Plant


class Command(BaseCommand):
    help = (
        "Remove the images and rows each plant's retention policy no longer keeps (in "
        "batches; frames waiting for review or in a dataset snapshot are never touched). "
        "The task worker runs it every LINESIGHT_RETENTION_INTERVAL_SECONDS."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be removed; change nothing."
        )
        parser.add_argument(
            "--plant", action="append", default=[], help="Only this plant (code); repeatable."
        )

    def handle(self, *args, **options):
        plants = None
        if options["plant"]:
            plants = list(Plant.objects.filter(code__in=options["plant"]).order_by("code"))
            unknown = set(options["plant"]) - {plant.code for plant in plants}
            if unknown:
                raise CommandError(f"No plant {', '.join(sorted(unknown))}.")
        report = retention_apply(dry_run=options["dry_run"], plants=plants)
        verb = "would remove" if report.dry_run else "removed"
        for plant in report.plants:
            if plant.skipped:
                self.stdout.write(f"{plant.plant}: skipped ({plant.skipped})")
                continue
            self.stdout.write(
                f"{plant.plant}: {verb} {plant.passes_images} pass image(s), "
                f"{plant.kept_images} other image(s), {plant.rows} row(s), "
                f"{plant.bytes_freed:,} bytes"
                + (f"; {plant.file_errors} file(s) refused by storage" if plant.file_errors else "")
            )
        self.stdout.write(f"({report.seconds:.1f} s)")
