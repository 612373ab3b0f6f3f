"""InstaHide: mixing weights, sign-flip distribution, seeding and OS entropy."""

from __future__ import annotations

import pytest
import torch

from privis import methods
from privis.errors import InvalidInputError
from privis.methods.instahide import InstaHide, draw_mixing, mix


def test_mixing_weights():
    partners, weights = draw_mixing(2000, 4, 0.65, torch.Generator().manual_seed(0))
    assert partners.shape == weights.shape == (2000, 4)
    assert torch.equal(partners[:, 0], torch.arange(2000))
    assert torch.allclose(weights.sum(1), torch.ones(2000), atol=1e-6)
    assert weights.min() >= 0 and weights.max() <= 0.65 + 1e-6
    assert torch.all(weights[:, 0] == weights.max(1).values)  # dominant: the private image leads
    _, paper = draw_mixing(2000, 4, 0.65, torch.Generator().manual_seed(0), dominant=False)
    assert (paper[:, 0] < paper.max(1).values).float().mean() > 0.5  # paper order: any position may lead


def test_mix_is_the_signed_weighted_sum():
    signed = torch.rand(5, 1, 3, 3) * 2 - 1
    partners = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 4], [4, 0]])
    weights = torch.full((5, 2), 0.5)
    signs = torch.ones(5, 1, 3, 3)
    signs[0] = -1
    out = mix(signed, partners, weights, signs)
    assert torch.allclose(out[0], -(signed[0] + signed[1]) / 2)
    assert torch.allclose(out[4], (signed[4] + signed[0]) / 2)


def test_sign_flips_are_fair_coins_and_keep_the_magnitude(digits_test):
    x = digits_test.images[:400]
    y = InstaHide(k=1, random_state=0).transform(x)
    assert torch.allclose((2 * y - 1).abs(), (2 * x - 1).abs(), atol=1e-6)
    bright = (2 * x - 1).abs() > 0.5
    flipped = ((2 * y - 1) * (2 * x - 1) < 0)[bright].float().mean()
    assert abs(float(flipped) - 0.5) < 0.02
    assert torch.equal(InstaHide(k=1, sign_flip=False).transform(x), x)


def test_seeded_runs_repeat_and_unseeded_ones_differ(digits_test):
    x = digits_test.images[:50]
    a, b = InstaHide(random_state=3).transform(x), InstaHide(random_state=3).transform(x)
    assert torch.equal(a, b)
    assert not torch.equal(InstaHide().transform(x), InstaHide().transform(x))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1


def test_registered_and_validated(digits_test):
    assert isinstance(methods.create("instahide", k=2), InstaHide)
    with pytest.raises(InvalidInputError, match="upper"):
        InstaHide(k=4, upper=0.2).transform(digits_test.images[:8])
    with pytest.raises(InvalidInputError, match="k must be"):
        InstaHide(k=0).transform(digits_test.images[:8])


def test_huge_k_is_refused_fast_with_the_memory_estimate(monkeypatch):
    """k = 1,000,000 on a 256-image batch would gather ~750 GiB of partner images: refused before drawing
    anything, in well under a second, with the estimate and the limit."""
    import time

    monkeypatch.setattr("privis.methods.base.available_memory_bytes", lambda device="cpu": 16 * 1024**3)
    images = torch.zeros(256, 1, 28, 28)
    t0 = time.perf_counter()
    with pytest.raises(InvalidInputError, match=r"instahide k=1000000 on 256 images of 1x28x28 needs about "
                                                r"7\d\d\.\d GiB of memory, more than the 16\.0 GiB available"):
        InstaHide(k=1_000_000, random_state=0).transform(images)
    assert time.perf_counter() - t0 < 1.0
    assert InstaHide(k=8, random_state=0).transform(images[:16]).shape == (16, 1, 28, 28)  # small k still runs


def test_transform_stays_on_the_input_device_and_equals_the_cpu_path(device, monkeypatch):
    x = torch.rand(6, 3, 9, 7, generator=torch.Generator().manual_seed(2))
    expected = InstaHide(random_state=3).transform(x)

    def refuse(self, *args, **kwargs):
        raise AssertionError("transform copied a tensor to the host")

    with monkeypatch.context() as patch:  # draws are made on the CPU and moved once; the images never leave
        patch.setattr(torch.Tensor, "cpu", refuse)
        patch.setattr(torch.Tensor, "numpy", refuse)
        got = InstaHide(random_state=3).transform(x.to(device))
    assert got.device == x.to(device).device
    torch.testing.assert_close(got.cpu(), expected, atol=0 if device.type == "cpu" else 1e-5, rtol=0)
