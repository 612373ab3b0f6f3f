"""MSE, PSNR, L2 and ALD_p: against scikit-image / numpy and hand-computed values."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

from privis.errors import InvalidInputError
from privis.metrics import ald, l2, mse, psnr


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((4, 3, 9, 7))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    y[3] = rng.random(y[3].shape)
    return x, y


def test_mse_matches_skimage(pair: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = pair
    ref = np.array([mean_squared_error(a, b) for a, b in zip(x, y, strict=True)])
    got = mse(x, y)
    assert isinstance(got, np.ndarray) and got.shape == (4,)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    got_t = mse(torch.from_numpy(x).float(), torch.from_numpy(y).float())
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.float32
    np.testing.assert_allclose(got_t.numpy(), ref, rtol=1e-5)


@pytest.mark.parametrize("data_range", [1.0, 2.0, 255.0])
def test_psnr_matches_skimage(pair: tuple[np.ndarray, np.ndarray], data_range: float) -> None:
    x, y = pair[0] * data_range, pair[1] * data_range
    ref = np.array([peak_signal_noise_ratio(a, b, data_range=data_range) for a, b in zip(x, y, strict=True)])
    np.testing.assert_allclose(psnr(x, y, data_range=data_range), ref, rtol=1e-12)
    got_t = psnr(torch.from_numpy(x).float(), torch.from_numpy(y).float(), data_range=data_range)
    np.testing.assert_allclose(got_t.numpy(), ref, rtol=1e-5)


def test_psnr_hand_value_and_identical_images() -> None:
    x = torch.zeros(2, 1, 2, 2)
    y = x.clone()
    y[0, 0, 0, 0] = 0.2  # MSE = 0.04 / 4 = 0.01  ->  PSNR = 10 log10(1 / 0.01) = 20 dB
    got = psnr(x, y)
    assert got[0].item() == pytest.approx(20.0, abs=1e-4)
    assert math.isinf(got[1].item()) and got[1] > 0  # identical: +inf, as scikit-image


def test_l2_hand_value_and_numpy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    x = torch.zeros(1, 2, 2, 2)
    y = x.clone()
    y[0, 0, 0, 0], y[0, 1, 1, 1] = 3.0, -4.0  # sqrt(9 + 16) = 5
    assert l2(x, y).item() == pytest.approx(5.0)
    a, b = pair
    ref = np.linalg.norm((b - a).reshape(4, -1), axis=1)
    np.testing.assert_allclose(l2(a, b), ref, rtol=1e-12)


def test_distortions_are_differentiable() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 3, 3, dtype=torch.float64, generator=gen)
    y = torch.rand(2, 1, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    mse(x, y).sum().backward()
    torch.testing.assert_close(y.grad, 2 * (y - x).detach() / 9)  # d/dy mean((x - y)^2)
    y.grad = None
    l2(x, y).sum().backward()
    expected = (y - x).detach() / (y - x).detach().flatten(1).norm(dim=1).view(2, 1, 1, 1)
    torch.testing.assert_close(y.grad, expected)


# ALD_p (Xue thesis, Sec. III.B): x = [[1, 2], [3, 4]], y = x + d with d = [[0.5, 0], [0, -1]].
_X = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
_D = np.array([[[[0.5, 0.0], [0.0, -1.0]]]])


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (math.inf, 1.0 / 4.0),  # max|d| = 1, max|x| = 4
        (1, 1.5 / 10.0),  # sum|d| = 1.5, sum|x| = 10
        (2, math.sqrt(1.25) / math.sqrt(30.0)),  # sqrt(0.25 + 1), sqrt(1 + 4 + 9 + 16)
        (0.5, (math.sqrt(0.5) + 1) ** 2 / (1 + math.sqrt(2) + math.sqrt(3) + 2) ** 2),  # quasi-norm
        (3.0, (0.125 + 1) ** (1 / 3) / (1 + 8 + 27 + 64) ** (1 / 3)),
    ],
)
def test_ald_hand_values(p: float, expected: float) -> None:
    got = ald(_X, _X + _D, p=p)
    assert isinstance(got, np.ndarray) and got.shape == (1,)
    assert got[0] == pytest.approx(expected, rel=1e-12)
    got_t = ald(torch.from_numpy(_X).float(), torch.from_numpy(_X + _D).float(), p=p)
    assert got_t.item() == pytest.approx(expected, rel=1e-5)


def test_ald_default_is_inf_norm_and_argument_order_matters() -> None:
    assert ald(_X, _X + _D)[0] == pytest.approx(0.25)
    # the original is the first argument: swapping changes the denominator (max|x + d| = 3)
    assert ald(_X + _D, _X)[0] == pytest.approx(1.0 / 3.0)


def test_ald_matches_numpy_norms(pair: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = pair
    for p in (1, 2, math.inf, 1.5):
        ref = np.linalg.norm((y - x).reshape(4, -1), ord=p, axis=1) / np.linalg.norm(x.reshape(4, -1), ord=p, axis=1)
        np.testing.assert_allclose(ald(x, y, p=p), ref, rtol=1e-12)


def test_ald_zero_original_raises_with_indices() -> None:
    x = torch.rand(3, 1, 4, 4)
    x[1] = 0
    with pytest.raises(InvalidInputError, match=r"\[1\]"):
        ald(x, torch.rand(3, 1, 4, 4))


@pytest.mark.parametrize("p", [0, -1, float("nan"), True, "2"])
def test_ald_bad_p(p: object) -> None:
    with pytest.raises(InvalidInputError, match="p must"):
        ald(_X, _X, p=p)


@pytest.mark.parametrize("fn", [mse, psnr, l2, ald])
def test_distortions_reject_bad_inputs(fn: Callable) -> None:
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(InvalidInputError, match="same shape"):
        fn(x, torch.rand(2, 1, 4, 5))
    with pytest.raises(InvalidInputError, match="NaN"):
        fn(x, torch.full_like(x, float("nan")))
    with pytest.raises(InvalidInputError, match=r"4-D"):
        fn(x[0], x[0])


def test_psnr_bad_data_range() -> None:
    with pytest.raises(InvalidInputError, match="data_range"):
        psnr(_X, _X, data_range=-1)
