"""DP-Image (``dp-image``): Algorithm 6's noise in latent space, per-item keys, the clip and the DP inputs.

A linear identity codec (``f(x) = x - 0.5``, ``g(z) = z + 0.5``) makes one step exactly ``clip(z) + noise``
in latent space, so the noise can be read back and checked against ``N(0, sigma^2)``.
"""

from __future__ import annotations

import math

import pytest
import torch

from linear_codec import LinearCodec
from privis import methods
from privis.errors import InvalidInputError
from privis.methods.base import NotFittedError
from privis.methods.dp_image import CLIP_QUANTILE, DPImage, fit_clip


def _images(n: int, seed: int = 0) -> torch.Tensor:
    """Images in [0.3, 0.7]: small noise never meets the decoder's clamp to [0, 1]."""
    return 0.3 + 0.4 * torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(seed))


def _latent_noise(protector: DPImage, images: torch.Tensor, **kwargs) -> torch.Tensor:
    codec = protector.codec_
    out = protector.transform(images, **kwargs)
    return codec.encode(out) - protector._clip(codec.encode(images), torch.ones(2, 1))


def test_one_step_adds_exactly_gaussian_noise_of_sigma_in_latent_space():
    images = _images(2000)
    sigma = 0.02
    protector = DPImage(codec=LinearCodec(), sigma=sigma, steps=1, clip=10.0, random_state=1).fit(images)
    noise = _latent_noise(protector, images).flatten().double()  # 32,000 draws
    assert abs(float(noise.mean())) < 4 * sigma / math.sqrt(noise.numel())
    assert float(noise.std()) == pytest.approx(sigma, rel=0.02)
    kurtosis = float(((noise - noise.mean()) ** 4).mean() / noise.var() ** 2)
    assert kurtosis == pytest.approx(3.0, abs=0.15)  # Gaussian, not uniform (1.8) or Laplace (6)
    # the keyed path draws the same law
    keyed = _latent_noise(protector, images, ids=torch.arange(2000)).flatten().double()
    assert float(keyed.std()) == pytest.approx(sigma, rel=0.02)


def test_steps_compose_as_a_random_walk_when_nothing_is_clipped():
    images = _images(2000)
    protector = DPImage(codec=LinearCodec(), sigma=0.01, steps=4, clip=10.0, random_state=2).fit(images)
    noise = _latent_noise(protector, images).flatten()
    assert float(noise.std()) == pytest.approx(0.01 * 2.0, rel=0.03)  # sqrt(T) sigma


def test_an_items_noise_depends_on_its_id_and_the_seed_alone():
    images = _images(10)
    protector = DPImage(codec=LinearCodec(), sigma=0.05, steps=3, clip=10.0, random_state=7).fit(images)
    ids = torch.arange(50, 60)
    whole = protector.transform(images, ids=ids)
    part = protector.transform(images[[7, 2]], ids=ids[[7, 2]])
    assert torch.equal(part, whole[[7, 2]])
    other_seed = DPImage(codec=LinearCodec(), sigma=0.05, steps=3, clip=10.0, random_state=8).fit(images)
    assert not torch.equal(other_seed.transform(images, ids=ids), whole)
    with pytest.raises(InvalidInputError, match="3 ids for 10 images"):
        protector.transform(images, ids=ids[:3])


def test_groups_outside_perturbed_groups_get_no_noise():
    images = _images(64)
    protector = DPImage(codec=LinearCodec(), sigma=0.05, steps=2, clip=10.0, perturbed_groups=[1],
                        random_state=3).fit(images)
    noise = _latent_noise(protector, images)
    torch.testing.assert_close(noise[:, 0], torch.zeros_like(noise[:, 0]), atol=1e-6, rtol=0)
    assert float(noise[:, 1].std()) > 0.03
    assert protector.perturbed_groups_ == [1]
    assert DPImage(codec=LinearCodec(), perturbed_groups=1).fit(images).perturbed_groups_ == [0]


def test_zero_sigma_releases_the_codec_reconstruction():
    images = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    protector = DPImage(codec_epochs=1, sigma=0.0, steps=1, clip=1e3, random_state=5).fit(images)
    codec = protector.codec_
    with torch.no_grad():
        expected = codec.decode(codec.encode(images))
    torch.testing.assert_close(protector.transform(images), expected, atol=1e-6, rtol=0)


