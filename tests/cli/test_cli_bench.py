"""``privis bench --device`` end to end on the CPU, and the GPU check script's plan (no GPU needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from typer.testing import CliRunner

from privis.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
KEYS = {"method", "size", "device", "images_per_second", "bound_images_per_second", "bound_ratio",
        "flops_per_image", "bytes_per_image", "peak_rss_mb", "peak_device_mb"}


def test_bench_rows_carry_the_bound_and_its_ratio(tmp_path):
    path = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--device", "cpu", "--n", "8", "--size", "28x28-grey", "noise",
                                 "--threads", "1", "--param", "noise.sigma=0.05", "--json", str(path)])
    assert result.exit_code == 0, result.output
    saved = json.loads(path.read_text())
    (row,) = saved["tables"]["throughput"]
    assert row.keys() >= KEYS
    assert row["device"] == "cpu" and row["peak_device_mb"] is None and row["n"] >= 8
    assert row["measure_params"] == {"sigma": 0.05}
    assert row["flops_per_image"] == 0 and row["bytes_per_image"] == 2 * 28 * 28 * 4  # noise: elementwise only
    # Uncounted elementwise FLOPs only lower the bound's FLOP side; a ratio above 1 needs a batch served
    # from a cache faster than the copy bandwidth measured on a large tensor.
    assert 0 < row["bound_ratio"] <= 1.5
    assert row["bound_ratio"] == row["images_per_second"] / row["bound_images_per_second"]
    rates = saved["config"]["rates"]
    assert rates["copy_bytes_per_second"] > 0 and rates["flops_per_second"] > 0
    assert "ratio" in result.output and f"{row['bound_ratio']:.3f}" in result.output


def test_bench_results_never_record_the_owners_key_path(tmp_path):
    from privis.methods.visualmixer import generate_key

    key = generate_key(tmp_path / "owner-secret.key")
    path = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--device", "cpu", "--n", "8", "--size", "28x28-grey", "visualmixer",
                                 "--threads", "1", "--param", f"visualmixer.key_file={key}", "--json", str(path)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(path.read_text())["tables"]["throughput"]
    assert row["measure_params"]["key_file"] == "<given>" and row["images_per_second"] > 0
    assert "owner-secret" not in path.read_text() and str(tmp_path) not in path.read_text()


def test_bench_on_cuda_without_cuda_is_one_error_line(tmp_path):
    if torch.cuda.is_available():
        return  # the refusal only exists where CUDA does not
    result = runner.invoke(app, ["bench", "--device", "cuda", "noise", "--json", str(tmp_path / "b.json")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "sees no CUDA device" in result.output
    assert not (tmp_path / "b.json").exists()


def test_bench_parameters_are_checked_before_any_work(tmp_path):
    for bad, says in ((["noise", "--param", "noise.sigma=-1"], "sigma"),
                      (["noise", "--param", "blur.radius=2"], "not measured"),
                      (["noise", "--param", "sigma=0.1"], "METHOD.NAME=VALUE")):
        result = runner.invoke(app, ["bench", "--device", "cpu", *bad, "--json", str(tmp_path / "b.json")])
        assert result.exit_code == 2 and says in result.output, result.output
        assert result.output.strip().count("\n") == 0 and not (tmp_path / "b.json").exists()


def test_gpu_check_script_is_executable_and_its_plan_covers_the_acceptance_rows(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert os.access(script, os.X_OK)
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    done = subprocess.run([str(script), "--dry-run"], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    plan = json.loads((tmp_path / "gpu_check.json").read_text())["tables"]["plan"]
    rows = {(r["method"], r["size"]): r for r in plan}
    assert {("veil", "28x28-grey"), ("veil", "224x224-rgb"), ("visualmixer", "224x224-rgb"),
            ("perturbation", "32x32-rgb")} <= rows.keys()
    assert all(r["device"] == "cuda" for r in plan)
    assert rows[("veil", "28x28-grey")]["batch"] == 8192 and rows[("veil", "224x224-rgb")]["n"] == 256
    if not torch.cuda.is_available():
        refused = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=240)
        assert refused.returncode != 0 and "no CUDA device" in refused.stderr
