#!/usr/bin/env python3
"""Set up a plant with nothing but API calls: plant, shifts, line, stations, products, defects.

    python docs/examples/setup_plant.py --url http://127.0.0.1:8000 --token "$API_TOKEN"

The token is a Quality engineer's user API token (menu *API token*). Edit
PLANT below for your own plant. Running it again changes what differs and
creates what is missing (rows are looked up by code, products by SKU); it
never deletes. A new station's device token is printed once, as
``device token <station> <token>``: give it to the camera, it is not shown
again (``POST /api/v1/stations/{code}/rotate-token/`` issues a new one).

Exits 0, or prints the server's reason and exits 2. Needs only ``requests``.
"""

import argparse
import sys
import time

import requests

PLANT = {
    "plant": {"code": "LYON", "name": "Lyon yogurts", "time_zone": "Europe/Paris"},
    "shifts": [
        {"name": "morning", "start": "06:00", "end": "14:00"},
        {"name": "afternoon", "start": "14:00", "end": "22:00"},
        {"name": "night", "start": "22:00", "end": "06:00"},
    ],
    "lines": [{"code": "L1", "name": "Cups 125 g"}],
    "stations": [
        {"code": "L1-CAP", "line": "L1", "description": "Camera over the capper"},
        {"code": "L1-LABEL", "line": "L1", "description": "Camera at the labeller"},
    ],
    "products": [{"sku": "YOG-125", "name": "Yogurt 125 g", "lines": ["L1"]}],
    "defect_types": [
        {"code": "missing_cap", "name": "Missing cap", "severity": "critical"},
        {"code": "crack", "name": "Cracked cup", "severity": "major"},
    ],
}


class Refused(Exception):
    """The server refused a request; the message is its one-sentence reason."""


def call(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    """A request, sent again after ``Retry-After`` while the server answers 503."""
    for _ in range(10):
        response = session.request(method, url, timeout=60, **kwargs)
        if response.status_code != 503:
            break
        time.sleep(min(float(response.headers.get("Retry-After", "5")), 60))
    if response.status_code >= 400 and response.status_code != 404:
        try:
            reason = response.json().get("detail", response.text)
        except ValueError:
            reason = response.text[:200]
        raise Refused(f"{method} {url}: HTTP {response.status_code}: {reason}")
    return response


def ensure(session: requests.Session, collection: str, key: str, fields: dict) -> tuple[dict, bool]:
    """Create the row, or change it to ``fields`` if it exists; returns (row, created)."""
    found = call(session, "GET", f"{collection}{fields[key]}/")
    if found.status_code == 404:
        return call(session, "POST", collection, json=fields).json(), True
    changes = {name: value for name, value in fields.items() if found.json().get(name) != value}
    if not changes:
        return found.json(), False
    return call(session, "PATCH", f"{collection}{fields[key]}/", json=changes).json(), False


def set_up(url: str, token: str, plant: dict = PLANT) -> dict[str, str]:
    """Create or update everything in ``plant``; returns the new stations' device tokens."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    api = f"{url.rstrip('/')}/api/v1"
    code = plant["plant"]["code"]
    ensure(session, f"{api}/plants/", "code", plant["plant"])
    for shift in plant["shifts"]:
        ensure(session, f"{api}/plants/{code}/shifts/", "name", shift)
    for line in plant["lines"]:
        ensure(session, f"{api}/lines/", "code", {**line, "plant": code})
    tokens = {}
    for station in plant["stations"]:
        row, created = ensure(session, f"{api}/stations/", "code", station)
        if created:
            tokens[station["code"]] = row["token"]  # shown this once
    for product in plant["products"]:
        ensure(session, f"{api}/products/", "sku", product)
    for defect_type in plant["defect_types"]:
        ensure(session, f"{api}/defect-types/", "code", defect_type)
    return tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="LineSight's address, e.g. http://host:8000")
    parser.add_argument("--token", required=True, help="A Quality engineer's user API token.")
    args = parser.parse_args(argv)
    try:
        tokens = set_up(args.url, args.token)
    except Refused as refused:
        print(refused, file=sys.stderr)
        return 2
    print(f"Plant {PLANT['plant']['code']} is set up.")
    for station, token in tokens.items():
        print(f"device token {station} {token}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
