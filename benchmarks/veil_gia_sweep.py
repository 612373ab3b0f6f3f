"""Veil's open choice of GIA step rule and size: stop-criterion fraction, mean steps, |SSIM| and speed.

Trains LeNet-5 (the owner's F) on 5,000 Fashion-MNIST training images for 10 epochs, then veils the
first 1,000 test images once per step rule. No service model is trained: this isolates what the step rule
does to the generation itself.

Run:  .venv/bin/python benchmarks/veil_gia_sweep.py [--n 1000] [--json benchmarks/results/veil_gia_sweep.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from privis import data, metrics, models
from privis.methods.veil import Veil

RULES = [("adam", 0.02), ("adam", 0.05), ("adam", 0.1), ("sgd", 1.0), ("sgd", 0.1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    train = data.load("fashion-mnist:train[:5000]")
    test = data.load(f"fashion-mnist:test[:{args.n}]")
    model = models.create_seeded("lenet5", 0, num_classes=10, in_channels=1, image_size=28)
    models.train(model, train.images, train.labels, epochs=10, seed=0)
    rows = []
    for optimizer, step in RULES:
        veil = Veil(local_model=model, optimizer=optimizer, step_size=step, random_state=0).fit(train.images)
        t0 = time.perf_counter()
        out = veil.transform(test.images)
        seconds = time.perf_counter() - t0
        row = {"optimizer": optimizer, "step_size": step, "images_per_second": len(test) / seconds,
               "ssim_mean": float(metrics.ssim(out, test.images).abs().mean()), **veil.diagnostics()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
