"""shredder: greedy reassembly restores smooth images shuffled in small windows, not shuffled white noise."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from privis.attacks import AttackContext, NotApplicableError, create
from privis.attacks.shredder import reassemble
from privis.methods import create as create_method


def smooth_images(n: int, size: int = 32) -> torch.Tensor:
    coarse = torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    return F.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def shredded(originals, window):
    mixer = create_method("visualmixer", window=window, random_state=0).fit(originals)
    return mixer, mixer.transform(originals)


def test_reassembly_restores_smooth_images():
    x = smooth_images(40)
    mixer, protected = shredded(x, 4)
    out = create("shredder").run(x, protected, context=AttackContext(method="visualmixer", protector=mixer))
    assert out.variant == "window-4"
    assert out.scores["ssim_mean"] > out.scores["ssim_protected"] + 0.3


def test_reassembly_keeps_every_region_multiset():
    x = smooth_images(5, 16)
    _, protected = shredded(x, 4)
    out = reassemble(protected, 4, rounds=3)
    blocks = lambda t: t.unfold(2, 4, 4).unfold(3, 4, 4).reshape(5, 1, 16, 16).sort(-1).values  # noqa: E731
    assert torch.allclose(blocks(out), blocks(protected))


def test_reassembly_cannot_restore_white_noise():
    x = torch.rand(40, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    mixer, protected = shredded(x, 4)
    out = create("shredder").run(x, protected, context=AttackContext(method="visualmixer", protector=mixer))
    assert out.scores["ssim_mean"] < 0.15


def test_shredder_needs_a_region_shuffle(digits_test):
    x = digits_test.images[:4]
    with pytest.raises(NotApplicableError, match="does not shuffle"):
        create("shredder").run(x, x, context=AttackContext(method="blur", protector=create_method("blur")))
