"""``privis.experiments.bench``: the work planned per device, the device check and the bound on each row."""

from __future__ import annotations

import time

import pytest
import torch

from privis.errors import InvalidInputError
from privis.experiments import bench


def test_cpu_plans_the_sizes_of_before_and_cuda_leaves_launch_overhead_behind():
    assert bench.plan("noise", "28x28-grey", "cpu") == {"n": 2048, "batch": 256, "min_seconds": 0.0}
    assert bench.plan("veil", "224x224-rgb", "cpu") == {"n": 8, "batch": 256, "min_seconds": 0.0}
    assert bench.plan("veil", "28x28-grey", "cuda") == {"n": 8192, "batch": 8192, "min_seconds": 0.0}
    assert bench.plan("veil", "224x224-rgb", "cuda") == {"n": 256, "batch": 256, "min_seconds": 0.0}
    fast = bench.plan("visualmixer", "224x224-rgb", "cuda")
    assert fast["min_seconds"] >= 1.0 and fast["n"] >= 4 * fast["batch"]  # distinct images across batches
    assert bench.plan("noise", "32x32-rgb", "cuda", n=10)["n"] == 10


def test_devices_resolve_and_cuda_without_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.resolve_device("auto") == "cpu"
    with pytest.raises(InvalidInputError, match="sees no CUDA device") as err:
        bench.resolve_device("cuda")
    assert "\n" not in str(err.value)
    assert bench.resolve_device("cuda", require=False) == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bench.resolve_device("auto") == "cuda"
    with pytest.raises(InvalidInputError, match="devices: auto, cpu, cuda"):
        bench.resolve_device("tpu")


def test_dry_run_plans_cuda_without_measuring(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = bench.run_bench(["veil", "noise"], sizes=["28x28-grey"], device="cuda", dry_run=True)
    assert [(r["method"], r["device"], r["n"], r["batch"]) for r in result.tables["plan"]] == [
        ("veil", "cuda", 8192, 8192), ("noise", "cuda", 65536, 8192)]


def test_each_row_gets_the_roofline_bound_of_its_size():
    rates = {"flops_per_second": 1e10, "copy_bytes_per_second": 6272e3}
    row = {"method": "x", "size": "28x28-grey", "images_per_second": 500.0, "flops_per_image": 0.0}
    bench._add_bound(row, rates)  # memory-bound: 6,272 bytes per image at 6.272 MB/s
    assert row["bytes_per_image"] == 6272 and row["bound_by"] == "memory"
    assert row["bound_images_per_second"] == pytest.approx(1000.0) and row["bound_ratio"] == pytest.approx(0.5)
    row = {"method": "x", "size": "28x28-grey", "images_per_second": 5.0, "flops_per_image": 1e9}
    bench._add_bound(row, rates)  # compute-bound: 1e9 FLOP at 1e10 FLOP/s
    assert row["bound_by"] == "compute" and row["bound_images_per_second"] == pytest.approx(10.0)
    row = {"method": "x", "size": "28x28-grey", "error": "failed"}
    bench._add_bound(row, rates)
    assert "bound_ratio" not in row


def test_a_spent_budget_skips_the_measurements_left_and_says_so():
    start = time.perf_counter()
    result = bench.run_bench(["noise"], sizes=["28x28-grey"], device="cpu", budget=1)
    assert time.perf_counter() - start < 30  # the rate measurement is stopped at the budget, not at TIMEOUT
    (row,) = result.tables["throughput"]
    assert row["error"] == "skipped: the run's 1 s budget was spent" and "bound_ratio" not in row
    assert "error" in result.config["rates"]


def test_the_timed_loop_cycles_over_its_images_until_the_least_time_is_spent():
    """The CUDA plan's loop (least images and least seconds), run in this process on the CPU."""
    rows: list[dict] = []

    class Queue:
        put = rows.append

    bench._measure("noise", "28x28-grey", "cpu", {"n": 4, "batch": 3, "min_seconds": 0.2}, torch.get_num_threads(),
                   {}, Queue())
    (row,) = rows
    assert "error" not in row, row
    assert row["seconds"] >= 0.2 and row["n"] > 4  # batches of 3 and 1 (the rest of the 4 images), repeated
    assert row["n"] % 4 in (0, 3) and row["images_per_second"] == row["n"] / row["seconds"]
    assert row["flops_per_image"] == 0 and row["peak_device_mb"] is None
