"""The browser client against Python: equality of the protected images and in-page generator speed.

For each generator width (16, privis' default, and 32, the paper's 7.766 M-parameter U-Net) a real
``privis serve --client`` runs on 127.0.0.1 with a 32x32x3 LeNet-5; headless Chromium (Debian's, driven by
Playwright) loads the page with ``?ep=wasm`` (ONNX Runtime Web, WebAssembly) and

1. protects and classifies ``--images`` 32x32 RGB PNGs (patches of scikit-learn's two sample photographs): the
   page's 8-bit protected image is compared with the Python client's (ONNX Runtime on CPU, then rounded to 8
   bits, as ``privis client`` sends it): largest per-pixel difference in 8-bit levels, fraction of differing
   values, and whether the server gave the same class to both;
2. times one generator run on a random image (batch 1) at 32x32x3 and 224x224x3 in the page (median of
   ``--repeats`` runs after a warm-up, ``performance.now()``), next to ONNX Runtime CPU in Python with the same
   thread count: the "browser (WASM)" rows of the Table 3 analogue (``perturbation-timing``).

Weights are random (the generator's last layer scaled for a visible perturbation, the classifier untrained):
neither equality nor speed depends on training. The shared machine's load average is recorded.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_browser.py [--images 24] [--repeats 15]
          [--json benchmarks/results/browser.json] [--screenshot docs/images/screens/browser-client.png]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from PIL import Image

from privis import models
from privis.experiments.perturbation_tables import load_average, time_call
from privis.fsutil import atomic_write_bytes, atomic_write_text
from privis.models.export import export_onnx, onnx_session, run_onnx
from privis.serve.client import image_tensor, run_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import client_page, protect_in_page  # noqa: E402  (the tests' headless-Chromium helpers)

SIZE = 32
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def sample_patches(n: int, seed: int) -> list[np.ndarray]:
    """``n`` 32x32 RGB uint8 patches: random 64-128 px crops of scikit-learn's sample photographs, resized."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        side = int(rng.integers(64, 129))
        y, x = (int(rng.integers(0, photo.shape[k] - side)) for k in (0, 1))
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        out.append(np.asarray(crop, dtype=np.uint8))
    return out


def start_server(root: Path, generator: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    privis = Path(sys.executable).with_name("privis")
    proc = subprocess.Popen([str(privis), "serve", "--model", str(root / "model.pt"), "--port", str(port),
                             "--client", "--generator", str(generator)],
                            env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "privis serve exited")
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("privis serve did not start")


def run_width(width: int, root: Path, files: list[Path], *, repeats: int, screenshot: Path | None) -> dict[str, Any]:
    g = models.create_seeded("unet-perturbation", 0, in_channels=3, width=width).eval()
    with torch.no_grad():
        g.outc.weight.mul_(20.0)  # a visible perturbation from random weights
    path = export_onnx(g, root / f"gen-w{width}.onnx", torch.rand(1, 3, SIZE, SIZE))
    params = sum(p.numel() for p in g.parameters())
    proc, url = start_server(root, path)
    try:
        with client_page(url) as page:
            threads = page.evaluate("window.privis.threads")
            isolated = page.evaluate("self.crossOriginIsolated")
            shown = protect_in_page(page, files, timeout_ms=300_000)
            if screenshot is not None:
                atomic_write_bytes(screenshot, page.screenshot(full_page=False))
            timing = {f"3x{s}x{s}": page.evaluate("([s, r]) => window.privis.timeProtect(3, s, s, r)",
                                                  [s, repeats]) for s in (32, 224)}
        python = run_client(path, url, files)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    errors = [r["error"] for r in shown if r.get("error")]
    if errors:
        raise RuntimeError(f"the page reported errors: {errors[:3]}")
    diffs = []
    for r, py in zip(shown, python, strict=True):
        page_pixels = np.array(r["protected"], dtype=np.int16).reshape(r["shape"])
        sent = np.asarray(Image.open(io.BytesIO(py.sent_png)), dtype=np.int16)
        diffs.append(np.abs(page_pixels - np.moveaxis(sent, -1, 0)))
    all_diffs = np.stack(diffs)
    session = onnx_session(path, threads=threads)
    ort_ms = {}
    for s in (32, 224):
        x = torch.rand(1, 3, s, s)
        ort_ms[f"3x{s}x{s}"] = 1000 * time_call(lambda x=x: run_onnx(session, x), budget_s=3.0, max_repeats=repeats)
    originals = np.stack([np.moveaxis(np.asarray(Image.open(f)), -1, 0) for f in files]).astype(np.int16)
    return {
        "width": width, "params": params, "images": len(files), "wasm_threads": threads,
        "cross_origin_isolated": isolated,
        "max_abs_diff_levels": int(all_diffs.max()), "fraction_values_differing": float((all_diffs > 0).mean()),
        "mean_abs_perturbation_levels": float(np.abs(np.stack([np.array(r["protected"]).reshape(r["shape"])
                                                               for r in shown]) - originals).mean()),
        "same_class_as_python": sum(r["className"] == py.class_name for r, py in zip(shown, python, strict=True)),
        "page_protect_ms_median": statistics.median(r["protectMs"] for r in shown),
        "page_round_trip_ms_median": statistics.median(r["roundTripMs"] for r in shown),
        "browser_wasm_ms_per_image": timing, "python_onnxruntime_ms_per_image": ort_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/browser.json"))
    parser.add_argument("--screenshot", type=Path, default=Path("docs/images/screens/browser-client.png"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="privis-browser-") as tmp:
        root = Path(tmp)
        classifier = models.create_seeded("lenet5", 0, num_classes=10, in_channels=3, image_size=SIZE).eval()
        models.save_checkpoint(classifier, root / "model.pt", extra={"class_names": CLASSES})
        files = []
        for i, patch in enumerate(sample_patches(args.images, seed=0)):
            files.append(root / f"photo-{i:02d}.png")
            Image.fromarray(patch).save(files[-1])
        assert all(image_tensor(f).shape == (3, SIZE, SIZE) for f in files)
        rows = []
        for k, w in enumerate(args.widths):
            rows.append(run_width(w, root, files, repeats=args.repeats,
                                  screenshot=args.screenshot if k == 0 else None))
            print(json.dumps(rows[-1]), flush=True)
    table3 = [{"kind": f"generator ({r['params'] / 1e6:.3f} M params)", "model": f"unet-w{r['width']}", "batch": 1,
               "shape": shape, "runtime": "browser (WASM)", "ms_per_image": ms,
               "python_onnxruntime_ms_per_image": r["python_onnxruntime_ms_per_image"][shape]}
              for r in rows for shape, ms in r["browser_wasm_ms_per_image"].items()]
    result = {"benchmark": "browser client (ONNX Runtime Web, WebAssembly) vs Python (ONNX Runtime, CPU)",
              "browser": "Debian chromium (headless)", "tolerance": "per-pixel, 8-bit levels, after rounding",
              "rows": rows, "table3_browser_rows": table3,
              "load_average_before": load_before, "load_average_after": load_average(),
              "seconds": time.perf_counter() - t0}
    atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json} and {args.screenshot} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
