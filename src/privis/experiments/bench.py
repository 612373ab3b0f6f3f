"""Behind ``privis bench``: protection throughput, peak memory and the ratio to a roofline bound of every
method at three image sizes, on the CPU or a CUDA device.

Each (method, size) is measured in its own process, so its peak resident memory is its own: the method
is created with its defaults (``random_state=0``), fitted first when it declares ``requires_fit`` (on a small
synthetic labelled set of the same size, on the measured device; parameters that only shorten fitting are
reduced where listed in ``FIT_ONLY_PARAMS``), then ``transform`` protects synthetic images on the measured
device in batches and is timed (CUDA is synchronised before the clock starts and before it stops). Methods
keep their default parameters for the measured ``transform`` (Veil: the paper's 300 steps, all of them: see
``MEASURE_PARAMS``); slow methods are measured on fewer images instead (see ``--n``), never with cheaper
settings; methods whose ``batch_size`` only chunks ``transform`` (``TRANSFORM_BATCH_METHODS``) get the
bench's batch.

How much work is timed depends on the device (:func:`plan`): on the CPU, ``N_FAST`` / ``N_SLOW`` images in
batches of 256; on CUDA, batches large enough to leave launch overhead behind (``CUDA_BATCH``: 8,192 small
images, 256 at 224 x 224), one batch for slow methods and at least ``CUDA_FAST_BATCHES`` batches and
``CUDA_MIN_SECONDS`` of work for the others, cycling over that many distinct images.

Every row carries its roofline bound (:mod:`privis.experiments.bounds`): the device's matrix-product,
convolution and copy rates are measured once per run, in a process of their own; each method's FLOPs per image
are counted on ``COUNT_IMAGES`` images by the (untimed) warm-up call, its bytes per image are ``2 x C x H x W x 4``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

#: name -> (channels, height, width)
SIZES: dict[str, tuple[int, int, int]] = {"28x28-grey": (1, 28, 28), "32x32-rgb": (3, 32, 32),
                                          "224x224-rgb": (3, 224, 224)}
#: ``--device`` values; ``auto`` is CUDA when torch sees a CUDA device, else the CPU.
DEVICES = ("auto", "cpu", "cuda")
#: CPU: images timed per size for ordinary methods and for slow ones (Veil: 300 gradient steps per image),
#: in batches of ``BATCH``.
N_FAST = {"28x28-grey": 2048, "32x32-rgb": 2048, "224x224-rgb": 256}
N_SLOW = {"28x28-grey": 64, "32x32-rgb": 64, "224x224-rgb": 8}
BATCH = 256
#: CUDA: images per batch; slow methods time one batch, the others at least ``CUDA_FAST_BATCHES`` distinct
#: batches and ``CUDA_MIN_SECONDS`` of work (cycling over them).
CUDA_BATCH = {"28x28-grey": 8192, "32x32-rgb": 8192, "224x224-rgb": 256}
CUDA_FAST_BATCHES = 8
CUDA_MIN_SECONDS = 1.0
SLOW_METHODS = {"veil", "fsap"}
#: Methods whose ``batch_size`` parameter only chunks ``transform``: set to the bench's batch after fitting.
TRANSFORM_BATCH_METHODS = {"veil", "fsap"}
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
#: Images of the warm-up call, whose FLOPs are counted (under ``FlopCounterMode``; not timed).
COUNT_IMAGES = 2


def resolve_device(device: str, *, require: bool = True) -> str:
    """``"cpu"`` or ``"cuda"`` for a ``--device`` value.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        require: refuse ``"cuda"`` when torch sees no CUDA device (False: plan for it anyway).

    Raises:
        InvalidInputError: an unknown value, or ``"cuda"`` without CUDA.
    """
    import torch

    from privis.errors import InvalidInputError

    if device not in DEVICES:
        raise InvalidInputError(f"unknown device {device!r}; devices: {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and require and not torch.cuda.is_available():
        raise InvalidInputError(f"--device cuda: torch {torch.__version__} sees no CUDA device on this machine; "
                                "use --device cpu or auto")
    return device


def plan(method: str, size: str, device: str, n: int | None = None) -> dict[str, Any]:
    """How much work one (method, size) measurement times on ``device`` (``"cpu"`` or ``"cuda"``).

    Returns:
        ``{"n": least images timed, "batch": images per transform call, "min_seconds": least seconds timed}``;
        ``n`` given overrides the default count.
    """
    slow = method in SLOW_METHODS
    if device == "cpu":
        return {"n": n or (N_SLOW if slow else N_FAST)[size], "batch": BATCH, "min_seconds": 0.0}
    batch = CUDA_BATCH[size]
    return {"n": n or (batch if slow else CUDA_FAST_BATCHES * batch), "batch": batch,
            "min_seconds": 0.0 if slow else CUDA_MIN_SECONDS}


def _rates(device: str, threads: int, queue: Any) -> None:
    """Child process: measure the device's roofline rates."""
    try:
        import torch

        from privis.experiments.bounds import measure_device_rates

        torch.set_num_threads(threads)
        queue.put(measure_device_rates(device).as_dict())
    except Exception as exc:  # reported, so the bench still runs without bounds
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _measure(method: str, size: str, device: str, work: dict[str, Any], threads: int, extra: dict[str, Any],
             queue: Any) -> None:
    """Child process: fit (if needed), count FLOPs, time ``transform`` on ``work["n"]`` images, report figures."""
    try:
        import torch

        from privis import methods
        from privis.experiments.bounds import count_flops, synchronize
        from privis.sysinfo import peak_rss_mb

        torch.set_num_threads(threads)
        dev = torch.device(device)
        c, h, w = SIZES[size]
        n, batch = work["n"], work["batch"]
        gen = torch.Generator().manual_seed(0)
        params = {**FIT_ONLY_PARAMS.get(method, {}), **MEASURE_PARAMS.get(method, {}), **extra}
        protector = methods.create(method, random_state=0, **params)
        fit_seconds = 0.0
        if protector.requires_fit:
            t0 = time.perf_counter()
            fit_x = torch.rand((FIT_IMAGES, c, h, w), generator=gen).to(dev)
            fit_y = (torch.arange(FIT_IMAGES) % 10).to(dev)
            protector.fit(fit_x, fit_y)
            fit_seconds = time.perf_counter() - t0
        if method in TRANSFORM_BATCH_METHODS:
            protector.set_params(batch_size=batch)
        images = torch.rand((n, c, h, w), generator=gen).to(dev)
        # The FLOP count doubles as the warm-up call: lazy initialisation is not throughput.
        _, flops = count_flops(protector.transform, images[:COUNT_IMAGES])
        synchronize(dev)
        done, start, t0 = 0, 0, time.perf_counter()
        while done < n or time.perf_counter() - t0 < work["min_seconds"]:
            chunk = images[start:start + batch]
            protector.transform(chunk)
            done += chunk.shape[0]
            start = 0 if start + batch >= n else start + batch
        synchronize(dev)
        seconds = time.perf_counter() - t0
        peak_device = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
        queue.put({"method": method, "size": size, "device": str(dev), "n": done, "batch": batch, "seconds": seconds,
                   "images_per_second": done / seconds, "flops_per_image": flops / COUNT_IMAGES,
                   "fit_seconds": fit_seconds, "peak_rss_mb": peak_rss_mb(), "peak_device_mb": peak_device,
                   "threads": threads, "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                   "diagnostics": protector.diagnostics()})
    except Exception as exc:  # reported as a row, so one failing method does not hide the others
        queue.put({"method": method, "size": size, "device": device, "n": work["n"],
                   "error": f"{type(exc).__name__}: {exc}"})


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


def _isolated(target: Any, args: tuple[Any, ...], timeout: float) -> dict[str, Any]:
    """``target(*args, queue)`` in a freshly spawned process under :func:`_watch`; the dict it put on the
    queue, or ``{"error": why}``."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    why = _watch(proc, timeout, MEMORY_LIMIT_MB)
    if not queue.empty():
        return dict(queue.get())
    return {"error": why or f"process exited with {proc.exitcode}"}


def _add_bound(row: dict[str, Any], rates: dict[str, Any]) -> None:
    """Add ``bytes_per_image``, the roofline bound, what limits it and ``bound_ratio`` to a measured row."""
    from privis.experiments.bounds import min_bytes_per_image, roofline_images_per_second

    row["bytes_per_image"] = min_bytes_per_image(*SIZES[row["size"]])
    if "error" in row or "error" in rates:
        return
    flop_s, byte_s = rates["flops_per_second"], rates["copy_bytes_per_second"]
    row["bound_images_per_second"] = roofline_images_per_second(row["flops_per_image"], row["bytes_per_image"],
                                                                 flop_s, byte_s)
    compute = row["flops_per_image"] / flop_s >= row["bytes_per_image"] / byte_s
    row["bound_by"] = "compute" if compute else "memory"
    row["bound_ratio"] = row["images_per_second"] / row["bound_images_per_second"]


def run_bench(method_names: list[str] | None = None, *, sizes: list[str] | None = None, n: int | None = None,
              threads: int = 2, device: str = "auto", timeout: float = TIMEOUT, budget: float | None = None,
              dry_run: bool = False, params: dict[str, dict[str, Any]] | None = None) -> Any:
    """Benchmark ``method_names`` (default: every registered method protecting against classification) at
    ``sizes`` on ``device``; returns a ``Result``.

    Args:
        method_names: registered method names (default: every classification method).
        sizes: keys of :data:`SIZES` (default: all three).
        n: least images timed per measurement (default: :func:`plan`'s for the device).
        threads: torch intra-op threads of each measurement (and of the CPU rate measurement).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see :func:`resolve_device`).
        timeout: seconds one measurement may take.
        budget: seconds the whole run may take (None: no limit); measurements that would start after it are
            rows with an ``error`` saying so, and none runs past it.
        dry_run: return the plan (table ``plan``: method, size, device, n, batch, min_seconds) without
            measuring anything; ``"cuda"`` is planned even without CUDA.
        params: method -> parameters measured instead of its defaults (e.g. ``{"perturbation": {"precision":
            "fp16"}}``: the configuration a GPU user would pick); each row records them in ``measure_params``.

    Returns:
        A ``Result`` whose table ``throughput`` has one row per (method, size): ``method``, ``size``,
        ``device``, ``n``, ``batch``, ``seconds``, ``images_per_second``, ``flops_per_image``,
        ``bytes_per_image``, ``bound_images_per_second``, ``bound_by`` (``"compute"`` or ``"memory"``),
        ``bound_ratio``, ``fit_seconds``, ``peak_rss_mb`` (MiB, whole process), ``peak_device_mb`` (MiB of
        ``torch.cuda.max_memory_allocated``, whole process; None on the CPU), ``threads``, ``load_average``,
        ``diagnostics``; or ``method``, ``size``, ``device``, ``n`` and ``error``. ``config["rates"]`` holds
        the measured device rates.

    Raises:
        InvalidInputError: an unknown method, size or device, or ``"cuda"`` without CUDA (unless ``dry_run``).
    """
    from privis import methods
    from privis.engine.core import is_private_param
    from privis.errors import InvalidInputError
    from privis.results import Result

    names = method_names or [n for n, cls in methods.available().items() if cls.task == "classification"]
    for name in names:
        methods.get(name)  # an unknown name: the error lists the methods
    extra = params or {}
    for name in extra:
        if name not in names:
            raise InvalidInputError(f"parameters given for {name!r}, which is not measured (methods: "
                                    f"{', '.join(names)})")
        if not dry_run:  # a bad name or value: one line, before any work (a dry run may plan for absent CUDA)
            methods.create(name, **extra[name]).validate_params()
    sizes = sizes or list(SIZES)
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        raise InvalidInputError(f"unknown size {bad[0]!r}; sizes: {', '.join(SIZES)}")
    where = resolve_device(device, require=not dry_run)
    t_start = time.perf_counter()
    work = {(m, s): plan(m, s, where, n) for m in names for s in sizes}
    config: dict[str, Any] = {"methods": names, "sizes": sizes, "device": where, "threads": threads,
                              "budget": budget, "fit_images": FIT_IMAGES, "count_images": COUNT_IMAGES}
    if dry_run:
        rows = [{"method": m, "size": s, "device": where, **w} for (m, s), w in work.items()]
        return Result(name="bench", tables={"plan": rows}, config=config, notes=["Dry run: nothing measured."],
                      seconds=time.perf_counter() - t_start)
    deadline = t_start + (budget if budget is not None else float("inf"))
    rates = _isolated(_rates, (where, threads), min(timeout, deadline - time.perf_counter()))
    rows = []
    for (method, size), w in work.items():
        row: dict[str, Any] = {"method": method, "size": size, "device": where, "n": w["n"]}
        left = min(timeout, deadline - time.perf_counter())
        if left <= 0:
            row["error"] = f"skipped: the run's {budget:.0f} s budget was spent"
        else:
            row.update(_isolated(_measure, (method, size, where, w, threads, extra.get(method, {})), left))
        _add_bound(row, rates)
        row["fit_params"] = FIT_ONLY_PARAMS.get(method, {})
        cls = methods.available()[method]
        row["measure_params"] = {k: "<given>" if is_private_param(cls, k) else v
                                 for k, v in {**MEASURE_PARAMS.get(method, {}), **extra.get(method, {})}.items()}
        rows.append(row)
    summary: dict[str, float] = {}
    for row in rows:
        if "error" not in row:
            key = f"{row['method']}_{row['size'].replace('-', '_')}"
            summary[f"{key}_images_per_second"] = row["images_per_second"]
            summary[f"{key}_peak_rss_mb"] = row["peak_rss_mb"]
            if "bound_ratio" in row:
                summary[f"{key}_bound_ratio"] = row["bound_ratio"]
    return Result(name="bench", summary=summary, tables={"throughput": rows}, config={**config, "rates": rates},
                  notes=["Synthetic uniform-noise images; each (method, size) in its own process. "
                         "Veil runs all of its default 300 steps on every image (no early stop: its worst case) "
                         "on fewer images; fitting-only parameters are "
                         f"shortened for {sorted(FIT_ONLY_PARAMS)} (transform cost unchanged).",
                         "bound_images_per_second = 1 / max(flops_per_image / F, bytes_per_image / B): F is the "
                         "larger of the measured fp32 matrix-product and 3x3 convolution rates, B the measured "
                         "copy bandwidth (read + write) of this device (config.rates); flops_per_image counts "
                         "matrix products and convolutions, forward and backward (FlopCounterMode), not "
                         "elementwise work, sorting or work outside torch; bytes_per_image = 2 x C x H x W x 4 "
                         "(the input read and the output written once). Both undercount, so bound_ratio <= 1 "
                         "unless a batch stays in a cache faster than B (small images)."],
                  seconds=time.perf_counter() - t_start)


__all__ = ["DEVICES", "SIZES", "plan", "resolve_device", "run_bench"]
