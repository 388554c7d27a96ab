#!/usr/bin/env python3
"""Export LineSight's report data to a file, with a user's API token (reports permission).

    python docs/examples/export.py --url http://127.0.0.1:8000 --token "$API_TOKEN" \\
        --format xlsx --from 2026-03-01 --to 2026-03-31 --plant P1
    python docs/examples/export.py --url ... --token ... --format csv --line L1 -o march.csv
    python docs/examples/export.py --url ... --token ... --direct --station ST1   # small CSV

The export runs on the server's task worker: the script starts it
(``POST /api/v1/exports/``), polls its state until it is done, then downloads
the file with the same token. ``--direct`` skips the job for a small CSV
(``GET /api/v1/exports/csv/``); the server refuses one too large to stream
and says to start an export instead. Filters left out mean all; ``--to``
defaults to today and ``--from`` to six days before it.

Prints where the file went and exits 0, or prints the server's reason and exits 1
(failed export) or 2 (refused request). Needs only ``requests``.
"""

import argparse
import sys
import time
from pathlib import Path

import requests

FILTERS = ("from", "to", "plant", "line", "station", "product", "model_version", "shift")
BLOCK_BYTES = 1024 * 1024


class Refused(Exception):
    """The server refused a request; the message is its one-sentence reason."""


class ExportFailed(Exception):
    """The export failed, was cancelled, or did not finish in time."""


def call(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    """A request, sent again after ``Retry-After`` while the server answers 503."""
    for _ in range(10):
        response = session.request(method, url, timeout=60, **kwargs)
        if response.status_code != 503:
            break
        time.sleep(min(float(response.headers.get("Retry-After", "5")), 60))
    if response.status_code >= 400:
        try:
            reason = response.json().get("detail", response.text)
        except ValueError:
            reason = response.text[:200]
        raise Refused(f"HTTP {response.status_code}: {reason}")
    return response


def start_export(session: requests.Session, url: str, file_format: str, filters: dict) -> dict:
    """Queue the export; returns its state (``id``, ``state``, ``url``, ...)."""
    body = {"format": file_format, **filters}
    return call(session, "POST", f"{url}/api/v1/exports/", json=body).json()


def wait_until_done(session: requests.Session, export: dict, *, poll: float, timeout: float):
    """Poll the export's state until it is done; raises ExportFailed if it fails or times out."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        export = call(session, "GET", export["url"]).json()
        if export["state"] == "done":
            return export
        if export["state"] in ("failed", "cancelled"):
            raise ExportFailed(
                f"The export {export['state']}: {export['error'] or export['message']}"
            )
        progress = f"{export['state']} {export['progress']:.0%} {export['message']}".strip()
        if progress != last:
            print(progress, file=sys.stderr)
            last = progress
        if time.monotonic() > deadline:
            raise ExportFailed(f"The export is still {export['state']} after {timeout:g} s.")
        time.sleep(poll)


def download(session: requests.Session, url: str, params: dict, target: Path | None) -> Path:
    """Stream the file at ``url`` to ``target`` (default: the server's file name)."""
    with call(session, "GET", url, params=params, stream=True) as response:
        if target is None:
            disposition = response.headers.get("Content-Disposition", "")
            target = Path(disposition.partition('filename="')[2].rstrip('"') or "export")
        with open(target, "wb") as file:
            for block in response.iter_content(BLOCK_BYTES):
                file.write(block)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="LineSight's base URL")
    parser.add_argument("--token", required=True, help="your API token")
    parser.add_argument("--format", choices=("xlsx", "csv"), default="xlsx")
    parser.add_argument("--direct", action="store_true", help="stream a small CSV, no job")
    parser.add_argument("-o", "--output", type=Path, help="file to write (default: its name)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait at most")
    for name in FILTERS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"report filter {name}")
    args = parser.parse_args(argv)
    filters = {name: getattr(args, name) for name in FILTERS if getattr(args, name) is not None}

    session = requests.Session()
    session.headers["Authorization"] = f"Token {args.token}"
    url = args.url.rstrip("/")
    try:
        if args.direct:
            path = download(session, f"{url}/api/v1/exports/csv/", filters, args.output)
        else:
            export = start_export(session, url, args.format, filters)
            print(f"Export {export['id']} queued", file=sys.stderr)
            export = wait_until_done(session, export, poll=args.poll, timeout=args.timeout)
            path = download(session, export["download_url"], {}, args.output)
            print(f"{export['row_count']} rows", file=sys.stderr)
    except ExportFailed as failed:
        print(failed, file=sys.stderr)
        return 1
    except Refused as refused:
        print(refused, file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