def test_box_and_l2_clips_bound_the_latent_before_the_noise():
    images = _images(32)
    box = DPImage(codec=LinearCodec(), sigma=0.0, steps=1, clip=0.05).fit(images)
    z = box.codec_.encode(box.transform(images))
    assert float(z.abs().max()) <= 0.05 + 1e-6
    l2 = DPImage(codec=LinearCodec(), sigma=0.0, steps=1, clip=0.1, clip_kind="l2", perturbed_groups=[0]).fit(images)
    z = l2.codec_.encode(l2.transform(images))
    for group in (0, 1):  # the perturbed part and the rest, each projected onto the ball of radius c
        assert float(z[:, group].norm(dim=1).max()) <= 0.1 + 1e-6
    assert float(z[:, 0].norm(dim=1).min()) == pytest.approx(0.1, rel=1e-4)  # all were outside: on the sphere


def test_fitted_clip_keeps_the_documented_share_of_coordinates():
    latents = torch.randn(500, 64, generator=torch.Generator().manual_seed(6))
    c = fit_clip(latents, "box")
    kept = float((latents.abs() <= c).double().mean())
    assert CLIP_QUANTILE <= kept <= CLIP_QUANTILE + 0.002
    assert c == float(f"{c:.2g}")  # two significant digits
    norms = latents.norm(dim=1)
    assert float((norms <= fit_clip(latents, "l2")).double().mean()) >= CLIP_QUANTILE


def test_dp_parameters_follow_the_thesis_sensitivity():
    images = _images(8)
    with pytest.raises(NotFittedError):
        DPImage(codec=LinearCodec()).dp_parameters()
    box = DPImage(codec=LinearCodec(), sigma=0.2, steps=5, clip=20.0, perturbed_groups=1).fit(images).dp_parameters()
    assert box == {"mechanism": "dp-image", "sensitivity": pytest.approx(2 * 20.0 * math.sqrt(8)), "sigma": 0.2,
                   "steps": 5, "clip": 20.0, "clip_kind": "box", "latent_dim": 16, "perturbed_dim": 8, "groups": 2,
                   "perturbed_groups": [0], "lipschitz_bound": None}
    # the thesis' figure: pSp's 18 x 512 latent clipped to [-20, 20] gives 3840
    assert 2 * 20.0 * math.sqrt(18 * 512) == pytest.approx(3840.0)
    l2 = DPImage(codec=LinearCodec(), clip=3.0, clip_kind="l2").fit(images).dp_parameters()
    assert l2["sensitivity"] == 6.0 and l2["perturbed_dim"] == 16
    fitted = DPImage(codec=LinearCodec()).fit(images)
    assert fitted.dp_parameters()["clip"] == fitted.clip_ > 0  # the fitted clip is public
    assert fitted.public_record() == {"dp_parameters": fitted.dp_parameters()}


def test_bad_parameters_and_codecs_are_refused_by_name():
    images = _images(4)
    for bad in (0, -1, [0, 0], [], "7", [1.5]):
        with pytest.raises(InvalidInputError, match="perturbed_groups"):
            DPImage(codec=LinearCodec(), perturbed_groups=bad).fit(images)
    with pytest.raises(InvalidInputError, match="out of range"):
        DPImage(codec=LinearCodec(), perturbed_groups=[2]).fit(images)
    with pytest.raises(InvalidInputError, match="has 2 groups"):
        DPImage(codec=LinearCodec(), perturbed_groups=3).fit(images)
    with pytest.raises(InvalidInputError, match=r"expects images of shape \(N, 1, 4, 4\)"):
        DPImage(codec=LinearCodec()).fit(torch.rand(2, 1, 8, 8))
    with pytest.raises(InvalidInputError, match="codec file not found"):
        DPImage(codec="/nonexistent/codec.pt").fit(images)
    with pytest.raises(NotFittedError):
        DPImage(codec=LinearCodec()).transform(images)
    assert methods.get("dp-image") is DPImage
    assert DPImage.parse_param("perturbed_groups", "[0, 3]") == [0, 3]
