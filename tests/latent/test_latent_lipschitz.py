"""``measure_lipschitz`` against a linear codec whose Jacobian ``A B`` has a known spectral norm."""

from __future__ import annotations

import pytest
import torch

from linear_codec import LinearCodec
from privis.errors import InvalidInputError
from privis.latent import measure_lipschitz


def _codec(top: float = 1.7) -> LinearCodec:
    """``f(g(z)) = Q diag(top, 0.9, ..., 0.1) Q^T z`` (inside the clamp), spectral norm ``top``."""
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(0)))
    singular = torch.cat([torch.tensor([top]), torch.linspace(0.9, 0.1, 15)])
    return LinearCodec(a=q @ torch.diag(singular) @ q.T, b=torch.eye(16)).eval()


def test_jacobian_power_iteration_finds_the_spectral_norm_of_a_linear_map():
    codec = _codec(1.7)
    latents = 0.01 * torch.randn(64, 2, 8, generator=torch.Generator().manual_seed(1))  # g(z) inside [0, 1]
    found = measure_lipschitz(codec, latents=latents, samples=8, pairs=64, iterations=30, random_state=2)
    assert found.jacobian_max == pytest.approx(1.7, rel=1e-4)
    assert found.pair_ratio_max <= 1.7 * (1 + 1e-5)
    assert found.estimate == max(found.jacobian_max, found.pair_ratio_max)
    assert found.certified_bound is None and found.samples == 8 and found.pairs == 64
    assert set(found.to_dict()) == {"jacobian_max", "pair_ratio_max", "estimate", "certified_bound", "samples",
                                    "pairs"}


def test_images_sampling_clip_and_seeding():
    codec = _codec(1.7)
    images = 0.5 + 0.01 * torch.rand(20, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    a = measure_lipschitz(codec, images=images, samples=4, pairs=16, iterations=25, random_state=4)
    b = measure_lipschitz(codec, images=images, samples=4, pairs=16, iterations=25, random_state=4)
    assert a == b and a.jacobian_max == pytest.approx(1.7, rel=1e-3)
    clipped = measure_lipschitz(codec, images=images, samples=4, pairs=16, iterations=5, random_state=4, clip=1e-6)
    assert clipped.jacobian_max == 0.0  # every output coordinate on the clip: a flat map
    spread = measure_lipschitz(codec, samples=4, pairs=16, iterations=25, random_state=5)  # N(0, s^2 I) latents
    assert spread.jacobian_max <= 1.7 * (1 + 1e-5)


def test_bad_counts_are_refused():
    for key in ("samples", "pairs", "iterations"):
        with pytest.raises(InvalidInputError, match=key):
            measure_lipschitz(_codec(), **{key: 0})
    with pytest.raises(InvalidInputError, match="latents"):
        measure_lipschitz(_codec(), latents=torch.zeros(3, 4, 4))
