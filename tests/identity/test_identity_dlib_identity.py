"""The dlib IdentityModels: the torch port (white-box) and dlib itself (black-box), and their landmark policy."""

from __future__ import annotations

import pytest
import torch

from privis.identity import DlibIdentity, DlibResNetIdentity, identity_similarity, protection_success_rate

dlib = pytest.importorskip("dlib")
pytestmark = pytest.mark.usefixtures("one_thread")

from privis.identity.alignment import sample_faces  # noqa: E402


@pytest.fixture(scope="module")
def models() -> tuple[DlibResNetIdentity, DlibIdentity]:
    return DlibResNetIdentity(), DlibIdentity()


@pytest.fixture(scope="module")
def lfw() -> torch.Tensor:
    """Three upscaled LFW faces (1 x 230 x 230 grey), all found by dlib."""
    return torch.cat(sample_faces(4)[1:])


def test_contract_values(models):
    white, black = models
    assert (white.metric, white.threshold, white.name) == ("euclidean", 0.6, "dlib-resnet")
    assert (black.metric, black.threshold, black.name) == ("euclidean", 0.6, "dlib")


def test_white_and_black_box_agree_on_whole_images(models, lfw):
    white, black = models
    white.locate(lfw)
    black.locate(lfw)
    noisy = (lfw + 0.05 * torch.randn(lfw.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    w, b = identity_similarity(white, lfw, noisy), identity_similarity(black, lfw, noisy)
    # privis' bilinear chips vs dlib's 8-bit ones: a few thousandths apart, the same decisions
    assert (w - b).abs().max() < 0.02 and torch.equal(white.same_identity(w), black.same_identity(b))
    assert torch.allclose(white.embed(lfw), black.embed(lfw), atol=0.02)


def test_landmarks_of_the_originals_are_used_for_protected_images(models, lfw):
    white, black = models
    blank = torch.full_like(lfw, 0.5)  # a "protection" that erases the face
    for model in (white, black):
        model.locate(lfw)
        kept = model.embed(blank)  # cut where the original faces were: finite descriptors
        assert torch.isfinite(kept).all()
        model.landmarks = None  # nothing kept: dlib looks for a face in the blank image, finds none
        lost = model.embed(blank)
        assert torch.isnan(lost).all()
        assert protection_success_rate(model, lfw, blank) == 1.0  # NaN distance: never the same identity


def test_gradients_reach_the_images_through_the_chip(models, lfw):
    white, _ = models
    white.locate(lfw[:1])
    x = lfw[:1].clone().requires_grad_(True)
    white.embed(x).norm().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ready_chips(models, lfw):
    white, black = models
    white.locate(lfw)
    chips = torch.rand(2, 3, 150, 150, generator=torch.Generator().manual_seed(1))
    chips = (chips * 255).round() / 255
    with torch.no_grad():
        assert (white.embed_chips(chips) - black.embed_chips(chips)).abs().max() < 1e-4
