"""Visual Feature Entropy (VisualMixer Eq. 1-4) on hand-computed arrays and invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from privis.errors import InvalidInputError
from privis.metrics import vfe, vfe_channel, vfe_map, vfe_regions


def _batch(rows: list[list[float]]) -> np.ndarray:
    """One single-channel image as a (1, 1, H, W) float64 batch; rows are y, columns are x."""
    return np.array(rows, dtype=np.float64)[None, None]


def _checkerboard(n: int) -> np.ndarray:
    return ((np.arange(n)[:, None] + np.arange(n)[None, :]) % 2).astype(np.float64)[None, None]


def test_map_2x2_by_hand() -> None:
    # I = [[0, 1], [0, 0]] (row = y, column = x). Eq. 1 with zero difference past the last row/column:
    #   (y0, x0): gx = I(1,0) - I(0,0) = 1,  gy = I(0,1) - I(0,0) = 0   -> 1
    #   (y0, x1): gx = 0 (last column),      gy = 0 - 1 = -1            -> 1
    #   (y1, x0): gx = 0 - 0 = 0,            gy = 0 (last row)          -> 0
    #   (y1, x1): 0 (corner)
    m = vfe_map(_batch([[0, 1], [0, 0]]))
    np.testing.assert_array_equal(m, [[[[1, 1], [0, 0]]]])
    assert vfe(_batch([[0, 1], [0, 0]]))[0] == pytest.approx(0.5)  # Eq. 3: (1 + 1 + 0 + 0) / 4


def test_map_3x3_by_hand_pins_axes() -> None:
    # I = [[0, 1, 3], [0, 0, 0], [2, 2, 2]]
    #   row 0: gx = 1, 2, 0(last col); gy = 0, -1, -3        -> 1, 5, 9
    #   row 1: gx = 0, 0, 0;           gy = 2, 2, 2          -> 4, 4, 4
    #   row 2: gx = 0, 0, 0;           gy = 0 (last row)     -> 0, 0, 0
    image = _batch([[0, 1, 3], [0, 0, 0], [2, 2, 2]])
    np.testing.assert_array_equal(vfe_map(image), [[[[1, 5, 9], [4, 4, 4], [0, 0, 0]]]])
    assert vfe(image)[0] == pytest.approx(27 / 9)
    # transposing the image transposes the map (x and y play symmetric roles)
    np.testing.assert_array_equal(vfe_map(image.transpose(0, 1, 3, 2)), vfe_map(image).transpose(0, 1, 3, 2))


def test_constant_image_has_zero_vfe() -> None:
    images = torch.full((3, 2, 5, 7), 0.37)
    assert torch.equal(vfe_map(images), torch.zeros_like(images))
    assert torch.equal(vfe(images), torch.zeros(3))


@pytest.mark.parametrize("n", [2, 4, 5, 8])
def test_checkerboard(n: int) -> None:
    # Every horizontal and vertical neighbour pair differs by 1, so each difference squared is 1.
    # Interior pixels (not last row/column): 1 + 1 = 2, (n-1)^2 of them.
    # Last column (minus the corner): only gy = 1, n-1 pixels; last row likewise: n-1 pixels; corner: 0.
    # Sum = 2 (n-1)^2 + 2 (n-1) = 2 n (n-1);  Eq. 3 mean = 2 (n-1) / n  (n=4: 1.5, n=5: 1.6).
    image = _checkerboard(n)
    m = vfe_map(image)[0, 0]
    assert np.all(m[:-1, :-1] == 2) and np.all(m[:-1, -1] == 1) and np.all(m[-1, :-1] == 1) and m[-1, -1] == 0
    assert vfe(image)[0] == pytest.approx(2 * (n - 1) / n)


def test_channels_are_averaged_eq4() -> None:
    images = np.concatenate([_checkerboard(4), np.full((1, 1, 4, 4), 0.5)], axis=1)  # (1, 2, 4, 4)
    np.testing.assert_allclose(vfe_channel(images), [[1.5, 0.0]])
    np.testing.assert_allclose(vfe(images), [0.75])


def test_scale_and_pixel_scale() -> None:
    image = _checkerboard(4)
    assert vfe(image, scale=2.0)[0] == pytest.approx(3.0)  # F multiplies Eq. 3
    # the paper's 0-255 pixels: gradients x255, VFE x255^2
    assert vfe(image, pixel_scale=255)[0] == pytest.approx(1.5 * 255**2)
    np.testing.assert_allclose(vfe(image, pixel_scale=255), vfe(image * 255))
    np.testing.assert_allclose(vfe_map(image, pixel_scale=255), vfe_map(image * 255))
    np.testing.assert_allclose(vfe_regions(image, 2, pixel_scale=255), vfe_regions(image * 255, 2))


def test_regions_sum_to_total_and_eq3() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((3, 2, 6, 8))
    regions = vfe_regions(images, 2)
    assert regions.shape == (3, 2, 3, 4)
    total = vfe_map(images).sum(axis=(2, 3))
    np.testing.assert_allclose(regions.sum(axis=(2, 3)), total)
    # Eq. 3: F / (N1 N2) * sum of region VFEs == vfe_channel, for any partition
    for window in (1, 2, (3, 4), (6, 8), (2, 8)):
        r = vfe_regions(images, window)
        np.testing.assert_allclose(3.0 * r.sum(axis=(2, 3)) / (6 * 8), vfe_channel(images, scale=3.0))


def test_regions_use_neighbour_across_border() -> None:
    # I = [[0, 0, 1, 1], [0, 0, 1, 1]], 2x2 regions. The step is between columns 1 and 2, i.e. across
    # the border of the two regions: Eq. 2 sums the image gradient, so it counts in the left region
    # (gx = 1 at (y0, x1) and (y1, x1)) -> [[2, 0]]. Gradients computed inside each region would give 0.
    image = _batch([[0, 0, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(vfe_regions(image, 2), [[[[2, 0]]]])


def test_regions_partial_cover_top_left() -> None:
    rng = np.random.default_rng(1)
    images = rng.random((2, 1, 7, 9))
    regions = vfe_regions(images, (2, 4))
    assert regions.shape == (2, 1, 3, 2)
    m = vfe_map(images)
    np.testing.assert_allclose(regions.sum(axis=(2, 3)), m[..., :6, :8].sum(axis=(2, 3)))
    np.testing.assert_allclose(regions[0, 0, 1, 1], m[0, 0, 2:4, 4:8].sum())


@pytest.mark.parametrize("window", [0, -2, (2,), (2, 2, 2), True, 2.0, (10, 2), (2, 10)])
def test_regions_bad_window(window: object) -> None:
    with pytest.raises(InvalidInputError, match="window"):
        vfe_regions(np.zeros((1, 1, 8, 8)), window)


def test_numpy_in_numpy_out_torch_in_torch_out() -> None:
    image = _checkerboard(4).astype(np.float32)
    for fn in (vfe_map, vfe_channel, vfe):
        assert isinstance(fn(image), np.ndarray)
        assert fn(image).dtype == np.float32
        assert isinstance(fn(torch.from_numpy(image)), torch.Tensor)
    assert isinstance(vfe_regions(image, 2), np.ndarray)
    assert isinstance(vfe_regions(torch.from_numpy(image), 2), torch.Tensor)
    assert vfe(np.zeros((5, 3, 4, 4))).shape == (5,)
    assert vfe_channel(np.zeros((5, 3, 4, 4))).shape == (5, 3)


def test_vfe_gradcheck() -> None:
    x = torch.rand(2, 2, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: vfe(a, pixel_scale=2.0), (x,))
    assert torch.autograd.gradcheck(lambda a: vfe_regions(a, 2), (x,))


def test_vfe_bad_inputs() -> None:
    with pytest.raises(InvalidInputError, match="NaN"):
        vfe(np.full((1, 1, 3, 3), np.nan))
    with pytest.raises(InvalidInputError, match=r"4-D"):
        vfe(np.zeros((3, 4, 4)))
    with pytest.raises(InvalidInputError, match="scale"):
        vfe(np.zeros((1, 1, 3, 3)), scale=0)
    with pytest.raises(InvalidInputError, match="pixel_scale"):
        vfe_map(np.zeros((1, 1, 3, 3)), pixel_scale=float("inf"))


@settings(max_examples=30, deadline=None)
@given(
    image=arrays(np.float64, (1, 2, 5, 6), elements=st.floats(0, 1)),
    shift=st.floats(-1, 1),
)
def test_vfe_invariant_to_brightness_shift_and_batching(image: np.ndarray, shift: float) -> None:
    # Forward differences ignore a constant offset; a batch gives the same values as its members.
    np.testing.assert_allclose(vfe(image + shift), vfe(image), atol=1e-9)
    batch = np.concatenate([image, image[:, ::-1], image * 0.5])
    np.testing.assert_allclose(vfe(batch)[:1], vfe(image), rtol=1e-12)
    np.testing.assert_allclose(vfe(batch)[2], vfe(image)[0] * 0.25, rtol=1e-9, atol=1e-15)
