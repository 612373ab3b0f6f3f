"""The attribute model: each term against its definition or a reference library, zero on identical images,
growing with the change, differentiable, and refusing what it cannot use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity
from torch import nn

from privis.errors import InvalidInputError
from privis.identity import AttributeModel


@pytest.fixture(scope="module")
def pair():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 16, 16, generator=gen)
    y = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    return x, y


def test_terms_match_their_definitions_and_scikit_image(pair):
    x, y = pair
    parts = AttributeModel(channels=1).parts(x, y)
    torch.testing.assert_close(parts["mse"], (x - y).square().mean(dim=(1, 2, 3)))
    for i in range(3):
        ref = structural_similarity(x[i, 0].numpy().astype(np.float64), y[i, 0].numpy().astype(np.float64),
                                    data_range=1.0, win_size=7)
        assert abs(float(parts["ssim"][i]) - (1 - ref)) < 1e-4


def test_feature_distance_is_two_minus_two_cosine_of_the_activations():
    """On an identity 'network' the activation is the image itself: the distance is 2 - 2 cos(x, y)."""
    model = nn.Sequential(nn.Identity(), nn.Flatten())
    attrs = AttributeModel(feature_model=model, layers=["0"])
    x, y = torch.rand(4, 1, 5, 5), torch.rand(4, 1, 5, 5)
    expected = 2 - 2 * nn.functional.cosine_similarity(x.flatten(1), y.flatten(1), dim=1)
    torch.testing.assert_close(attrs.feature_distance(x, y), expected)


def test_zero_on_identical_images_and_growing_with_the_change(pair):
    x, y = pair
    attrs = AttributeModel(channels=1)
    assert all(float(v.abs().max()) < 1e-5 for v in attrs.parts(x, x).values())
    small = attrs.parts(x, (x + 0.5 * (y - x)).clamp(0, 1))
    large = attrs.parts(x, y)
    for name in ("mse", "feature", "ssim"):
        assert bool((large[name] > small[name]).all()), name
    torch.testing.assert_close(attrs(x, y), large["mse"] + large["feature"] + large["ssim"])


def test_gradients_reach_the_images(pair):
    x, y = pair
    y = y.clone().requires_grad_(True)
    parts = AttributeModel(channels=1).parts(x, y)
    for name, value in parts.items():
        (grad,) = torch.autograd.grad(value.sum(), y)
        assert float(grad.abs().sum()) > 0, name


def test_refusals():
    with pytest.raises(InvalidInputError, match="needs the names of its layers"):
        AttributeModel(feature_model=nn.Sequential(nn.Identity()))
    with pytest.raises(InvalidInputError, match="unknown layers"):
        AttributeModel(channels=1, layers=["nope"])
    with pytest.raises(InvalidInputError, match="weights"):
        AttributeModel(channels=1, weights={"mse": 1.0})
    with pytest.raises(InvalidInputError, match="same shape"):
        AttributeModel(channels=1).parts(torch.rand(1, 1, 8, 8), torch.rand(2, 1, 8, 8))
