"""membership-inference: a memorising model gives members away; a model that never saw them does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from privis import models
from privis.attacks import AttackContext, NotApplicableError, create
from privis.attacks.membership_inference import roc_scores


def memoriser(images, labels, seed=0):
    torch.manual_seed(seed)
    model = models.create("lenet5", num_classes=10, in_channels=1, image_size=8)
    models.train(model, images, labels, epochs=40, seed=seed)
    return model


def context(model, train, test, n=150):
    return AttackContext(method="blur", service_model=model, member_images=train.images[:n],
                         member_labels=train.labels[:n], holdout_images=test.images[:n], holdout_labels=test.labels[:n])


def test_roc_scores():
    assert roc_scores(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == (1.0, 1.0)
    assert roc_scores(np.array([1.0, 2.0]), np.array([3.0, 4.0]))[0] == 0.0


def test_members_of_a_memorising_model_are_found(digits_train, digits_test):
    gen = torch.Generator().manual_seed(0)
    random_labels = torch.randint(0, 10, (150,), generator=gen)  # nothing to generalise: pure memorisation
    model = memoriser(digits_train.images[:150], random_labels)
    ctx = context(model, digits_train, digits_test)
    ctx.member_labels = random_labels
    out = create("membership-inference").run(digits_test.images[:4], digits_test.images[:4], context=ctx)
    assert out.scores["original_loss_auc"] > 0.7  # the never-seen model below stays within 0.5 +- 0.12
    assert out.scores["auc"] >= out.scores["original_loss_auc"]
    assert out.recovered is None


def test_a_model_that_never_saw_the_members_gives_nothing(digits_train, digits_test):
    model = memoriser(digits_train.images[600:900], digits_train.labels[600:900])
    out = create("membership-inference").run(digits_test.images[:4], digits_test.images[:4],
                                             context=context(model, digits_train, digits_test))
    assert abs(out.scores["original_loss_auc"] - 0.5) < 0.12


def test_needs_members(digits_test):
    x = digits_test.images[:4]
    with pytest.raises(NotApplicableError, match="service_model"):
        create("membership-inference").run(x, x, context=AttackContext(method="blur"))
