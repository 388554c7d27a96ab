#!/usr/bin/env python3
"""Send frames to LineSight as a line camera does, with the station's device token.

    python docs/examples/post_frames.py --url http://127.0.0.1:8000 \\
        --token "$STATION_TOKEN" --station ST1 frames/        # every .jpg/.png in frames/
    python docs/examples/post_frames.py --url ... --token ... --station ST1 --stub 20

``--stub N`` stands in for a camera: N small generated frames. Every frame
carries an ``Idempotency-Key``. A frame answered 503 (server busy, database
restarting) or 429 (faster than the station's frame rate), or lost on the way,
is sent again with the same key after ``Retry-After`` seconds: the server
stores it once however often it arrives, and answers a repeat 200 with the
stored verdict. A folder's keys come from each file's name and content, so
running the script again over the same folder stores nothing twice.

Prints one line per frame and exits 0 when every frame was stored (now or
before), 1 otherwise. Needs only ``requests``.
"""

import argparse
import hashlib
import os
import struct
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import requests

RETRIES = 8
LONGEST_WAIT_SECONDS = 60.0
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def folder_frames(folder: Path, station: str) -> Iterator[tuple[str, bytes, str]]:
    """(name, bytes, key) of each image in the folder; the key is the same on every run."""
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_TYPES):
        data = path.read_bytes()
        key = hashlib.sha256(f"{station}/{path.name}/".encode() + data).hexdigest()[:40]
        yield path.name, data, key


def stub_frames(count: int, size: int = 64) -> Iterator[tuple[str, bytes, str]]:
    """A camera stand-in: ``count`` PNG frames of one random colour each, new keys."""
    for number in range(1, count + 1):
        pixel = os.urandom(3)  # one colour per frame
        yield f"stub-{number:04d}.png", _png(size, size, pixel), uuid.uuid4().hex


def _png(width: int, height: int, pixel: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(b"\x00" + pixel * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def wait_seconds(response: requests.Response | None, attempt: int) -> float:
    """``Retry-After`` when the server gives it, else a doubling backoff."""
    retry_after = response.headers.get("Retry-After", "") if response is not None else ""
    wait = float(retry_after) if retry_after.isdigit() else 0.5 * 2**attempt
    return min(wait, LONGEST_WAIT_SECONDS)


def post_frame(
    session: requests.Session,
    url: str,
    fields: dict,
    frame: tuple[str, bytes, str],
    *,
    retries: int = RETRIES,
) -> requests.Response:
    """POST one frame; resend it with the same key on 503, 429, another 5xx or a lost answer."""
    name, data, key = frame
    content_type = IMAGE_TYPES.get(Path(name).suffix.lower(), "application/octet-stream")
    for attempt in range(retries + 1):
        response = None
        try:
            response = session.post(
                f"{url}/api/v1/inspections/",
                data=fields,
                files={"image": (name, data, content_type)},
                headers={"Idempotency-Key": key},
                timeout=30,
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            if attempt == retries:
                raise
            reason = type(error).__name__
        else:
            if response.status_code < 500 and response.status_code != 429:
                return response
            if attempt == retries:
                return response
            reason = f"HTTP {response.status_code}"
        wait = wait_seconds(response, attempt)
        print(f"{name}: {reason}, sending it again in {wait:g} s", file=sys.stderr)
        time.sleep(wait)
    raise AssertionError("unreachable")


def outcome(response: requests.Response) -> str:
    return {201: "stored", 200: "already stored"}.get(response.status_code, "refused")


def describe(name: str, response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:  # e.g. a proxy's HTML error page
        body = {"detail": response.text[:200]}
    if outcome(response) == "refused":
        return f"{name}: refused, HTTP {response.status_code}: {body.get('detail', body)}"
    defect = f" {body['defect_type']}" if body.get("defect_type") else ""
    version = body["model_version"]
    return (
        f"{name}: {outcome(response)} #{body['id']} {body['verdict']}{defect} "
        f"({body['label']} {float(body['confidence']):.2f}, "
        f"{version['model']} v{version['version']})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="LineSight's base URL")
    parser.add_argument("--token", required=True, help="the station's device token")
    parser.add_argument("--station", required=True, help="the station's code")
    parser.add_argument("--product", help="the product SKU on the line, if it runs several")
    parser.add_argument("--lot", default="", help="lot number sent with every frame")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("folder", nargs="?", type=Path, help="folder of .jpg/.png frames")
    source.add_argument("--stub", type=int, metavar="N", help="send N generated frames")
    args = parser.parse_args(argv)

    session = requests.Session()
    session.headers["Authorization"] = f"Token {args.token}"
    url = args.url.rstrip("/")
    frames = stub_frames(args.stub) if args.stub else folder_frames(args.folder, args.station)
    counts = {"stored": 0, "already stored": 0, "refused": 0}
    for frame in frames:
        fields = {"station": args.station, "serial": Path(frame[0]).stem, "lot": args.lot}
        if args.product:
            fields["product"] = args.product
        response = post_frame(session, url, fields, frame)
        print(describe(frame[0], response))
        counts[outcome(response)] += 1
    print(", ".join(f"{count} {what}" for what, count in counts.items()))
    return 0 if counts["refused"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
