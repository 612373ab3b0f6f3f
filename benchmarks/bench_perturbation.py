"""Protective perturbation generator speed: eager PyTorch and ONNX Runtime, and the protector's transform
in fp32 and bf16.

Issue 4's acceptance figure: <= 5 ms/image on 2 cores (the paper's Table 3: 1.2-1.4 ms on a 16-core CPU).
Measured for the paper's width-32 U-Net (7.766 M parameters) and privis' default width 16, eager PyTorch
(contiguous NCHW, and channels-last memory format) and ONNX Runtime (the file written by
``privis.models.export``, checked against PyTorch first). Each figure is the median of repeated timed
calls after a warm-up; the load average before and after is recorded because the machine is shared.
Weights are random: speed does not depend on them.

``--transform-sizes`` (default 32 224) adds rows of ``ProtectivePerturbation.transform`` (width 16, on
:func:`privis.random.default_device`, images already there) at each ``precision`` of ``--precisions``
(default fp32 bf16; fp16 on CUDA), timed in alternating rounds in the same run so that load on a shared
machine hits every precision alike, with each precision's largest ``|output - fp32 output|``. The paper's
Table 3 figure is 0.047 ms per 32 x 32 image on a GPU.

Run:  OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_perturbation.py [--batch 256] [--threads 2]
          [--widths 16 32] [--budget 10] [--transform-sizes 32 224] [--precisions fp32 bf16] [--rounds 5]
          [--json runs/bench_perturbation.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from privis import models
from privis.experiments.perturbation_tables import load_average, time_call
from privis.fsutil import atomic_write_text
from privis.methods.perturbation import ProtectivePerturbation
from privis.models.export import check_parity, export_onnx, onnx_session, run_onnx
from privis.random import default_device

#: Images per transform call at each side on the CPU (on CUDA 64 times as many, to fill the device).
TRANSFORM_IMAGES = {32: 1024, 224: 64}


def bench(width: int, batch: int, size: int, budget: float, tmp: Path) -> list[dict]:
    torch.manual_seed(0)
    g = models.create("unet-perturbation", in_channels=3, width=width).eval()
    x = torch.rand(batch, 3, size, size)
    params = sum(p.numel() for p in g.parameters())
    path = export_onnx(g, tmp / f"w{width}.onnx", x[:1])
    parity = check_parity(g, [x[:8]], onnx_path=path)
    session = onnx_session(path)
    g_cl = models.create("unet-perturbation", in_channels=3, width=width)
    g_cl.load_state_dict(g.state_dict())
    g_cl = g_cl.eval().to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def eager() -> None:
        with torch.inference_mode():
            g(x)

    def eager_cl() -> None:
        with torch.inference_mode():
            g_cl(x_cl)

    def ort() -> None:
        run_onnx(session, x)

    rows = []
    for runtime, fn in (("eager", eager), ("eager channels_last", eager_cl), ("onnxruntime", ort)):
        before = load_average()
        seconds = time_call(fn, budget_s=budget)
        rows.append({"width": width, "params": params, "runtime": runtime, "batch": batch, "size": f"3x{size}x{size}",
                     "ms_per_image": 1000 * seconds / batch, "images_per_second": batch / seconds,
                     "onnx_max_abs_diff": parity["onnx_max_abs_diff"], "threads": torch.get_num_threads(),
                     "load_average_before": before, "load_average_after": load_average()})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_transform(size: int, precisions: list[str], rounds: int, width: int = 16) -> list[dict]:
    """``transform`` images/s at ``3 x size x size`` for each precision, in ``rounds`` alternating rounds."""
    device = default_device()
    n = TRANSFORM_IMAGES.get(size, max(1, 65536 // (size * size))) * (64 if device.type == "cuda" else 1)
    torch.manual_seed(0)
    x = torch.rand(n, 3, size, size, device=device)
    generator = models.create("unet-perturbation", in_channels=3, width=width)
    pp = ProtectivePerturbation(epochs=0, generator_model=generator, target_model=nn.Identity(), aux_arch=None,
                                use_aux=False).fit(x[:1].cpu())

    def call(precision: str) -> torch.Tensor:
        pp.set_params(precision=precision)
        out = pp.transform(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    outputs = {p: call(p) for p in precisions}  # warm-up, and each precision's output
    times: dict[str, list[float]] = {p: [] for p in precisions}
    before = load_average()
    for _ in range(rounds):
        for p in precisions:
            t0 = time.perf_counter()
            call(p)
            times[p].append(time.perf_counter() - t0)
    after = load_average()
    rows = []
    for p in precisions:
        seconds = statistics.median(times[p])
        rows.append({"kind": "transform", "width": width, "precision": p, "size": f"3x{size}x{size}", "images": n,
                     "device": str(device), "ms_per_image": 1000 * seconds / n, "images_per_second": n / seconds,
                     "max_abs_diff_vs_fp32": float((outputs[p] - outputs[precisions[0]]).abs().max())
                     if precisions[0] == "fp32" else None,
                     "rounds": rounds, "threads": torch.get_num_threads(), "load_average_before": before,
                     "load_average_after": after})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--widths", type=int, nargs="*", default=[16, 32],
                        help="U-Net widths of the runtime rows (none: skip them)")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of timed calls per figure (at least 3)")
    parser.add_argument("--transform-sizes", type=int, nargs="*", default=[32, 224],
                        help="image sides of the transform rows (none: skip them)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed rounds of the transform rows")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="privis-bench-pp-") as tmp:
        rows = [r for w in args.widths for r in bench(w, args.batch, args.size, args.budget, Path(tmp))]
    rows += [r for size in args.transform_sizes for r in bench_transform(size, args.precisions, args.rounds)]
    result = {"rows": rows, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "torch": torch.__version__}
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
