"""``manage.py seed_demo``: load the demo plant, users and model (safe to run again)."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from demo.seed import DemoError, DemoSeed, seed_demo


class Command(BaseCommand):
    help = (
        "Create the demo plant, line L1 with two stations, products, defect types, the users "
        "engineer, inspector and viewer, and the demo model (trained once, cached, validated, "
        "mapped and deployed). Running it again changes nothing: the station tokens printed are "
        "the ones the simulated cameras already use, unless --rotate-tokens."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json", action="store_true", help="print what was created as JSON, for scripts"
        )
        parser.add_argument(
            "--model-zip",
            type=Path,
            help="register this SavedModel zip as the demo model instead of training one",
        )
        parser.add_argument(
            "--no-model", action="store_true", help="master data and users only, no model"
        )
        parser.add_argument(
            "--frames", type=Path, metavar="DIR", help="also write the simulated stations' frames"
        )
        parser.add_argument(
            "--rotate-tokens",
            action="store_true",
            help="issue new station device tokens; the previous ones (and the devices or "
            "simulators using them) are refused from then on",
        )

    def handle(self, *args, **options) -> None:
        as_json = options["json"]
        # With --json, stdout carries the JSON only; progress goes to stderr.
        progress = self.stderr if as_json else self.stdout
        try:
            seed = seed_demo(
                model_zip=options["model_zip"],
                with_model=not options["no_model"],
                frames_dir=options["frames"],
                rotate_tokens=options["rotate_tokens"],
                log=progress.write,
            )
        except DemoError as exc:
            raise CommandError(str(exc)) from exc
        if as_json:
            self.stdout.write(json.dumps(seed.as_json(), indent=2))
        else:
            self._print(seed)

    def _print(self, seed: DemoSeed) -> None:
        write = self.stdout.write
        if seed.created:
            write("Created: " + ", ".join(seed.created) + ".")
        else:
            write("The demo was already loaded; nothing created.")
        write("")
        write("Logins (change them in admin or with manage.py changepassword):")
        for user in seed.users:
            password = user.password or "(not shown: changed since, or not set by seed_demo)"
            write(f"  {user.username:<10} {password:<16} {user.role}")
            if user.api_token:
                write(f"  {'':<10} API token: {user.api_token}")
        if seed.model is not None:
            accuracy = (seed.training or {}).get("accuracy")
            figure = f", {accuracy:.1%} on unseen frames" if accuracy is not None else ""
            write(f"Model: {seed.model} ({seed.model.get_status_display().lower()}{figure})")
        write("Station device tokens (kept across runs; --rotate-tokens issues new ones):")
        for station in seed.stations:
            write(f"  {station.code:<10} line {station.line}: {station.token}")
        if seed.frames_dir is not None:
            write(f"Frames for the simulated stations: {seed.frames} in {seed.frames_dir}")
