"""Protective perturbation generator speed at 32x32x3, batch 256: eager PyTorch and ONNX Runtime.

Issue 4's acceptance figure: <= 5 ms/image on 2 cores (the paper's Table 3: 1.2-1.4 ms on a 16-core CPU).
Measured for the paper's width-32 U-Net (7.766 M parameters) and privis' default width 16, eager PyTorch
(contiguous NCHW, and channels-last memory format) and ONNX Runtime (the file written by
``privis.models.export``, checked against PyTorch first). Each figure is the median of repeated timed
calls after a warm-up; the load average before and after is recorded because the machine is shared.
Weights are random: speed does not depend on them.

Run:  OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_perturbation.py [--batch 256] [--threads 2]
          [--widths 16 32] [--budget 10] [--json runs/bench_perturbation.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from privis import models
from privis.experiments.perturbation_tables import load_average, time_call
from privis.fsutil import atomic_write_text
from privis.models.export import check_parity, export_onnx, onnx_session, run_onnx


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of timed calls per figure (at least 3)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="privis-bench-pp-") as tmp:
        rows = [r for w in args.widths for r in bench(w, args.batch, args.size, args.budget, Path(tmp))]
    result = {"rows": rows, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "torch": torch.__version__}
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
