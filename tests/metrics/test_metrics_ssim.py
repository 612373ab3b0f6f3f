"""SSIM against scikit-image (the reference conventions), gradients, and input errors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import structural_similarity

from privis.errors import InvalidInputError
from privis.metrics import abs_ssim, ssim, ssim_map, ssim_window

TOL = 1e-3


def _block_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Downscale a (H, W[, 3]) uint8 sample image to size x size by cropping and block averaging."""
    side = min(image.shape[:2]) // size * size
    image = image[:side, :side].astype(np.float64) / 255.0
    f = side // size
    if image.ndim == 2:
        return image.reshape(size, f, size, f).mean(axis=(1, 3))[None]
    return image.reshape(size, f, size, f, 3).mean(axis=(1, 3)).transpose(2, 0, 1)


def _structured(channels: int, size: int) -> np.ndarray:
    """A batch of structured (non-random) images, shape (6, channels, size, size), in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    checker = ((np.arange(size)[:, None] // 2 + np.arange(size)[None, :] // 2) % 2).astype(np.float64)
    photo = _block_mean(skdata.camera() if channels == 1 else skdata.astronaut(), size)
    images = [
        photo,
        np.repeat(xx[None], channels, 0),  # horizontal ramp
        np.repeat(checker[None], channels, 0),
        np.repeat((xx > 0.5).astype(np.float64)[None], channels, 0),  # step edge
        np.full((channels, size, size), 0.3),  # constant
        np.repeat((np.sin(6 * xx) * np.cos(4 * yy) * 0.5 + 0.5)[None], channels, 0),
    ]
    return np.stack([im if im.shape[0] == channels else np.repeat(im, channels, 0) for im in images])


def _pairs(kind: str, channels: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(size * 10 + channels)
    if kind == "random":
        x = rng.random((5, channels, size, size))
        y = np.clip(x + 0.15 * rng.standard_normal(x.shape), 0, 1)
        y[0] = rng.random(y[0].shape)  # an unrelated image
        y[1] = x[1]  # identical
        y[2] = 1.0 - x[2]  # inverted: negative SSIM
        return x, y
    x = _structured(channels, size)
    y = np.stack(
        [
            np.clip(x[0] + 0.1 * rng.standard_normal(x[0].shape), 0, 1),  # noisy photo
            x[2],  # ramp vs checkerboard
            np.roll(x[2], 1, axis=-1),  # shifted checkerboard
            1.0 - x[3],  # inverted edge
            x[4],  # constant vs identical constant
            x[1],  # sinusoid vs ramp
        ]
    )
    return x, y


def _reference(x: np.ndarray, y: np.ndarray, **kwargs: object) -> np.ndarray:
    return np.array(
        [structural_similarity(a, b, data_range=1.0, channel_axis=0, **kwargs) for a, b in zip(x, y, strict=True)]
    )


@pytest.mark.parametrize("kind", ["random", "structured"])
@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize(
    ("channels", "size", "win_size"),
    [(1, 8, 7), (3, 8, 7), (1, 28, 7), (3, 32, 7), (1, 28, 11), (3, 32, None)],
)
def test_ssim_matches_skimage(kind: str, gaussian: bool, channels: int, size: int, win_size: int | None) -> None:
    x, y = _pairs(kind, channels, size)
    ref = _reference(x, y, win_size=win_size, gaussian_weights=gaussian)
    # torch float32 (the canonical form)
    got = ssim(torch.from_numpy(x).float(), torch.from_numpy(y).float(), win_size=win_size, gaussian_weights=gaussian)
    assert isinstance(got, torch.Tensor) and got.shape == (x.shape[0],) and got.dtype == torch.float32
    assert np.abs(got.numpy() - ref).max() < TOL
    # numpy float64 in, numpy out
    got_np = ssim(x, y, win_size=win_size, gaussian_weights=gaussian)
    assert isinstance(got_np, np.ndarray) and got_np.dtype == np.float64
    assert np.abs(got_np - ref).max() < TOL


def test_ssim_reference_cases_are_not_trivial() -> None:
    # The comparison above would be weak if every reference were ~1; make sure the pairs span the range.
    for kind, lowest in (("structured", -0.1), ("random", -0.5)):
        x, y = _pairs(kind, 1, 28)
        ref = _reference(x, y, win_size=7)
        assert ref.min() < lowest and ref.max() > 0.99 and np.ptp(ref) > 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"use_sample_covariance": False},
        {"gaussian_weights": True, "sigma": 0.8, "use_sample_covariance": False, "win_size": 5},
        {"gaussian_weights": True, "sigma": 3.0, "win_size": 3},  # Gaussian wider than the crop
        {"k1": 0.05, "k2": 0.1},
    ],
)
def test_ssim_options_match_skimage(kwargs: dict) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((3, 2, 12, 15))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    sk_kwargs = {("K1" if k == "k1" else "K2" if k == "k2" else k): v for k, v in kwargs.items()}
    assert np.abs(ssim(x, y, **kwargs) - _reference(x, y, **sk_kwargs)).max() < TOL


def test_ssim_window_wider_than_image_reflects_repeatedly() -> None:
    # sigma=1.5 gives an 11-tap Gaussian on a 3x5 image: scipy reflects more than once.
    rng = np.random.default_rng(2)
    x, y = rng.random((2, 1, 3, 5)), rng.random((2, 1, 3, 5))
    ref = _reference(x, y, win_size=3, gaussian_weights=True)
    assert np.abs(ssim(x, y, win_size=3, gaussian_weights=True) - ref).max() < 1e-10


def test_ssim_data_range_255() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (2, 3, 16, 16)).astype(np.float64)
    y = np.clip(x + rng.normal(0, 20, x.shape), 0, 255)
    ref = np.array([structural_similarity(a, b, data_range=255, channel_axis=0) for a, b in zip(x, y, strict=True)])
    got = ssim(torch.from_numpy(x).float(), torch.from_numpy(y).float(), data_range=255)
    assert np.abs(got.numpy() - ref).max() < TOL


@pytest.mark.parametrize("gaussian", [False, True])
def test_ssim_map_full_matches_skimage_full_image(gaussian: bool) -> None:
    rng = np.random.default_rng(4)
    x, y = rng.random((2, 3, 10, 9)), rng.random((2, 3, 10, 9))
    full = ssim_map(x, y, gaussian_weights=gaussian, crop=False)
    cropped = ssim_map(x, y, gaussian_weights=gaussian)
    assert full.shape == (2, 3, 10, 9) and cropped.shape == (2, 3, 4, 3)
    for i in range(2):
        for c in range(3):
            _, ref = structural_similarity(
                x[i, c], y[i, c], data_range=1.0, win_size=7, gaussian_weights=gaussian, full=True
            )
            assert np.abs(full[i, c] - ref).max() < 1e-10
    np.testing.assert_allclose(cropped, full[..., 3:-3, 3:-3], atol=1e-12)
    np.testing.assert_allclose(ssim(x, y, gaussian_weights=gaussian), cropped.mean(axis=(1, 2, 3)), atol=1e-12)


def test_abs_ssim_and_negative_values() -> None:
    rng = np.random.default_rng(5)
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[0] = 1 - x[0]
    y[2] = torch.from_numpy(rng.random((1, 16, 16))).float()
    s = ssim(x, y)
    assert s[0] < -0.9 and s[1] == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(abs_ssim(x, y), s.abs())
    assert isinstance(abs_ssim(x.numpy(), y.numpy()), np.ndarray)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run tiny-tensor gradchecks on one intra-op thread: on a busy 2-core machine, thread hand-offs for
    hundreds of microscopic ops otherwise dominate (seconds instead of a fraction of one)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("gaussian", [False, True])
def test_ssim_gradcheck(gaussian: bool, one_thread: None) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 2, 5, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    y = torch.rand(2, 2, 5, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ssim(a, b, win_size=3, gaussian_weights=gaussian), (x, y))
    assert torch.autograd.gradcheck(
        lambda a, b: ssim_map(a, b, win_size=3, gaussian_weights=gaussian, crop=False).sum(), (x, y)
    )


def test_ssim_as_loss_improves_similarity() -> None:
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(4, 1, 12, 12, generator=gen)
    x = torch.rand(4, 1, 12, 12, generator=gen, requires_grad=True)
    loss = 1 - ssim(x, target).mean()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        better = 1 - ssim(x - 0.5 * x.grad / x.grad.abs().max(), target).mean()
    assert better < loss


def test_ssim_too_small_image_names_win_size() -> None:
    x = torch.rand(2, 1, 6, 9)
    with pytest.raises(InvalidInputError, match="win_size"):
        ssim(x, x)
    with pytest.raises(InvalidInputError, match="win_size"):
        ssim(x, x, gaussian_weights=True)
    assert ssim(x, x, win_size=5).shape == (2,)  # lowering it works


@pytest.mark.parametrize(
    "kwargs",
    [
        {"win_size": 4},
        {"win_size": 0},
        {"win_size": 1},
        {"win_size": 3.0},
        {"data_range": 0},
        {"data_range": float("nan")},
        {"sigma": -1.0, "gaussian_weights": True},
        {"k1": -0.01},
    ],
)
def test_ssim_bad_parameters(kwargs: dict) -> None:
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(InvalidInputError):
        ssim(x, x, **kwargs)


def test_ssim_bad_inputs() -> None:
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(InvalidInputError, match="same shape"):
        ssim(x, torch.rand(2, 1, 8, 9))
    bad = x.clone()
    bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        ssim(x, bad)
    with pytest.raises(InvalidInputError, match=r"\(N, C, H, W\)"):
        ssim(x[0], x[0])


def test_ssim_empty_batch() -> None:
    x = torch.rand(0, 3, 8, 8)
    assert ssim(x, x).shape == (0,)


@pytest.mark.parametrize(("height", "width", "preferred", "expected"), [
    (28, 28, 7, 7), (8, 8, 7, 7), (6, 32, 7, 5), (32, 5, 7, 5), (4, 4, 7, 3), (2, 9, 7, 1), (1, 1, 7, 1),
    (64, 64, 11, 11), (10, 10, 11, 9),
])
def test_ssim_window_is_the_largest_odd_window_that_fits(height, width, preferred, expected):
    win = ssim_window(height, width, preferred)
    assert win == expected and win % 2 == 1 and win <= min(height, width, preferred)
    if min(height, width) >= 3 and win > 1:  # the window it picks is one SSIM accepts on such images
        x = torch.rand(1, 1, height, width)
        assert ssim(x, x, win_size=win).item() == pytest.approx(1.0)
