"""ISS and FPPSR: closed forms on an identity model whose embedding is the flattened image."""

from __future__ import annotations

import pytest
import torch

from privis.errors import InvalidInputError
from privis.identity import IdentityModel, identity_similarity, iss_and_fppsr, protection_success_rate


class _Flat(IdentityModel):
    name = "flat"

    def __init__(self, metric: str, threshold: float) -> None:
        super().__init__()
        self.metric, self.threshold = metric, threshold

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


def test_cosine_iss_is_the_pixel_cosine_and_fppsr_counts_below_threshold(device):
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(7, 1, 4, 4, generator=gen).to(device)
    b = torch.rand(7, 1, 4, 4, generator=gen).to(device)
    b[0] = a[0]  # the same image: ISS 1
    b[1] = (a[1] * 0.5).clamp(0, 1)  # a scaled image: the same direction, ISS 1
    model = _Flat("cosine", 0.8)
    iss = identity_similarity(model, a, b, batch_size=3)
    expected = torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1))
    assert iss.shape == (7,) and iss.device.type == device.type and not iss.requires_grad
    assert torch.allclose(iss, expected, atol=1e-6) and torch.allclose(iss[:2], torch.ones(2, device=device))
    assert torch.equal(iss, identity_similarity(model, a, b))  # batching does not change the result
    assert protection_success_rate(model, a, b) == pytest.approx(float((expected < 0.8).float().mean()))
    assert protection_success_rate(model, a, a) == 0.0
    mean_iss, fppsr = iss_and_fppsr(model, a, b, batch_size=3)
    assert mean_iss == pytest.approx(float(expected.mean()), abs=1e-6)
    assert fppsr == pytest.approx(float((expected < 0.8).float().mean()))


def test_euclidean_fppsr_counts_above_threshold():
    a = torch.zeros(4, 1, 2, 2)
    b = torch.stack([torch.full((1, 2, 2), v) for v in (0.0, 0.2, 0.4, 0.6)])  # distances 0, 0.4, 0.8, 1.2
    model = _Flat("euclidean", 0.6)
    assert torch.allclose(identity_similarity(model, a, b), torch.tensor([0.0, 0.4, 0.8, 1.2]), atol=1e-6)
    assert protection_success_rate(model, a, b) == 0.5


def test_refusals():
    model = _Flat("cosine", 0.3)
    with pytest.raises(InvalidInputError, match="same shape"):
        identity_similarity(model, torch.zeros(2, 1, 4, 4), torch.zeros(3, 1, 4, 4))
    with pytest.raises(InvalidInputError, match="batch_size"):
        identity_similarity(model, torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), batch_size=0)
    with pytest.raises(InvalidInputError, match="protected"):
        protection_success_rate(model, torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 2.0))
