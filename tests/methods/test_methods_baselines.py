"""Blur, pixelation and noise baselines: what they compute, their strength knobs, per-item seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from privis import methods
from privis.errors import InvalidInputError
from privis.methods.baselines import GaussianBlur, GaussianNoise, Pixelate, item_keys, keyed_normal


def test_registered():
    for name in ("blur", "pixelate", "noise"):
        assert name in methods.available()


def test_blur_matches_scipy_gaussian_filter():
    x = torch.rand(3, 2, 20, 17, generator=torch.Generator().manual_seed(0))
    got = GaussianBlur(sigma=1.5).transform(x)
    ref = ndimage.gaussian_filter(x.numpy().astype(np.float64), sigma=(0, 0, 1.5, 1.5), mode="reflect", truncate=3.0)
    # scipy's "reflect" repeats the edge pixel (torch's "symmetric"); compare away from the border
    r = 5
    assert np.allclose(got.numpy()[..., r:-r, r:-r], ref[..., r:-r, r:-r], atol=1e-5)
    assert got.shape == x.shape and float(got.min()) >= 0 and float(got.max()) <= 1


def test_blur_strength_is_monotone_and_preserves_constants():
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    dev = [float((GaussianBlur(sigma=s).transform(x) - x).abs().mean()) for s in (0.5, 1.0, 3.0)]
    assert dev[0] < dev[1] < dev[2]
    flat = torch.full((1, 3, 5, 5), 0.3)
    assert torch.allclose(GaussianBlur(sigma=4.0).transform(flat), flat, atol=1e-6)
    with pytest.raises(InvalidInputError):
        GaussianBlur(sigma=0).transform(x)


def test_pixelate_cells_are_means():
    x = torch.rand(2, 3, 9, 10, generator=torch.Generator().manual_seed(2))
    y = Pixelate(block=4).transform(x)
    assert torch.allclose(y[..., 0:4, 0:4], x[..., 0:4, 0:4].mean(dim=(-2, -1), keepdim=True).expand(-1, -1, 4, 4))
    assert torch.allclose(y[..., 8:, 8:], x[..., 8:, 8:].mean(dim=(-2, -1), keepdim=True).expand(-1, -1, 1, 2))
    assert torch.equal(Pixelate(block=1).transform(x), x)
    with pytest.raises(InvalidInputError):
        Pixelate(block=0).transform(x)


def test_noise_statistics_and_strength():
    x = torch.full((64, 1, 16, 16), 0.5)
    for sigma in (0.05, 0.1):
        z = GaussianNoise(sigma=sigma, random_state=0).transform(x) - 0.5
        assert abs(float(z.mean())) < 0.01
        assert abs(float(z.std()) - sigma) < 0.01 * sigma * 10
    keyed = GaussianNoise(sigma=0.1, random_state=0).transform(x, ids=torch.arange(64)) - 0.5
    assert abs(float(keyed.std()) - 0.1) < 0.005


def test_keyed_normal_is_standard_normal():
    z = keyed_normal(item_keys(3, torch.arange(200)), (3, 17)).numpy().ravel()
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    from scipy import stats

    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_noise_with_ids_depends_only_on_item_and_seed():
    x = torch.rand(10, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    ids = torch.tensor([5, 9, 2, 7, 1, 0, 3, 8, 6, 4]) * 1_000_003
    full = GaussianNoise(random_state=1).transform(x, ids=ids)
    part = GaussianNoise(random_state=1).transform(x[3:6], ids=ids[3:6])
    perm = torch.tensor([9, 0, 4, 2])
    shuffled = GaussianNoise(random_state=1).transform(x[perm], ids=ids[perm])
    assert torch.equal(full[3:6], part) and torch.equal(full[perm], shuffled)
    other_seed = GaussianNoise(random_state=2).transform(x, ids=ids)
    assert not torch.equal(full, other_seed)
    same_pixels_other_id = GaussianNoise(random_state=1).transform(x[:1], ids=ids[1:2])
    assert not torch.equal(full[:1], same_pixels_other_id)


def test_noise_without_seed_uses_os_entropy():
    x = torch.full((2, 1, 8, 8), 0.5)
    assert not torch.equal(GaussianNoise().transform(x), GaussianNoise().transform(x))
    assert torch.equal(GaussianNoise(random_state=3).transform(x), GaussianNoise(random_state=3).transform(x))


def test_params_follow_estimator_conventions():
    p = GaussianNoise(sigma=0.2, random_state=5)
    assert p.get_params() == {"sigma": 0.2, "random_state": 5}
    assert p.fit(torch.rand(1, 1, 2, 2)) is p
    with pytest.raises(InvalidInputError):
        GaussianNoise(sigma=-1).transform(torch.rand(1, 1, 2, 2))
    with pytest.raises(InvalidInputError):
        GaussianNoise().transform(torch.rand(2, 1, 2, 2), ids=torch.arange(3))


def _refuse_host_copies(patch: pytest.MonkeyPatch) -> None:
    def refuse(self, *args, **kwargs):
        raise AssertionError("transform copied a tensor to the host")

    patch.setattr(torch.Tensor, "cpu", refuse)
    patch.setattr(torch.Tensor, "numpy", refuse)


@pytest.mark.parametrize(("name", "params", "ids"), [("blur", {"sigma": 1.5}, None), ("pixelate", {"block": 3}, None),
                                                     ("noise", {"random_state": 4}, None),
                                                     ("noise", {"random_state": 4}, [5, 1, 9])])
def test_transform_stays_on_the_input_device_and_equals_the_cpu_path(device, monkeypatch, name, params, ids):
    x = torch.rand(3, 3, 19, 23, generator=torch.Generator().manual_seed(1))
    kwargs = {} if ids is None else {"ids": ids}
    expected = methods.create(name, **params).transform(x, **kwargs)
    with monkeypatch.context() as patch:  # no round trip of the images (or the noise) through the host
        _refuse_host_copies(patch)
        got = methods.create(name, **params).transform(x.to(device), **kwargs)
    assert got.device == x.to(device).device
    if device.type == "cpu":
        assert torch.equal(got, expected)
    else:  # fused multiply-adds on the GPU may round the blur's sums differently in the last bit
        torch.testing.assert_close(got.cpu(), expected, atol=1e-5, rtol=0)
