"""auxiliary-recognition: a classifier trained on originals reads mildly blurred images, not pure noise."""

from __future__ import annotations

import pytest
import torch

from privis.attacks import AttackContext, NotApplicableError, create


def test_recognises_mild_blur(digits_test, digits_lenet):
    from privis.methods import create as create_method

    x, y = digits_test.images, digits_test.labels
    protected = create_method("blur", sigma=0.5).transform(x)
    ctx = AttackContext(method="blur", labels=y, classifier=digits_lenet)
    out = create("auxiliary-recognition", adaptive=False).run(x, protected, context=ctx)
    assert out.scores["aux_acc"] > 0.6
    assert out.scores["ssim_mean"] == out.scores["ssim_protected"]  # the protected images are what is "recovered"


def test_pure_noise_is_not_recognised(digits_test, digits_lenet):
    x, y = digits_test.images, digits_test.labels
    pure = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    ctx = AttackContext(method="noise", labels=y, classifier=digits_lenet)
    assert create("auxiliary-recognition", adaptive=False).run(x, pure, context=ctx).scores["aux_acc"] < 0.3


def test_adaptive_recogniser(digits_train, digits_test, digits_lenet):
    from privis.methods import create as create_method

    x, y = digits_test.images[:100], digits_test.labels[:100]
    blur = create_method("blur", sigma=1.0)
    ctx = AttackContext(method="blur", params={"sigma": 1.0}, protector=blur, labels=y, classifier=digits_lenet,
                        aux_images=digits_train.images[:800], aux_labels=digits_train.labels[:800], seed=0)
    out = create("auxiliary-recognition", epochs=12).run(x, blur.transform(x), context=ctx)
    assert out.scores["adaptive_acc"] > 0.5  # trained on blurred digits, it reads blurred digits (chance: 0.1)


def test_needs_a_classifier(digits_test):
    x = digits_test.images[:4]
    with pytest.raises(NotApplicableError, match="classifier"):
        create("auxiliary-recognition").run(x, x, context=AttackContext(method="blur"))
