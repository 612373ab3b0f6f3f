"""Behind ``privis bench``: protection throughput and peak memory of every method at three image sizes.

Each (method, size) is measured in its own process, so its peak resident memory is its own: the method
is created with its defaults (``random_state=0``), fitted first when it declares ``requires_fit`` (on a small
synthetic labelled set of the same size; parameters that only shorten fitting are reduced where listed in
``FIT_ONLY_PARAMS``), then
``transform`` protects ``n`` synthetic images in batches of 256 and is timed. Methods keep their default
parameters for the measured ``transform`` (Veil: the paper's 300 steps, all of them: see
``MEASURE_PARAMS``); slow methods are measured on fewer images instead (see ``--n``), never with cheaper
settings.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

#: name -> (channels, height, width)
SIZES: dict[str, tuple[int, int, int]] = {"28x28-grey": (1, 28, 28), "32x32-rgb": (3, 32, 32),
                                          "224x224-rgb": (3, 224, 224)}
#: Images timed per size for ordinary methods and for slow ones (Veil: 300 gradient steps per image).
N_FAST = {"28x28-grey": 2048, "32x32-rgb": 2048, "224x224-rgb": 256}
N_SLOW = {"28x28-grey": 64, "32x32-rgb": 64, "224x224-rgb": 8}
SLOW_METHODS = {"veil"}
#: Parameters that only shorten *fitting* (training the method's own models), never its ``transform``:
#: Protective Perturbation's generator is a U-Net forward pass whatever its number of training epochs.
#: (Its ``transform`` chunks by ``max(batch_size, 256)``, so a smaller training batch leaves it unchanged.)
FIT_ONLY_PARAMS: dict[str, dict[str, Any]] = {
    "dp-image": {"codec_epochs": 1},
    "perturbation": {"epochs": 1, "classifier_epochs": 1, "batch_size": 16, "classifier_batch_size": 32},
}
#: Parameters that make a measured ``transform`` do its full work on synthetic data. Veil stops an image's
#: gradient iteration once its loss is below xi, which on uniform noise happens before the first step, so the
#: figure would time nothing: here every image runs all T = 300 steps (xi = -1e30), Veil's worst case.
MEASURE_PARAMS: dict[str, dict[str, Any]] = {"veil": {"stop_loss": -1e30}}
#: Seconds one measurement may take before it is reported as timed out.
TIMEOUT = 1800
#: Resident memory (MiB) one measurement may use before it is stopped (the machine is shared).
MEMORY_LIMIT_MB = 6144
FIT_IMAGES = 256
BATCH = 256


def _measure(method: str, size: str, n: int, threads: int, queue: Any) -> None:
    """Child process: fit (if needed), time ``transform`` on ``n`` images, report figures."""
    try:
        import torch

        from privis import methods
        from privis.sysinfo import peak_rss_mb

        torch.set_num_threads(threads)
        c, h, w = SIZES[size]
        gen = torch.Generator().manual_seed(0)
        params = {**FIT_ONLY_PARAMS.get(method, {}), **MEASURE_PARAMS.get(method, {})}
        protector = methods.create(method, random_state=0, **params)
        fit_seconds = 0.0
        if protector.requires_fit:
            t0 = time.perf_counter()
            fit_x = torch.rand((FIT_IMAGES, c, h, w), generator=gen)
            fit_y = torch.arange(FIT_IMAGES) % 10
            protector.fit(fit_x, fit_y)
            fit_seconds = time.perf_counter() - t0
        images = torch.rand((n, c, h, w), generator=gen)
        protector.transform(images[:2])  # warm-up: lazy initialisation is not throughput
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            protector.transform(images[start:start + BATCH])
        seconds = time.perf_counter() - t0
        queue.put({"method": method, "size": size, "n": n, "seconds": seconds, "images_per_second": n / seconds,
                   "fit_seconds": fit_seconds, "peak_rss_mb": peak_rss_mb(), "threads": threads,
                   "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                   "diagnostics": protector.diagnostics()})
    except Exception as exc:  # reported as a row, so one failing method does not hide the others
        queue.put({"method": method, "size": size, "n": n, "error": f"{type(exc).__name__}: {exc}"})


def _watch(proc: Any, timeout: float, limit_mb: float) -> str | None:
    """Wait for ``proc``; kill it past ``timeout`` seconds or ``limit_mb`` MiB resident, saying why."""
    import psutil

    t0 = time.perf_counter()
    peak = 0.0
    while proc.is_alive():
        try:
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        except psutil.Error:
            rss = 0.0
        peak = max(peak, rss)
        if rss > limit_mb or time.perf_counter() - t0 > timeout:
            proc.kill()
            proc.join()
            if rss > limit_mb:
                return f"stopped: resident memory {rss:.0f} MiB exceeded the {limit_mb:.0f} MiB limit"
            return f"stopped: exceeded the {timeout:.0f} s time limit (resident memory peaked at {peak:.0f} MiB)"
        proc.join(0.5)
    return None


def run_bench(method_names: list[str] | None = None, *, sizes: list[str] | None = None, n: int | None = None,
              threads: int = 2) -> Any:
    """Benchmark ``method_names`` (default: every registered method protecting against classification) at
    ``sizes``; returns a ``Result``."""
    from privis import methods
    from privis.errors import InvalidInputError
    from privis.results import Result

    names = method_names or [n for n, cls in methods.available().items() if cls.task == "classification"]
    for name in names:
        methods.get(name)  # an unknown name: the error lists the methods
    sizes = sizes or list(SIZES)
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        raise InvalidInputError(f"unknown size {bad[0]!r}; sizes: {', '.join(SIZES)}")
    t_start = time.perf_counter()
    ctx = mp.get_context("spawn")
    rows: list[dict[str, Any]] = []
    for method in names:
        for size in sizes:
            count = n or (N_SLOW if method in SLOW_METHODS else N_FAST)[size]
            queue = ctx.Queue()
            proc = ctx.Process(target=_measure, args=(method, size, count, threads, queue))
            proc.start()
            why = _watch(proc, TIMEOUT, MEMORY_LIMIT_MB)
            row = queue.get() if not queue.empty() else {"method": method, "size": size, "n": count,
                                                          "error": why or f"process exited with {proc.exitcode}"}
            row["fit_params"] = FIT_ONLY_PARAMS.get(method, {})
            row["measure_params"] = MEASURE_PARAMS.get(method, {})
            rows.append(row)
    summary: dict[str, float] = {}
    for row in rows:
        if "error" not in row:
            key = f"{row['method']}_{row['size'].replace('-', '_')}"
            summary[f"{key}_images_per_second"] = row["images_per_second"]
            summary[f"{key}_peak_rss_mb"] = row["peak_rss_mb"]
    return Result(name="bench", summary=summary, tables={"throughput": rows},
                  config={"methods": names, "sizes": sizes, "threads": threads, "batch": BATCH,
                          "fit_images": FIT_IMAGES},
                  notes=["Synthetic uniform-noise images; each (method, size) in its own process. "
                         "Veil runs all of its default 300 steps on every image (no early stop: its worst case) "
                         "on fewer images; fitting-only parameters are "
                         f"shortened for {sorted(FIT_ONLY_PARAMS)} (transform cost unchanged)."],
                  seconds=time.perf_counter() - t_start)


__all__ = ["SIZES", "run_bench"]
