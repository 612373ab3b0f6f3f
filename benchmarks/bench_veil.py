"""Veil throughput: privis' batched implementation against the per-image loop of Algorithm 1.

The reference below is the paper's Algorithm 1 written straightforwardly: for each image, draw its mask
element by element as lines 5-9 describe (vectorised only over pixels, as any sane transcription would),
then run up to T optimizer steps on that single image, breaking when the loss falls below xi. It uses the
same local model, the same Adam step rule and the same T and xi as privis, in the same run; each side runs
in its own process so that its peak resident memory is its own.

Run:  .venv/bin/python benchmarks/bench_veil.py [--n 2048] [--n-ref 64] [--json benchmarks/results/veil.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from privis import data as pdata
from privis import models
from privis.methods.base import to_canonical, to_signed
from privis.methods.veil import Veil
from privis.sysinfo import peak_rss_mb


def reference_veil(images: torch.Tensor, model: torch.nn.Module, *, p: float, alpha: float, beta: float,
                   steps: int, xi: float, lr: float, seed: int) -> tuple[torch.Tensor, float]:
    """Algorithm 1, one image at a time. Returns veiled images and the fraction reaching xi."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty_like(images)
    reached = 0
    for i in range(images.shape[0]):
        x = to_signed(images[i:i + 1])
        m = torch.rand(x.shape, generator=gen) - p
        m = torch.where(m >= 0, 1.0, -1.0)
        xt = (x * m).clone().requires_grad_(True)
        opt = torch.optim.Adam([xt], lr=lr)
        with torch.no_grad():
            target = model(to_canonical(x.clone()))
        for _ in range(steps):
            loss = alpha * (model((xt + 1) * 0.5) - target).abs().sum() - beta * (xt - x).norm()
            if loss.item() < xi:
                reached += 1
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                xt.clamp_(-1, 1)
        out[i] = to_canonical(xt.detach()[0])
    return out, reached / images.shape[0]


def _worker(kind: str, ckpt: str, n: int, steps: int, seed: int, queue: mp.Queue) -> None:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model, _ = models.load_checkpoint(ckpt)
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    images = pdata.load(f"fashion-mnist:test[:{n}]" if pdata.fashion_mnist_available() else "digits:all").images[:n]
    t0 = time.perf_counter()
    if kind == "reference":
        _, reached = reference_veil(images, model, p=0.5, alpha=0.999, beta=0.001, steps=steps, xi=0.3,
                                    lr=0.02, seed=seed)
    else:
        veil = Veil(local_model=model, steps=steps, random_state=seed).fit(images)
        veil.transform(images)
        reached = veil.diagnostics()["stop_reached_fraction"]
    seconds = time.perf_counter() - t0
    queue.put({"kind": kind, "n": images.shape[0], "seconds": seconds, "images_per_second": images.shape[0] / seconds,
               "stop_reached_fraction": reached, "peak_rss_mb": peak_rss_mb()})


def run(kind: str, ckpt: str, n: int, steps: int, seed: int) -> dict:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(kind, ckpt, n, steps, seed, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048, help="images veiled by privis")
    ap.add_argument("--n-ref", type=int, default=64, help="images veiled by the per-image reference")
    ap.add_argument("--steps", type=int, default=300, help="T, the same for both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    name = "fashion-mnist" if pdata.fashion_mnist_available() else "digits"
    train = pdata.load(f"{name}:train[:5000]" if name == "fashion-mnist" else "digits:train")
    model = models.create_seeded("lenet5", args.seed, num_classes=train.num_classes,
                                 in_channels=train.images.shape[1], image_size=tuple(train.images.shape[-2:]))
    models.train(model, train.images, train.labels, epochs=8, seed=args.seed, desc="local model")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = str(Path(tmp) / "lenet5.pt")
        models.save_checkpoint(model, ckpt)
        ours = run("privis", ckpt, args.n, args.steps, args.seed)
        ref = run("reference", ckpt, args.n_ref, args.steps, args.seed)
    report = {"dataset": name, "model": "lenet5", "steps": args.steps, "privis": ours, "reference": ref,
              "speedup": ours["images_per_second"] / ref["images_per_second"], "threads": torch.get_num_threads()}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
