"""Input conversion and validation shared by every metric in :mod:`privis.metrics`.

Every public metric accepts either ``torch.Tensor`` or ``numpy.ndarray`` batches of shape ``(N, C, H, W)``.
The rules, applied uniformly:

- Inputs must be 4-D ``(N, C, H, W)`` with ``H, W >= 1`` (``N = 0`` is allowed and gives empty results).
  A single ``(C, H, W)`` image is rejected, not silently batched: add the batch dimension yourself
  (``x[None]``).
- Paired inputs must have exactly the same shape, and live on the same device when both are tensors.
- Values must be finite (NaN or infinity raises). The value range is *not* checked: metrics take a
  ``data_range`` or ``pixel_scale`` instead, so ``[0, 255]`` data is legal.
- Computation dtype: ``float64`` if any input is ``float64``, else ``float32`` (integer, bool and half
  inputs are promoted to ``float32``). Conversion is differentiable, so gradients flow to tensor inputs.
- Output type: ``numpy.ndarray`` when *every* array input is a numpy array, ``torch.Tensor`` otherwise
  (a numpy array paired with a tensor is moved to that tensor's device).
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch
from torch import Tensor

from privis.data.checks import check_int as check_int  # the one integer check, re-exported for metrics
from privis.errors import InvalidInputError

ImageBatch = Tensor | np.ndarray
"""A ``(N, C, H, W)`` batch given as a torch tensor or a numpy array."""


def _to_tensor(a: object, name: str) -> Tensor:
    """Convert one input to a tensor without copying a tensor input; reject anything else."""
    if isinstance(a, Tensor):
        if a.is_complex():
            raise InvalidInputError(f"{name} must be real-valued, got dtype {a.dtype}")
        return a
    if isinstance(a, np.ndarray):
        if np.iscomplexobj(a) or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise InvalidInputError(f"{name} must be a real numeric array, got dtype {a.dtype}")
        if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.floating) or a.dtype == np.float16:
            a = a.astype(np.float32)
        elif not a.dtype.isnative:  # torch reads native byte order only
            a = a.astype(a.dtype.newbyteorder("="))
        return torch.from_numpy(np.ascontiguousarray(a))
    raise InvalidInputError(
        f"{name} must be a torch.Tensor or numpy.ndarray of shape (N, C, H, W), got {type(a).__name__}"
    )


def _check_4d(t: Tensor, name: str) -> None:
    if t.ndim != 4:
        hint = " (a single (C, H, W) image needs a batch dimension: pass x[None])" if t.ndim == 3 else ""
        raise InvalidInputError(f"{name} must be a 4-D batch of shape (N, C, H, W), got shape {tuple(t.shape)}{hint}")
    if t.shape[1] < 1 or t.shape[2] < 1 or t.shape[3] < 1:
        raise InvalidInputError(f"{name} has an empty channel or spatial dimension: shape {tuple(t.shape)}")


def _check_finite(t: Tensor, name: str) -> None:
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise InvalidInputError(f"{name} contains NaN or infinite values")


def prepare(*inputs: tuple[object, str]) -> tuple[list[Tensor], bool]:
    """Convert and validate image batches given as ``(value, name)`` pairs.

    Returns:
        ``(tensors, numpy_out)``: the inputs as tensors of one floating dtype on one device, each of
        shape ``(N, C, H, W)`` (all equal), and whether results should be returned as numpy arrays.

    Raises:
        InvalidInputError: wrong type, not 4-D, empty C/H/W, shapes differ, devices differ, NaN/inf.
    """
    names = [name for _, name in inputs]
    numpy_out = all(isinstance(value, np.ndarray) for value, _ in inputs)
    tensors = [_to_tensor(value, name) for value, name in inputs]
    for t, name in zip(tensors, names, strict=True):
        _check_4d(t, name)
    for t, name in zip(tensors[1:], names[1:], strict=True):
        if t.shape != tensors[0].shape:
            raise InvalidInputError(
                f"{names[0]} and {name} must have the same shape, got {tuple(tensors[0].shape)} and {tuple(t.shape)}"
            )
    devices = {value.device for value, _ in inputs if isinstance(value, Tensor)}
    if len(devices) > 1:
        raise InvalidInputError(f"inputs are on different devices: {sorted(str(d) for d in devices)}")
    device = devices.pop() if devices else torch.device("cpu")
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    tensors = [t.to(device=device, dtype=dtype) for t in tensors]
    for t, name in zip(tensors, names, strict=True):
        _check_finite(t, name)
    return tensors, numpy_out


def finish(result: Tensor, numpy_out: bool) -> ImageBatch:
    """Return ``result`` as is, or as a detached numpy array when the inputs were numpy arrays."""
    if numpy_out:
        return result.detach().cpu().numpy()
    return result


def check_positive(value: object, name: str, *, allow_inf: bool = False) -> float:
    """Return ``value`` as a float after checking it is a real number ``> 0`` (finite unless allowed)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InvalidInputError(f"{name} must be a positive number, got {value!r}")
    v = float(value)
    if math.isnan(v) or v <= 0 or (math.isinf(v) and not allow_inf):
        raise InvalidInputError(f"{name} must be a positive {'' if allow_inf else 'finite '}number, got {value!r}")
    return v


def check_nonnegative(value: object, name: str) -> float:
    """Return ``value`` as a float after checking it is a finite real number ``>= 0``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) or value < 0:
        raise InvalidInputError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)
