"""Issue or revoke a station's device token from the shell, for provisioning scripts."""

import difflib

from django.core.management.base import BaseCommand, CommandError

from masterdata.models import Station
from masterdata.services import station_token_revoke, station_token_rotate


class Command(BaseCommand):
    help = (
        "Issue a new device token for a station and print only the token on stdout "
        "(the previous token stops working). With --revoke, remove the token instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("station_code", help="Code of the station, e.g. L1-CAP.")
        parser.add_argument(
            "--revoke",
            action="store_true",
            help="Remove the station's token: its device is refused until a new one is issued.",
        )

    def handle(self, *args, station_code: str, revoke: bool, **options) -> None:
        station = Station.objects.filter(code=station_code).first()
        if station is None:
            raise CommandError(self._unknown(station_code))
        if revoke:
            station_token_revoke(station=station)
            self.stderr.write(
                f"Revoked the device token of station {station.code}; its device is refused "
                "until a new token is issued."
            )
            return
        token = station_token_rotate(station=station)
        if not station.active:
            self.stderr.write(
                f"Station {station.code} is inactive: the API refuses it until it is activated."
            )
        self.stdout.write(token)

    @staticmethod
    def _unknown(code: str) -> str:
        message = f"No station has the code '{code}'."
        codes = list(Station.objects.values_list("code", flat=True))
        close = difflib.get_close_matches(code, codes, n=3)
        if close:
            message += f" Did you mean {', '.join(close)}?"
        return message
