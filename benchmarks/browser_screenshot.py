"""A screenshot of the browser client with trained models: the workflow of docs/browser-client.md, shortened.

Trains a LeNet-5 on Fashion-MNIST and a perturbation generator against it (``privis train``,
``privis train-generator``), exports the generator to ONNX (``privis export``), starts ``privis serve --client``
on 127.0.0.1, drops six Fashion-MNIST test images on the page in headless Chromium and saves a screenshot. It
also reports how many of the page's predictions equal the test labels.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/browser_screenshot.py
          [--screenshot docs/images/screens/browser-client.png] [--train-size 5000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from privis import data
from privis.fsutil import atomic_write_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_browser import start_server  # noqa: E402
from browser import client_page, protect_in_page  # noqa: E402


def privis(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).with_name("privis")), *args], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screenshot", type=Path, default=Path("docs/images/screens/browser-client.png"))
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = f"fashion-mnist:train[:{args.train_size}]"
        privis("train", "--data", spec, "--model", "lenet5", "--out", str(root / "model.pt"),
               "--epochs", str(args.epochs))
        privis("train-generator", "--data", spec, "--target", str(root / "model.pt"), "--out", str(root / "gen.pt"),
               "--epochs", str(args.epochs))
        privis("export", "--generator", str(root / "gen.pt"), "--onnx", str(root / "gen.onnx"), "--size", "28")
        test = data.load(f"fashion-mnist:test[:{args.images}]")
        files = []
        for i, image in enumerate(test.images):
            path = root / f"{test.class_names[int(test.labels[i])].replace('/', '-')}-{i}.png"
            Image.fromarray(np.round(image[0].numpy() * 255).astype(np.uint8)).save(path)
            files.append(path)
        proc, url = start_server(root, root / "gen.onnx")
        try:
            with client_page(url) as page:
                shown = protect_in_page(page, files, timeout_ms=120_000)
                atomic_write_bytes(args.screenshot, page.screenshot(full_page=False))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    right = sum(r.get("className") == test.class_names[int(y)] for r, y in zip(shown, test.labels, strict=True))
    print(f"{right} of {len(files)} protected test images classified as their label; screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
