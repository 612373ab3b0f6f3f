"""Object hiding throughput: privis' batched Algorithm 5 against a per-image transcription of it.

The reference is the thesis' Algorithm 5 written straightforwardly, one image at a time: detect the objects
of the original, then up to ``N`` times compute the region targets (private -> background, the rest their
class), the mean cross-entropy of Eq. 3.8, one targeted FGSM step clipped to ``[0, 1]``, and stop as soon as
the detector no longer finds the image's private objects (the same rule as privis). privis runs the same
detector, ``eps``, ``N`` and rule on a batch (``--batch``, default 32) with per-image early stop by masking.
Both sides protect the same held-out built-in scenes; the figure is images per second (and FGSM steps per
second). Each side runs in its own process so that its peak memory is its own (resident set on the CPU,
``torch.cuda.max_memory_allocated`` on a GPU).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_object_hiding.py --detector det.pt [--n 128]
      [--n-ref 128] [--batch 32] [--eps 0.002] [--iterations 50] [--threads 1] [--device cpu]
      [--json benchmarks/results/object_hiding.json]
(``det.pt``: ``privis train-detector --out det.pt``; ``--eps`` in [0, 1] pixel units, the method's default.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from isolated import emit, in_fresh_process
from privis.detectors import Detector, region_targets
from privis.detectors.scene_detector import load_scene_detector
from privis.detectors.scenes import make_scenes
from privis.experiments.perturbation_tables import load_average
from privis.methods.object_hiding import ObjectHiding
from privis.metrics.hiding import hiding_ratios
from privis.sysinfo import peak_rss_mb


def reference_object_hiding(images: torch.Tensor, detector: Detector, private: list[int], *, eps: float,
                            iterations: int) -> tuple[torch.Tensor, int]:
    """Algorithm 5 one image at a time, with the early stop; returns the images and the FGSM steps taken."""
    out = images.clone()
    steps = 0
    for i in range(images.shape[0]):
        x = images[i:i + 1]
        clean = detector.detect(x)
        if not torch.isin(clean[0].labels.cpu(), torch.tensor(private)).any():
            continue
        for _ in range(iterations):
            x = x.detach().requires_grad_(True)
            regions = detector.regions(x)
            targets = region_targets(regions.boxes, clean, private)
            loss = F.cross_entropy(regions.logits[0], targets[0])
            (grad,) = torch.autograd.grad(loss, x)
            x = (x.detach() - eps * grad.sign()).clamp(0, 1)
            steps += 1
            if hiding_ratios(clean, detector.detect(x), private).all_hidden().all():
                break
        out[i] = x[0].detach()
    return out, steps


def _worker(kind: str, detector_path: str, n: int, batch: int, eps: float, iterations: int, threads: int,
            device: str, seed: int) -> dict:
    torch.set_num_threads(threads)
    detector = load_scene_detector(detector_path, map_location=device)
    images = make_scenes(n, size=64, seed=seed, split="test").images.to(device)
    hider = ObjectHiding(detector=detector, eps=eps, iterations=iterations).fit(images[:1])
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    hider.transform(images[:2])  # warm-up
    t0 = time.perf_counter()
    if kind == "reference":
        _, steps = reference_object_hiding(images, detector, hider.private_ids_, eps=eps, iterations=iterations)
    else:
        steps = 0
        for start in range(0, n, batch):
            hider.transform(images[start:start + batch])
            steps += int(hider.report().effort.sum())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    memory = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else peak_rss_mb())
    return {"kind": kind, "n": n, "batch": batch if kind == "privis" else 1, "seconds": seconds,
            "images_per_second": n / seconds, "fgsm_steps": steps, "fgsm_steps_per_second": steps / seconds,
            "peak_memory_mb": memory}



def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", type=str, required=True, help="scene-detector file (privis train-detector)")
    ap.add_argument("--n", type=int, default=128, help="scenes protected by privis")
    ap.add_argument("--n-ref", type=int, default=128, help="scenes protected by the per-image reference")
    ap.add_argument("--batch", type=int, default=32, help="privis' batch size")
    ap.add_argument("--eps", type=float, default=0.002, help="FGSM step, [0, 1] pixel units")
    ap.add_argument("--iterations", type=int, default=50, help="N, the most steps, the same for both")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each side")
    ap.add_argument("--device", type=str, default="cpu")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = {kind: in_fresh_process(_worker, kind, args.detector, args.n_ref if kind == "reference" else args.n,
                                   args.batch, args.eps, args.iterations, args.threads, args.device, args.seed)
            for kind in ("privis", "reference")}
    report = {"detector": Path(args.detector).name, "eps": args.eps, "iterations": args.iterations,
              "threads": args.threads, "device": args.device, "load_average": load_average(), **rows,
              "ratio_privis_to_reference": rows["privis"]["images_per_second"] / rows["reference"]["images_per_second"]}
    return emit(report, args.json)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
