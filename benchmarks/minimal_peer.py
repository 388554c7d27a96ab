"""The minimal peer of issue 12: what a person writes in an afternoon to judge frames.

Starlette + the LiteRT (TFLite) interpreter with 1 thread + one SQLite INSERT
+ the file written, one process. No authentication, no verdict rules beyond
the top label, no events, no history. ``benchmarks/inspection_api.py`` starts
it beside the product and posts the same JPEGs to the same model file, so
the product's figures are ratios against it.

It answers ``POST /api/v1/inspections/`` (multipart ``image``; other fields
ignored) with 201 and ``{"id", "label", "confidence", "latency_ms"}``, like the
product, so one client measures both.

    .venv/bin/python benchmarks/minimal_peer.py --model m.tflite --labels ok,scratch \\
        --width 224 --height 224 --scale 0_1 --data /tmp/peer --port 8766
"""

import argparse
import io
import json
import sqlite3
import time
import uuid
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build_app(args: argparse.Namespace) -> Starlette:
    interpreter = Interpreter(model_path=args.model, num_threads=1)
    interpreter.allocate_tensors()
    model_in = interpreter.get_input_details()[0]
    model_out = interpreter.get_output_details()[0]
    labels = args.labels.split(",")
    data = Path(args.data)
    (data / "frames").mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(data / "peer.sqlite3", check_same_thread=False)
    # The same journal settings as the product's embedded SQLite, so the INSERT costs the same.
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS frame (id INTEGER PRIMARY KEY, path TEXT, label TEXT,"
        " confidence REAL, received_at REAL)"
    )

    def judge(image_bytes: bytes) -> tuple[str, float]:
        image = Image.open(io.BytesIO(image_bytes)).convert(args.color)
        pixels = np.asarray(image.resize((args.width, args.height), Image.BILINEAR))
        if pixels.ndim == 2:
            pixels = pixels[:, :, np.newaxis]
        if model_in["dtype"] == np.uint8:
            batch = pixels[np.newaxis]
        else:
            batch = pixels[np.newaxis].astype(np.float32)
            if args.scale == "0_1":
                batch /= 255.0
            elif args.scale == "-1_1":
                batch = batch / 127.5 - 1.0
        interpreter.set_tensor(model_in["index"], batch)
        interpreter.invoke()
        scores = interpreter.get_tensor(model_out["index"])[0]
        best = int(np.argmax(scores))
        return labels[best], float(scores[best])

    async def inspect(request: Request) -> JSONResponse:
        started = time.perf_counter()
        form = await request.form()
        image_bytes = await form["image"].read()
        label, confidence = judge(image_bytes)
        path = data / "frames" / f"{uuid.uuid4().hex}.jpg"
        path.write_bytes(image_bytes)
        cursor = db.execute(
            "INSERT INTO frame (path, label, confidence, received_at) VALUES (?, ?, ?, ?)",
            (str(path), label, confidence, time.time()),
        )
        db.commit()
        body = {
            "id": cursor.lastrowid,
            "label": label,
            "confidence": confidence,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        return JSONResponse(body, status_code=201)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/api/v1/inspections/", inspect, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a .tflite file")
    parser.add_argument("--labels", required=True, help="comma-separated, in output order")
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--color", choices=["RGB", "L"], default="RGB")
    parser.add_argument("--scale", choices=["0_1", "-1_1", "0_255"], default="0_1")
    parser.add_argument("--data", required=True, help="folder for the SQLite file and frames")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()

    import uvicorn

    print(json.dumps({"peer": "starting", "port": args.port}), flush=True)
    uvicorn.run(
        build_app(args), host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
