"""DP-Image throughput: privis' batched loop against a per-image transcription of Algorithm 6.

The reference is the thesis' Algorithm 6 written straightforwardly: for each image, ``T`` times, encode,
clip to the box, add ``N(0, sigma^2 I)`` and decode, one image at a time. privis runs the same codec, ``T``,
``sigma`` and clip on a whole batch (without ids: one generator; with ids: the counter-based per-item noise the
engine uses). The figure is latent iterations per second: images x ``T`` / seconds. Each side runs in its own
process so that its peak resident memory is its own. The codec is the default
:class:`privis.latent.ConvAutoencoder` for 28x28 grey images (throughput does not depend on its weights), or
``--codec FILE``.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_dp_image.py [--n 256] [--n-ref 16] [--steps 10]
      [--threads 1] [--json benchmarks/results/dp_image.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from isolated import emit, in_fresh_process
from privis.experiments.perturbation_tables import load_average
from privis.latent import ConvAutoencoder, LatentCodec, load_codec
from privis.methods.dp_image import DPImage
from privis.results import file_label
from privis.sysinfo import peak_rss_mb

CLIP, SIGMA = 3.0, 0.2


def reference_dp_image(images: torch.Tensor, codec: LatentCodec, *, sigma: float, steps: int, clip: float,
                       seed: int) -> torch.Tensor:
    """Algorithm 6, one image at a time: ``z = f(X); z = clip(z) + N(0, sigma^2 I); X = g(z)``, ``T`` times."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty_like(images)
    with torch.no_grad():
        for i in range(images.shape[0]):
            x = images[i:i + 1]
            for _ in range(steps):
                z = codec.encode(x).clamp(-clip, clip)
                z = z + sigma * torch.randn(z.shape, generator=gen)
                x = codec.decode(z)
            out[i] = x[0]
    return out


def _worker(kind: str, codec_path: str | None, n: int, steps: int, threads: int, seed: int) -> dict:
    torch.set_num_threads(threads)
    codec = load_codec(codec_path) if codec_path else ConvAutoencoder().eval().requires_grad_(False)
    images = torch.rand(n, *codec.image_shape, generator=torch.Generator().manual_seed(seed))
    if kind == "reference":
        t0 = time.perf_counter()
        reference_dp_image(images, codec, sigma=SIGMA, steps=steps, clip=CLIP, seed=seed)
    else:
        protector = DPImage(codec=codec, sigma=SIGMA, steps=steps, clip=CLIP, random_state=seed).fit(images[:8])
        ids = torch.arange(n) if kind == "privis-ids" else None
        protector.transform(images[:8], ids=None if ids is None else ids[:8])  # warm-up
        t0 = time.perf_counter()
        protector.transform(images, ids=ids)
    seconds = time.perf_counter() - t0
    return {"kind": kind, "n": n, "steps": steps, "seconds": seconds,
            "latent_iterations_per_second": n * steps / seconds, "peak_rss_mb": peak_rss_mb()}



def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help="batch protected by privis")
    ap.add_argument("--n-ref", type=int, default=16, help="images protected by the per-image reference")
    ap.add_argument("--steps", type=int, default=10, help="T, the same for both")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each side")
    ap.add_argument("--codec", type=str, default=None, help="codec file (default: an untrained ConvAutoencoder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    rows = {kind: in_fresh_process(_worker, kind, args.codec, args.n_ref if kind == "reference" else args.n,
                                   args.steps, args.threads, args.seed)
            for kind in ("privis", "privis-ids", "reference")}
    ref = rows["reference"]["latent_iterations_per_second"]
    report = {"codec": file_label(args.codec) if args.codec else "ConvAutoencoder() 1x28x28, latent (8, 64)",
              "steps": args.steps,
              "threads": args.threads, "load_average": load_average(), **rows,
              "ratio_privis_to_reference": rows["privis"]["latent_iterations_per_second"] / ref,
              "ratio_privis_ids_to_reference": rows["privis-ids"]["latent_iterations_per_second"] / ref}
    return emit(report, args.json)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
