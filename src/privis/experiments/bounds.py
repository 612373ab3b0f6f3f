"""Roofline bounds: the fastest a method could protect images on a device, from its work per image.

A method that needs ``flops_per_image`` floating-point operations and moves ``bytes_per_image`` bytes per
image cannot run faster than

.. math::

    \\text{bound} = 1 / \\max(\\text{flops\\_per\\_image} / F, \\ \\text{bytes\\_per\\_image} / B)

images per second, where ``F`` is the device's dense arithmetic rate and ``B`` its memory bandwidth
(the roofline model: S. Williams, A. Waterman, D. Patterson, "Roofline: an insightful visual performance
model for multicore architectures", Communications of the ACM 52(4), 2009). Here both are *measured* on
the device, not taken from a data sheet:

- ``F``: the larger of the rates of a large fp32 matrix product and a large fp32 convolution, as torch runs
  them with its current backend settings (on CUDA, convolutions may use TF32: ``torch.backends.cudnn.allow_tf32``
  is True by default, matrix products do not unless ``torch.backends.cuda.matmul.allow_tf32`` is set).
- ``B``: the rate of a large tensor copy, counting the bytes read plus the bytes written.

``flops_per_image`` is counted by running the method under :class:`torch.utils.flop_counter.FlopCounterMode`,
which counts matrix products and convolutions, forward and backward (so every gradient step of an
iterative method is counted) but not elementwise operations, reductions, sorting or work done outside torch
(e.g. ONNX Runtime). ``bytes_per_image`` is the least traffic any implementation needs: reading the input
and writing the output once, ``2 x C x H x W x 4`` bytes in fp32. Both undercount, so the bound is an upper
bound on speed; a measured rate can still exceed it when the working set stays in a cache that is faster
than the bandwidth ``B`` measured on a large copy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.module_tracker import ModuleTracker

from privis.errors import InvalidInputError

#: Bytes per value of the canonical image form (float32).
FLOAT32_BYTES = 4


class _NoModuleTracker(ModuleTracker):
    """A module tracker that tracks nothing: every FLOP is counted once, under "Global".

    ``FlopCounterMode`` attributes FLOPs to modules with hooks that ``torch.autograd.grad`` on a leaf tensor
    refuses ("A leaf node was passed to _will_engine_execute_node"), which is how gradient-iteration methods
    take their gradients; only the total is needed here.
    """

    def __enter__(self) -> _NoModuleTracker:
        return self

    def __exit__(self, *args: object) -> None:
        return None


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Run ``fn(*args, **kwargs)`` and count its matrix-product and convolution FLOPs.

    Counts what :class:`torch.utils.flop_counter.FlopCounterMode` counts: ``mm``, ``addmm``, ``bmm``,
    convolutions, attention, forward and backward (one multiply-add = 2 FLOPs). Elementwise operations,
    reductions, sorting and work outside torch count 0.

    Args:
        fn: any callable; its tensors may live on any device.
        *args, **kwargs: passed to ``fn``.

    Returns:
        ``(fn's result, FLOPs)``.

    Example:
        >>> layer = torch.nn.Linear(8, 4, bias=False)
        >>> count_flops(layer, torch.rand(3, 8))[1]  # 2 x 3 x 8 x 4
        192
    """
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracker()
    with counter:
        out = fn(*args, **kwargs)
    return out, int(counter.get_total_flops())


def min_bytes_per_image(channels: int, height: int, width: int, itemsize: int = FLOAT32_BYTES) -> int:
    """The least memory traffic of protecting one image: read it once and write its output once.

    Args:
        channels, height, width: the image's ``C``, ``H``, ``W``.
        itemsize: bytes per value (4 for the canonical float32).

    Returns:
        ``2 x C x H x W x itemsize`` bytes.

    Example:
        >>> min_bytes_per_image(1, 28, 28)
        6272
    """
    return 2 * channels * height * width * itemsize


def roofline_images_per_second(flops_per_image: float, bytes_per_image: float, flops_per_second: float,
                               bytes_per_second: float) -> float:
    """The roofline bound: ``1 / max(flops_per_image / F, bytes_per_image / B)`` images per second.

    Args:
        flops_per_image: FLOPs one image needs (>= 0).
        bytes_per_image: bytes one image moves (> 0).
        flops_per_second: ``F``, the device's arithmetic rate (> 0).
        bytes_per_second: ``B``, the device's memory bandwidth (> 0).

    Returns:
        Images per second no implementation of that work can exceed on that device.

    Raises:
        InvalidInputError: a negative or non-finite count, or a rate or byte count that is not positive.

    Example:
        >>> roofline_images_per_second(1e9, 1e3, 1e12, 1e9)  # compute: 1 ms; memory: 1 us
        1000.0
    """
    values = {"flops_per_image": flops_per_image, "bytes_per_image": bytes_per_image,
              "flops_per_second": flops_per_second, "bytes_per_second": bytes_per_second}
    for key, value in values.items():
        lowest = ">= 0" if key == "flops_per_image" else "> 0"
        if not math.isfinite(value) or value < 0 or (value == 0 and lowest == "> 0"):
            raise InvalidInputError(f"roofline {key} must be finite and {lowest}, got {value}")
    return 1.0 / max(flops_per_image / flops_per_second, bytes_per_image / bytes_per_second)


