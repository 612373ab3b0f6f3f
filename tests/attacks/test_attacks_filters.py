"""filters: denoisers lift |SSIM| over mildly noisy images and cannot restore pure noise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from privis.attacks import AttackContext, create
from privis.attacks.filters import apply_filter
from privis.errors import InvalidInputError
from privis.methods import create as create_method


def upsampled(images):
    """Digits at 32 x 32 (8 x 8 leaves SSIM's 7 x 7 window almost nothing to compare)."""
    return F.interpolate(images, size=32, mode="bilinear", align_corners=False).clamp(0, 1)


def test_filters_recover_mild_noise(digits_test):
    originals = upsampled(digits_test.images[:60])
    noisy = create_method("noise", sigma=0.2, random_state=0).transform(originals)
    out = create("filters").run(originals, noisy, context=AttackContext(method="noise"))
    assert out.scores["ssim_mean"] > out.scores["ssim_protected"] + 0.1
    assert out.recovered.shape == originals.shape
    assert {row["variant"] for row in out.variants} >= {"median-3", "tv-0.1", "nl-means-0.08"}
    assert out.variant == max(out.variants, key=lambda r: r["ssim_mean"])["variant"]


def test_filters_cannot_restore_pure_noise(digits_test):
    originals = upsampled(digits_test.images[:60])
    pure = torch.rand(originals.shape, generator=torch.Generator().manual_seed(0))
    out = create("filters").run(originals, pure, context=AttackContext(method="noise"))
    assert out.scores["ssim_mean"] < 0.15  # smoothing noise yields blobs, not the images


def test_filters_batch_forms_match_per_image():
    x = torch.rand(3, 2, 9, 9, generator=torch.Generator().manual_seed(1)).double().numpy()
    for kind, strength in (("median", 3), ("gaussian", 1.0), ("tv", 0.2)):
        batch = apply_filter(x, kind, strength)
        single = apply_filter(x[1:2, 1:2], kind, strength)
        assert abs(batch[1, 1] - single[0, 0]).max() < 1e-9, kind


def test_filters_errors(digits_test):
    originals = digits_test.images[:4]
    with pytest.raises(InvalidInputError):
        create("filters", bank=[("sharpen", 1.0)]).run(originals, originals, context=AttackContext(method="blur"))
    with pytest.raises(InvalidInputError):
        create("filters").run(originals, originals[:2], context=AttackContext(method="blur"))
    with pytest.raises(InvalidInputError, match="unknown attack"):
        create("no-such-attack")
