"""Veil throughput: privis' batched implementation against the per-image loop of Algorithm 1, and, at
224x224 RGB, the masked gradient iteration against the previous re-indexing one.

The reference below is the paper's Algorithm 1 written straightforwardly: for each image, draw its mask
element by element as lines 5-9 describe (vectorised only over pixels, as any sane transcription would),
then run up to T optimizer steps on that single image, breaking when the loss falls below xi. It uses the
same local model, the same Adam step rule and the same T and xi as privis, in the same run; each side runs
in its own process so that its peak resident memory is its own.

The 224x224 rows (``--size224 N``, N images, default 4; 0 skips them) time ``Veil.transform``'s gradient
iteration with every image running all T steps (xi = -1e30, as ``privis bench`` does) on LeNet-5 at
3x224x224: privis (fp32 and bf16 autocast) against ``previous_gradient_iteration``, the loop privis used
before stopping became a device-side mask, on the same images; each row reports its largest output
difference from the previous loop.

Run:  .venv/bin/python benchmarks/bench_veil.py [--n 2048] [--n-ref 64] [--size224 4]
      [--json benchmarks/results/veil.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from isolated import emit, in_fresh_process
from privis import data as pdata
from privis import models
from privis.methods.base import to_canonical, to_signed
from privis.methods.veil import GIAStats, Veil, gradient_iteration, random_pixel_flip
from privis.models import FeatureExtractor, model_device
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


def previous_gradient_iteration(start: Tensor, target_signed: Tensor, features: nn.Module, *, alpha: float, beta: float,
                                steps: int, stop_loss: float, step_size: float) -> tuple[Tensor, GIAStats]:
    """privis' gradient iteration before masking: it re-indexes the active samples at every step (a host
    synchronisation per step), Adam only. Kept to time the masked one against in the same run; same outputs."""
    n = start.shape[0]
    device = model_device(features)
    x = start.detach().to(device, copy=True)
    target_signed = target_signed.to(device)
    with torch.no_grad():
        target_features = features(to_canonical(target_signed.clone())).detach()
    final_loss = torch.full((n,), float("nan"), device=device)
    taken = torch.zeros(n, dtype=torch.long, device=device)
    reached = torch.zeros(n, dtype=torch.bool, device=device)
    active = torch.arange(n, device=device)
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    b1, b2, eps = 0.9, 0.999, 1e-8

    def loss_of(candidate: Tensor, idx: Tensor) -> Tensor:
        feat = features(((candidate + 1.0) * 0.5).contiguous(memory_format=torch.channels_last))
        feat_term = (feat - target_features[idx]).abs().flatten(1).sum(1)
        # sqrt with a tiny floor: the gradient of ||d||_2 is undefined at d = 0 (the init="none" start).
        pixel_term = ((candidate - target_signed[idx]).flatten(1).square().sum(1) + 1e-12).sqrt()
        return alpha * feat_term - beta * pixel_term

    for t in range(1, steps + 1):
        if active.numel() == 0:
            break
        xa = x[active].requires_grad_(True)
        loss = loss_of(xa, active)
        (grad,) = torch.autograd.grad(loss.sum(), xa)
        loss = loss.detach()
        final_loss[active] = loss
        done = loss < stop_loss
        reached[active[done]] = True
        keep = ~done
        active, grad = active[keep], grad[keep]
        if active.numel() == 0:
            break
        taken[active] += 1
        m[active] = b1 * m[active] + (1 - b1) * grad
        v[active] = b2 * v[active] + (1 - b2) * grad.square()
        m_hat = m[active] / (1 - b1**t)
        v_hat = v[active] / (1 - b2**t)
        update = step_size * m_hat / (v_hat.sqrt() + eps)
        x[active] = (x[active] - update).clamp_(-1.0, 1.0)
    if active.numel():
        with torch.no_grad():
            last = loss_of(x[active], active)
        final_loss[active] = last
        reached[active] = last < stop_loss
    return x.detach().to(start.device), GIAStats(final_loss=final_loss, steps=taken, reached=reached)


def _worker(kind: str, ckpt: str, n: int, steps: int, seed: int) -> dict:
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
    return {"kind": kind, "n": images.shape[0], "seconds": seconds, "images_per_second": images.shape[0] / seconds,
            "stop_reached_fraction": reached, "peak_rss_mb": peak_rss_mb()}


def _worker_224(kind: str, n: int, steps: int, seed: int, out_path: str) -> dict:
    """One side of the 224x224 rows: ``kind`` is "previous", "fp32" or "bf16"; writes its iterates to
    ``out_path`` so the parent can compare them with the previous loop's."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    model = models.create_seeded("lenet5", seed, num_classes=10, in_channels=3, image_size=(224, 224))
    # the local model as Veil.fit prepares it: frozen, channels-last
    model = models.freeze(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    features = FeatureExtractor(model, "logits").eval()
    signed = to_signed(torch.rand((n, 3, 224, 224), generator=torch.Generator().manual_seed(seed)))
    start = random_pixel_flip(signed, 0.5, torch.Generator().manual_seed(seed + 1))
    kwargs = dict(alpha=0.999, beta=0.001, steps=steps, stop_loss=-1e30, step_size=0.05)
    iterate = previous_gradient_iteration if kind == "previous" else gradient_iteration
    extra = {} if kind == "previous" else {"precision": kind}
    iterate(start[:1], signed[:1], features, **{**kwargs, "steps": 1}, **extra)  # warm-up
    t0 = time.perf_counter()
    out, stats = iterate(start, signed, features, **kwargs, **extra)
    seconds = time.perf_counter() - t0
    torch.save(out, out_path)
    return {"kind": kind, "n": n, "steps": steps, "seconds": seconds, "images_per_second": n / seconds,
            "gia_final_loss_mean": float(stats.final_loss.mean()), "peak_rss_mb": peak_rss_mb(),
            "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def rows_224(n: int, steps: int, seed: int) -> list[dict]:
    """The 224x224 RGB rows: previous loop, then privis fp32 and bf16, each in a fresh process."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("previous", "fp32", "bf16"):
            rows.append(in_fresh_process(_worker_224, kind, n, steps, seed, str(Path(tmp) / f"{kind}.pt")))
        previous = torch.load(Path(tmp) / "previous.pt")
        for row in rows:
            row["speedup_vs_previous"] = row["images_per_second"] / rows[0]["images_per_second"]
            out = torch.load(Path(tmp) / f"{row['kind']}.pt")
            row["max_abs_diff_vs_previous"] = float((out - previous).abs().max())
            row["mean_abs_diff_vs_previous"] = float((out - previous).abs().mean())
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2048, help="images veiled by privis (0: only the 224x224 rows)")
    ap.add_argument("--n-ref", type=int, default=64, help="images veiled by the per-image reference")
    ap.add_argument("--steps", type=int, default=300, help="T, the same for both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size224", type=int, default=4, help="images of the 224x224 RGB rows (0: none)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    report: dict = {"steps": args.steps, "threads": int(os.environ.get("BENCH_THREADS", "2"))}
    if args.n:
        name = "fashion-mnist" if pdata.fashion_mnist_available() else "digits"
        train = pdata.load(f"{name}:train[:5000]" if name == "fashion-mnist" else "digits:train")
        model = models.create_seeded("lenet5", args.seed, num_classes=train.num_classes,
                                     in_channels=train.images.shape[1], image_size=tuple(train.images.shape[-2:]))
        models.train(model, train.images, train.labels, epochs=8, seed=args.seed, desc="local model")
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = str(Path(tmp) / "lenet5.pt")
            models.save_checkpoint(model, ckpt)
            ours = in_fresh_process(_worker, "privis", ckpt, args.n, args.steps, args.seed)
            ref = in_fresh_process(_worker, "reference", ckpt, args.n_ref, args.steps, args.seed)
        report.update({"dataset": name, "model": "lenet5", "privis": ours, "reference": ref,
                       "speedup": ours["images_per_second"] / ref["images_per_second"]})
    if args.size224:
        report["rgb224"] = rows_224(args.size224, args.steps, args.seed)
    return emit(report, args.json)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
