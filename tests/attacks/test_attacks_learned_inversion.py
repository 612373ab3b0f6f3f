"""learned-inversion: a U-Net learnt on attacker-protected auxiliary data undoes mild blur, not pure noise."""

from __future__ import annotations

import pytest
import torch

from privis.attacks import AttackContext, NotApplicableError, create
from privis.attacks.base import image_leakage
from privis.methods import create as create_method


def test_inversion_undoes_mild_blur(digits_train, digits_test):
    originals = digits_test.images[:100]
    protected = create_method("blur", sigma=1.0).transform(originals)
    ctx = AttackContext(method="blur", params={"sigma": 1.0}, aux_images=digits_train.images[:500],
                        aux_labels=digits_train.labels[:500], seed=1)
    out = create("learned-inversion", epochs=3).run(originals, protected, context=ctx)
    assert out.scores["ssim_mean"] > out.scores["ssim_protected"] + 0.1
    assert out.recovered.shape == originals.shape and out.recovered.min() >= 0 and out.recovered.max() <= 1


def test_inversion_cannot_beat_the_prior_on_pure_noise(digits_train, digits_test):
    originals = digits_test.images[:100]
    # sigma 10: clip(x + 10 z) is a coin flip per pixel, independent of x up to ~4 % of pixels
    protected = create_method("noise", sigma=10.0, random_state=0).transform(originals)
    aux = digits_train.images[:500]
    ctx = AttackContext(method="noise", params={"sigma": 10.0}, aux_images=aux, aux_labels=digits_train.labels[:500],
                        seed=1)
    out = create("learned-inversion", epochs=2).run(originals, protected, context=ctx)
    prior = image_leakage(aux.mean(0, keepdim=True).expand_as(originals), originals)["ssim_mean"]
    assert out.scores["ssim_mean"] < prior + 0.1


def test_inversion_needs_auxiliary_data(digits_test):
    x = digits_test.images[:8]
    with pytest.raises(NotApplicableError, match="aux_images"):
        create("learned-inversion").run(x, x, context=AttackContext(method="blur"))


def test_attacker_randomness_is_its_own(digits_train):
    """The attacker's protector draws fresh randomness: never the defender's seed."""
    defender = create_method("noise", sigma=0.2, random_state=0).fit(digits_train.images[:10])
    ctx = AttackContext(method="noise", params={"sigma": 0.2}, protector=defender, seed=12345)
    mine = ctx.attacker_protector("test")
    assert mine.random_state == 12345 and defender.random_state == 0
    x = digits_train.images[:10]
    assert not torch.equal(mine.transform(x), defender.transform(x))