@dataclass(frozen=True)
class DeviceRates:
    """Measured rates of one device (see :func:`measure_device_rates`).

    Attributes:
        device: the device measured, e.g. ``"cpu"`` or ``"cuda:0"``.
        threads: torch intra-op threads during the measurement (CPU rates depend on it).
        matmul_flops_per_second: fp32 matrix product rate, FLOP/s.
        conv_flops_per_second: fp32 3 x 3 convolution rate, FLOP/s.
        copy_bytes_per_second: large tensor copy rate, bytes read + written per second.
    """

    device: str
    threads: int
    matmul_flops_per_second: float
    conv_flops_per_second: float
    copy_bytes_per_second: float

    @property
    def flops_per_second(self) -> float:
        """``F``: the larger of the matrix-product and the convolution rates, FLOP/s."""
        return max(self.matmul_flops_per_second, self.conv_flops_per_second)

    def as_dict(self) -> dict[str, Any]:
        """The rates and ``flops_per_second`` as a flat dict (JSON-ready)."""
        return {**asdict(self), "flops_per_second": self.flops_per_second}


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on a CUDA ``device`` (nothing to wait for elsewhere): a clock read after it
    has timed the kernels, not their launches."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _best_seconds(fn: Callable[[], Any], device: torch.device, min_seconds: float) -> float:
    """Shortest wall time of one ``fn()`` call over calls repeated for at least ``min_seconds`` (after one
    warm-up call), synchronising CUDA around each call."""
    fn()
    synchronize(device)
    best, spent = float("inf"), 0.0
    while spent < min_seconds or best == float("inf"):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        took = time.perf_counter() - t0
        best, spent = min(best, took), spent + took
    return best


def _large(device: torch.device) -> bool:
    return device.type != "cpu"


def measure_matmul_rate(device: torch.device | str = "cpu", *, size: int | None = None,
                        min_seconds: float = 0.3) -> float:
    """FLOP/s of a square fp32 matrix product on ``device`` (``2 n^3`` FLOPs per product, best call).

    Args:
        device: where to measure.
        size: ``n`` (default 1,024 on CPU, 8,192 elsewhere: large enough to leave launch overhead behind).
        min_seconds: how long to repeat the product.

    Returns:
        FLOP/s, positive and finite.
    """
    dev = torch.device(device)
    n = size or (8192 if _large(dev) else 1024)
    a = torch.rand((n, n), device=dev)
    b = torch.rand((n, n), device=dev)
    out = torch.empty((n, n), device=dev)
    return 2.0 * n**3 / _best_seconds(lambda: torch.mm(a, b, out=out), dev, min_seconds)


def measure_conv_rate(device: torch.device | str = "cpu", *, batch: int | None = None,
                      min_seconds: float = 0.3) -> float:
    """FLOP/s of an fp32 3 x 3 convolution, 64 -> 64 channels on 56 x 56 maps (a ResNet stage), on ``device``.

    The FLOPs are those :func:`count_flops` counts for the same call.

    Args:
        device: where to measure.
        batch: images per call (default 8 on CPU, 256 elsewhere).
        min_seconds: how long to repeat the convolution.

    Returns:
        FLOP/s, positive and finite.
    """
    dev = torch.device(device)
    n = batch or (256 if _large(dev) else 8)
    x = torch.rand((n, 64, 56, 56), device=dev)
    weight = torch.rand((64, 64, 3, 3), device=dev)

    def conv() -> torch.Tensor:
        return torch.nn.functional.conv2d(x, weight, padding=1)

    with torch.no_grad():
        flops = count_flops(conv)[1]
        return flops / _best_seconds(conv, dev, min_seconds)


def measure_copy_bandwidth(device: torch.device | str = "cpu", *, nbytes: int | None = None,
                           min_seconds: float = 0.3) -> float:
    """Bytes per second of copying one large fp32 tensor into another on ``device`` (read + write).

    Args:
        device: where to measure.
        nbytes: size of the tensor copied (default 128 MiB on CPU, larger than its caches; 2 GiB elsewhere).
        min_seconds: how long to repeat the copy.

    Returns:
        Bytes per second (``2 x nbytes`` per copy), positive and finite.
    """
    dev = torch.device(device)
    size = nbytes or (2**31 if _large(dev) else 2**27)
    src = torch.full((size // FLOAT32_BYTES,), 0.5, device=dev)  # the copy's speed does not depend on values
    dst = torch.empty_like(src)
    return 2.0 * src.numel() * FLOAT32_BYTES / _best_seconds(lambda: dst.copy_(src), dev, min_seconds)


def measure_device_rates(device: torch.device | str = "cpu", *, min_seconds: float = 0.3) -> DeviceRates:
    """Measure ``F`` (matrix product and convolution) and ``B`` (copy) on ``device``.

    CPU rates use torch's current intra-op thread count (``torch.get_num_threads()``).

    Args:
        device: where to measure.
        min_seconds: how long each of the three measurements repeats.

    Returns:
        A :class:`DeviceRates`.
    """
    dev = torch.device(device)
    return DeviceRates(device=str(dev), threads=torch.get_num_threads(),
                       matmul_flops_per_second=measure_matmul_rate(dev, min_seconds=min_seconds),
                       conv_flops_per_second=measure_conv_rate(dev, min_seconds=min_seconds),
                       copy_bytes_per_second=measure_copy_bandwidth(dev, min_seconds=min_seconds))


__all__ = ["DeviceRates", "FLOAT32_BYTES", "count_flops", "measure_conv_rate", "measure_copy_bandwidth",
           "measure_device_rates", "measure_matmul_rate", "min_bytes_per_image", "roofline_images_per_second",
           "synchronize"]
