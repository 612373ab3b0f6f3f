"""Input conversion and validation shared by every metric (privis.metrics._common)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from privis.errors import InvalidInputError
from privis.metrics import abs_ssim, ald, l2, mse, psnr, ssim, ssim_map, vfe, vfe_channel, vfe_map

PAIRED: list[Callable] = [ssim, ssim_map, abs_ssim, mse, psnr, l2, ald]
SINGLE: list[Callable] = [vfe, vfe_channel, vfe_map]


def _call(fn: Callable, *arrays: object) -> object:
    return fn(*arrays) if fn in PAIRED else fn(arrays[0])


@pytest.mark.parametrize("fn", PAIRED + SINGLE)
def test_three_d_input_is_rejected_with_hint(fn: Callable) -> None:
    x = torch.rand(3, 8, 8)
    with pytest.raises(InvalidInputError, match=r"\(N, C, H, W\).*x\[None\]"):
        _call(fn, x, x)


@pytest.mark.parametrize("fn", PAIRED + SINGLE)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_rejected(fn: Callable, bad: float) -> None:
    x = torch.rand(2, 1, 8, 8)
    y = x.clone()
    y[1, 0, 2, 5] = bad
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        _call(fn, y, x)
    if fn in PAIRED:
        with pytest.raises(InvalidInputError, match="NaN or infinite"):
            fn(x, y)


@pytest.mark.parametrize("fn", PAIRED + SINGLE)
@pytest.mark.parametrize("bad", [[[[[0.0]]]], "image", None])
def test_non_array_inputs_are_rejected(fn: Callable, bad: object) -> None:
    with pytest.raises(InvalidInputError, match="torch.Tensor or numpy.ndarray"):
        _call(fn, bad, bad)


@pytest.mark.parametrize("fn", PAIRED + SINGLE)
def test_empty_spatial_dimension_rejected(fn: Callable) -> None:
    x = torch.rand(2, 1, 0, 8)
    with pytest.raises(InvalidInputError, match="empty"):
        _call(fn, x, x)


@pytest.mark.parametrize("fn", PAIRED)
def test_shape_mismatch_rejected(fn: Callable) -> None:
    with pytest.raises(InvalidInputError, match="same shape"):
        fn(torch.rand(2, 1, 8, 8), torch.rand(3, 1, 8, 8))


def test_dtypes_and_output_types() -> None:
    rng = np.random.default_rng(0)
    a8 = rng.integers(0, 256, (2, 1, 8, 8), dtype=np.uint8)
    b8 = rng.integers(0, 256, (2, 1, 8, 8), dtype=np.uint8)
    # integer numpy input: promoted to float32 (no uint8 wrap-around in the difference), numpy out
    out = mse(a8, b8)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, ((a8.astype(float) - b8) ** 2).mean(axis=(1, 2, 3)), rtol=1e-6)
    # float64 tensors stay float64; float32/half tensors compute in float32
    assert mse(torch.zeros(1, 1, 2, 2, dtype=torch.float64), torch.ones(1, 1, 2, 2, dtype=torch.float64)).dtype == (
        torch.float64
    )
    assert vfe(torch.zeros(1, 1, 2, 2, dtype=torch.float16)).dtype == torch.float32
    # numpy paired with a tensor: tensor out
    mixed = mse(np.zeros((1, 1, 2, 2)), torch.ones(1, 1, 2, 2))
    assert isinstance(mixed, torch.Tensor) and mixed.item() == 1.0


def test_gradient_reaches_tensor_inputs_through_conversion() -> None:
    x = torch.rand(1, 1, 8, 8, dtype=torch.float16).requires_grad_(True)  # computed in float32
    y = torch.rand(1, 1, 8, 8)
    (1 - ssim(x, y)).sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float16 and x.grad.abs().sum() > 0


def test_values_outside_unit_range_are_allowed() -> None:
    x = np.full((1, 1, 8, 8), 200.0)
    y = np.full((1, 1, 8, 8), 100.0)
    assert mse(x, y)[0] == pytest.approx(1e4)
    assert psnr(x, y, data_range=255)[0] == pytest.approx(10 * np.log10(255**2 / 1e4))
