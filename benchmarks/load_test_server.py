"""Load and abuse test of ``privis serve`` on 127.0.0.1 (issue 4's acceptance figures).

1. Starts ``privis serve`` in its own process on a free port of 127.0.0.1 with a small model (LeNet-5 for
   28x28 grey images; trained for one epoch on Fashion-MNIST when it is present, else untrained).
2. Load: ``--clients`` threads (16), each with its own keep-alive httpx client, POST one valid PNG at a time
   to ``/v1/predict`` for ``--seconds`` (30): requests/s, p50/p99 latency, count of 5xx and of transport
   errors.
3. Abuse: ``--malformed`` (1,000) bad requests, cycling through fuzzed multipart bodies (PNG files whose
   header is certainly broken, plus random mutations), random raw bodies
   with wrong content types, truncated PNG and JPEG files, PNG headers claiming 10^5 x 10^5 pixels, empty
   files, RGBA and wrong-size images, and bodies over the upload limit: every answer must be a 4xx.
4. ``/v1/health`` must still answer ``ok``.

Only 127.0.0.1 is ever contacted; every loop is bounded in count and time. The server process is stopped
by its pid at the end. The load average is recorded (the machine is shared).

Run:  OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/load_test_server.py [--clients 16] [--seconds 30]
          [--malformed 1000] [--json runs/load_test.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from privis import data as pdata
from privis import models
from privis.fsutil import atomic_write_text

HOST = "127.0.0.1"
SIZE = 28
UPLOAD_LIMIT = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header_bomb(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def make_model(tmp: Path) -> tuple[Path, list[bytes]]:
    """A small checkpoint and a few valid 28x28 grey PNGs."""
    model = models.create_seeded("lenet5", 0, num_classes=10, in_channels=1, image_size=SIZE)
    if pdata.fashion_mnist_available():
        train = pdata.load("fashion-mnist:train[:5000]")
        models.train(model, train.images, train.labels, epochs=1, seed=0)
        test = pdata.load("fashion-mnist:test[:32]")
        arrays = [(img[0].numpy() * 255).round().astype(np.uint8) for img in test.images]
        names = train.class_names
    else:
        rng = np.random.default_rng(0)
        arrays = [rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8) for _ in range(32)]
        names = [str(i) for i in range(10)]
    path = models.save_checkpoint(model, tmp / "model.pt", extra={"class_names": names})
    return path, [encode(a) for a in arrays]


def start_server(model: Path, port: int) -> subprocess.Popen:
    privis = Path(sys.executable).with_name("privis")
    cmd = [str(privis), "serve", "--model", str(model), "--host", HOST, "--port", str(port),
           "--max-upload-bytes", str(UPLOAD_LIMIT)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PRIVIS_NO_PROGRESS": "1"})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://{HOST}:{port}/v1/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.terminate()
    raise RuntimeError("server did not become healthy within 180 s")


def load_phase(base: str, images: list[bytes], clients: int, seconds: float, max_per_client: int) -> dict:
    latencies: list[float] = []
    statuses: Counter = Counter()
    transport_errors: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(k: int) -> None:
        local_lat, local_status, local_err = [], Counter(), Counter()
        with httpx.Client(timeout=30) as client:
            for i in range(max_per_client):
                if time.monotonic() >= deadline:
                    break
                image = images[(k + i) % len(images)]
                t0 = time.perf_counter()
                try:
                    r = client.post(f"{base}/v1/predict", files=[("images", (f"{k}-{i}.png", image, "image/png"))])
                    local_status[r.status_code] += 1
                    local_lat.append(time.perf_counter() - t0)
                except httpx.HTTPError as exc:
                    local_err[type(exc).__name__] += 1
        with lock:
            latencies.extend(local_lat)
            statuses.update(local_status)
            transport_errors.update(local_err)

    load_before = load_average()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lat_ms = sorted(1000 * v for v in latencies)
    return {
        "clients": clients, "seconds": elapsed, "requests": len(latencies),
        "requests_per_second": len(latencies) / elapsed,
        "latency_p50_ms": statistics.median(lat_ms) if lat_ms else None,
        "latency_p99_ms": lat_ms[min(len(lat_ms) - 1, int(0.99 * len(lat_ms)))] if lat_ms else None,
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "count_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "transport_errors": dict(transport_errors),
        "load_average_before": load_before, "load_average_after": load_average(),
    }


def malformed_requests(images: list[bytes], n: int, seed: int) -> list[tuple[str, dict]]:
    """``n`` bad requests as (category, httpx keyword arguments), cycling through the categories."""
    rng = random.Random(seed)
    good_png = images[0]
    good_jpeg = encode(np.asarray(Image.open(io.BytesIO(good_png))), "JPEG")
    rgba = encode(np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8))
    wrong_size = encode(np.zeros((SIZE + 3, SIZE), dtype=np.uint8))
    boundary = "fuzzb0undary"
    multipart = f"multipart/form-data; boundary={boundary}"

    def file(data: bytes, name: str = "x.png", ctype: str = "image/png") -> dict:
        return {"files": [("images", (name, data, ctype))]}

    def fuzz_multipart() -> dict:
        # A fuzzed PNG that is certainly broken: one byte of the signature, IHDR or its CRC (bytes 0-32) is
        # changed (Pillow rejects a bad signature and verifies the CRC of chunks before IDAT), plus random
        # changes and cuts elsewhere. Mutating only pixel data could leave a valid image, whose right
        # answer is a 200, not a 4xx.
        blob = bytearray(rng.choice(images))
        pos = rng.randrange(33)
        blob[pos] = (blob[pos] + rng.randrange(1, 256)) % 256
        for _ in range(rng.randint(0, 10)):
            pos = rng.randrange(len(blob))
            if rng.random() < 0.6:
                blob[pos] = rng.randrange(256)
            else:
                del blob[pos:pos + rng.randint(1, 200)]
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="f.png"\r\n\r\n'.encode()
        body = head + bytes(blob)
        if rng.random() < 0.5:  # sometimes cut the closing delimiter, sometimes add it
            body += f"\r\n--{boundary}--\r\n".encode()
        return {"content": body, "headers": {"content-type": multipart}}

    def fuzz_raw() -> dict:
        body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 4000)))
        ctype = rng.choice(["application/octet-stream", "image/png", "text/plain", "application/json",
                            "application/x-www-form-urlencoded", multipart, "multipart/form-data"])
        return {"content": body, "headers": {"content-type": ctype}}

    def truncated_png() -> dict:
        return file(good_png[: rng.randint(1, len(good_png) - 1)])

    def truncated_jpeg() -> dict:
        return file(good_jpeg[: rng.randint(1, len(good_jpeg) - 2)], "x.jpg", "image/jpeg")

    def bomb() -> dict:
        return file(png_header_bomb(100_000, 100_000))

    def empty() -> dict:
        return file(b"")

    def wrong_mode() -> dict:
        return file(rgba)

    def wrong_dims() -> dict:
        return file(wrong_size)

    def oversized() -> dict:
        return file(b"\0" * (UPLOAD_LIMIT + rng.randint(1, 100_000)))

    makers = [("fuzzed multipart body", fuzz_multipart), ("random body, wrong content type", fuzz_raw),
              ("truncated PNG", truncated_png), ("truncated JPEG", truncated_jpeg),
              ("PNG header claiming 1e5 x 1e5 pixels", bomb), ("empty file", empty), ("RGBA image", wrong_mode),
              ("wrong size", wrong_dims), ("body over the upload limit", oversized)]
    return [(makers[i % len(makers)][0], makers[i % len(makers)][1]()) for i in range(n)]


def abuse_phase(base: str, images: list[bytes], n: int, seed: int, time_limit: float) -> dict:
    by_category: dict[str, Counter] = {}
    not_4xx: list[dict] = []
    deadline = time.monotonic() + time_limit
    sent = 0
    with httpx.Client(timeout=30) as client:
        for category, kwargs in malformed_requests(images, n, seed):
            if time.monotonic() >= deadline:
                break
            try:
                r = client.post(f"{base}/v1/predict", **kwargs)
                status = r.status_code
                ok = 400 <= status < 500 and "error" in r.json()
            except (httpx.HTTPError, ValueError) as exc:
                status, ok = type(exc).__name__, False
            sent += 1
            by_category.setdefault(category, Counter())[str(status)] += 1
            if not ok and len(not_4xx) < 20:
                not_4xx.append({"category": category, "status": status})
    return {"sent": sent, "all_4xx_json": not not_4xx and sent == n,
            "by_category": {k: dict(v) for k, v in by_category.items()}, "not_4xx_examples": not_4xx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--malformed", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="privis-load-") as tmp:
        model, images = make_model(Path(tmp))
        port = free_port()
        proc = start_server(model, port)
        base = f"http://{HOST}:{port}"
        try:
            load = load_phase(base, images, args.clients, args.seconds, max_per_client=100_000)
            print(json.dumps({"load": load}), flush=True)
            abuse = abuse_phase(base, images, args.malformed, args.seed, time_limit=600)
            print(json.dumps({"abuse": abuse}), flush=True)
            health = httpx.get(f"{base}/v1/health", timeout=10).json()
            alive = proc.poll() is None
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    result = {"load": load, "abuse": abuse, "health_after": health, "server_process_alive_after": alive,
              "upload_limit_bytes": UPLOAD_LIMIT, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "torch_threads_server": "default (2)"}
    print(json.dumps({"health_after": health, "server_process_alive_after": alive}))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
