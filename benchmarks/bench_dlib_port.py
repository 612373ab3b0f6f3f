"""dlib's face ResNet: privis' torch port against dlib's own ``compute_face_descriptor``, on the same chips.

The chips are dlib's own 8-bit 150x150 chips (``get_face_chip`` at dlib's 5 landmarks) of real faces
(:func:`privis.identity.alignment.sample_faces`: the astronaut and upscaled LFW-subset faces), repeated to
``--n``. The torch port describes them in batches of ``--batch-size`` without gradients (CPU; also CUDA
when present); dlib describes the same list in one ``compute_face_descriptor`` call (it batches by 16
itself). Each side runs in its own process, so its peak resident memory is its own; both with the same
thread count. The figure is descriptors per second; the port's descriptors are checked against dlib's.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_dlib_port.py [--n 128] [--faces 32]
      [--batch-size 64] [--threads 1] [--json benchmarks/results/dlib_port.json]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from privis.experiments.perturbation_tables import load_average
from privis.results import Result
from privis.sysinfo import peak_rss_mb


def make_chips(faces: int, n: int) -> torch.Tensor:
    """dlib's chips of ``faces`` real faces, repeated to ``n``."""
    from privis.identity.alignment import dlib_face_chips, face_landmarks, sample_faces

    chips = torch.cat([dlib_face_chips(image, face_landmarks(image).points) for image in sample_faces(faces)])
    return chips.repeat((n + faces - 1) // faces, 1, 1, 1)[:n]


def _worker(kind: str, chips_path: str, batch_size: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    chips = torch.load(chips_path)
    if kind == "dlib":
        from privis.identity.dlib_identity import DlibIdentity

        model = DlibIdentity()
        model.embed_chips(chips[:2])  # warm-up
        t0 = time.perf_counter()
        out = model.embed_chips(chips)
        seconds = time.perf_counter() - t0
        extra: dict = {}
    else:
        from privis.identity.dlib_resnet import DlibFaceResNet

        device = torch.device("cuda" if kind == "torch-cuda" else "cpu")
        net = DlibFaceResNet.load().to(device)
        with torch.no_grad():
            net(chips[:batch_size].to(device))  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            out = torch.cat([net(b.to(device)).cpu() for b in chips.split(batch_size)])
            seconds = time.perf_counter() - t0
        extra = {"batch_size": batch_size, "device": str(device)}
        if device.type == "cuda":
            extra["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    out_path = f"{chips_path}.{kind}.pt"
    torch.save(out, out_path)
    return {"kind": kind, "n": len(chips), "seconds": seconds, "descriptors_per_second": len(chips) / seconds,
            "peak_rss_mb": peak_rss_mb(), "threads": threads, "descriptors": out_path, **extra}


def run(kind: str, chips_path: str, batch_size: int, threads: int) -> dict:
    """:func:`_worker` in a fresh process, so that its peak memory is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(_worker, kind, chips_path, batch_size, threads).result()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=128, help="chips described by each side")
    ap.add_argument("--faces", type=int, default=32, help="distinct real faces the chips come from")
    ap.add_argument("--batch-size", type=int, default=64, help="chips per forward pass of the torch port")
    ap.add_argument("--threads", type=int, default=1, help="threads of each side (torch, and dlib's BLAS)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # the workers inherit it before they load any library
    start = time.perf_counter()
    kinds = ["torch-cpu", "dlib"] + (["torch-cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        chips_path = str(Path(tmp) / "chips.pt")
        torch.save(make_chips(args.faces, args.n), chips_path)
        rows = {kind: run(kind, chips_path, args.batch_size, args.threads) for kind in kinds}
        reference = torch.load(rows["dlib"].pop("descriptors"))
        for kind in kinds:
            if kind != "dlib":
                rows[kind]["max_abs_diff_to_dlib"] = float((torch.load(rows[kind].pop("descriptors")) - reference)
                                                           .abs().max())
    dlib_rate = rows["dlib"]["descriptors_per_second"]
    summary = {"n": float(args.n), "threads": float(args.threads), "descriptors_per_s_dlib": dlib_rate,
               "peak_rss_mb_dlib": rows["dlib"]["peak_rss_mb"]}
    for kind in kinds:
        if kind != "dlib":
            key = kind.replace("-", "_")
            summary |= {f"descriptors_per_s_{key}": rows[kind]["descriptors_per_second"],
                        f"ratio_{key}_to_dlib": rows[kind]["descriptors_per_second"] / dlib_rate,
                        f"max_abs_diff_{key}": rows[kind]["max_abs_diff_to_dlib"],
                        f"peak_rss_mb_{key}": rows[kind]["peak_rss_mb"]}
    result = Result("bench-dlib-port", summary=summary, tables={"sides": list(rows.values())},
                    config={"chips": f"dlib get_face_chip 150x150 of {args.faces} real faces, repeated to {args.n}",
                            "batch_size": args.batch_size, "load_average": load_average()},
                    seconds=time.perf_counter() - start,
                    headline="descriptors per second of privis' torch port of dlib's face ResNet and of dlib itself")
    print(result.to_json())
    if args.json:
        result.save_json(args.json)
    return result.summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
