#!/usr/bin/env python3
"""Upload a model version with its preprocessing, wait for validation, map labels, deploy.

    python docs/examples/upload_and_deploy.py --url http://127.0.0.1:8000 --token "$API_TOKEN" \\
        --model bottle --artifact export.zip --labels ok,missing_cap,crack \\
        --resize-mode letterbox --value-scale 0_1 --color-mode rgb \\
        --map ok= --map missing_cap=missing_cap --map crack=crack \\
        --station L1-CAP --confidence 0.8

The token is a Quality engineer's user API token. The artifact is a SavedModel
directory zipped (.zip, .tar.gz; what ``model.export()`` writes) or a ``.keras``
file. The steps, each one API call:

1. ``POST /api/v1/models/`` when the model does not exist yet;
2. ``POST /api/v1/models/{model}/versions/`` (multipart) with the labels and the
   declared preprocessing: the version is ``uploaded`` and its validation queued;
3. ``GET`` the version until its ``status`` is ``ready`` (or ``invalid``: the
   reason says what to fix) — the task worker validates it;
4. ``PUT .../mapping/``: each label to a defect type code, or to nothing
   (``--map ok=``) for "no defect";
5. ``POST /api/v1/deployments/``: the station's next frame is judged by it.

Prints the deployment and exits 0; exits 1 when validation fails or times
out, 2 when the server refuses a request. Needs only ``requests``.
"""

import argparse
import sys
import time
from pathlib import Path

import requests


class Refused(Exception):
    """The server refused a request; the message is its one-sentence reason."""


class Invalid(Exception):
    """Validation refused the version, or did not finish in time."""


def call(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    """A request, sent again after ``Retry-After`` while the server answers 503."""
    for _ in range(10):
        response = session.request(method, url, timeout=120, **kwargs)
        if response.status_code != 503:
            break
        time.sleep(min(float(response.headers.get("Retry-After", "5")), 60))
    if response.status_code >= 400:
        try:
            reason = response.json().get("detail", response.text)
        except ValueError:
            reason = response.text[:200]
        raise Refused(f"{method} {url}: HTTP {response.status_code}: {reason}")
    return response


def upload(session, api: str, model: str, artifact: Path, labels: list[str], prep: dict) -> dict:
    """The model (created if new) gets its next version; returns the version as uploaded."""
    if session.get(f"{api}/models/{model}/", timeout=60).status_code == 404:
        call(session, "POST", f"{api}/models/", json={"name": model})
    with artifact.open("rb") as handle:
        return call(
            session,
            "POST",
            f"{api}/models/{model}/versions/",
            data={"labels": "\n".join(labels), **prep},
            files={"artifact": (artifact.name, handle)},
        ).json()


def wait_until_validated(session, version: dict, *, poll: float, timeout: float) -> dict:
    """Poll the version until it is ready; raises Invalid with the reason otherwise."""
    deadline = time.monotonic() + timeout
    while version["status"] in ("uploaded", "validating"):
        if time.monotonic() > deadline:
            raise Invalid(f"Still {version['status']} after {timeout:g} s; is a worker running?")
        time.sleep(poll)
        version = call(session, "GET", version["url"]).json()
    if version["status"] != "ready":
        raise Invalid(
            f"{version['model']} v{version['number']} is invalid: {version['status_reason']}"
        )
    return version


def upload_and_deploy(url: str, token: str, args: argparse.Namespace) -> dict:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    api = f"{url.rstrip('/')}/api/v1"
    prep = {
        "resize_mode": args.resize_mode,
        "value_scale": args.value_scale,
        "color_mode": args.color_mode,
        "resize_interpolation": args.interpolation,
    }
    version = upload(session, api, args.model, Path(args.artifact), args.labels, prep)
    print(f"Uploaded {args.model} v{version['number']}; validating…", file=sys.stderr)
    version = wait_until_validated(session, version, poll=args.poll, timeout=args.timeout)
    print(f"Ready: serves through {version['serving']['runtime']}.", file=sys.stderr)
    mapping = {label: code or None for label, code in args.map}
    call(session, "PUT", f"{version['url']}mapping/", json={"mapping": mapping})
    return call(
        session,
        "POST",
        f"{api}/deployments/",
        json={
            "station": args.station,
            "model": args.model,
            "version": version["number"],
            "confidence_threshold": args.confidence,
        },
    ).json()


def label_mapping(text: str) -> tuple[str, str]:
    label, sep, code = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("Write LABEL=DEFECT_CODE, or LABEL= for no defect.")
    return label, code


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="LineSight's address, e.g. http://host:8000")
    parser.add_argument("--token", required=True, help="A Quality engineer's user API token.")
    parser.add_argument("--model", required=True, help="Model name (created when new).")
    parser.add_argument("--artifact", required=True, help="SavedModel .zip/.tar.gz or .keras.")
    parser.add_argument(
        "--labels",
        required=True,
        type=lambda text: text.split(","),
        help="Output labels in output order, comma-separated.",
    )
    parser.add_argument(
        "--resize-mode", default="stretch", choices=["stretch", "letterbox", "center_crop"]
    )
    parser.add_argument("--value-scale", default="0_1", choices=["0_1", "-1_1", "0_255"])
    parser.add_argument("--color-mode", default="rgb", choices=["rgb", "grayscale"])
    parser.add_argument(
        "--interpolation", default="bilinear", choices=["bilinear", "bilinear_tf", "area"]
    )
    parser.add_argument(
        "--map",
        action="append",
        type=label_mapping,
        default=[],
        metavar="LABEL=CODE",
        help="Map a label; LABEL= means no defect.",
    )
    parser.add_argument("--station", required=True, help="Station code to deploy to.")
    parser.add_argument("--confidence", type=float, default=0.8, help="Confidence threshold.")
    parser.add_argument("--poll", type=float, default=2.0, help="Seconds between polls.")
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds to wait.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        deployment = upload_and_deploy(args.url, args.token, args)
    except Invalid as invalid:
        print(invalid, file=sys.stderr)
        return 1
    except Refused as refused:
        print(refused, file=sys.stderr)
        return 2
    version = deployment["version"]
    print(
        f"Deployed {version['model']} v{version['number']} to {deployment['station']} "
        f"(deployment {deployment['id']})."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
