"""model-inversion: a trained model yields representatives it (and an independent reader) classifies as
their class; a model trained on pure noise yields nothing class-like."""

from __future__ import annotations

import pytest
import torch

from privis import models
from privis.attacks import AttackContext, NotApplicableError, create
from privis.attacks.base import class_means


def test_class_means_match_a_loop(digits_test):
    x, y = digits_test.images, digits_test.labels
    classes = torch.tensor([3, 0, 7])
    expected = torch.stack([x[y == c].mean(0) for c in classes])
    assert torch.allclose(class_means(x, y, classes), expected, atol=1e-6)


def test_inversion_of_a_trained_model(digits_test, digits_lenet):
    x, y = digits_test.images, digits_test.labels
    ctx = AttackContext(method="blur", labels=y, service_model=digits_lenet, classifier=digits_lenet, seed=0)
    out = create("model-inversion", steps=100).run(x, x, context=ctx)
    assert out.recovered.shape == (10, 1, 8, 8)
    assert out.scores["aux_acc"] >= 0.9  # each representative is read as its class


def test_inversion_of_a_model_trained_on_noise(digits_test, digits_lenet):
    x, y = digits_test.images, digits_test.labels
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    noise_model = models.create("lenet5", num_classes=10, in_channels=1, image_size=8)
    models.train(noise_model, torch.rand(400, 1, 8, 8, generator=gen), torch.randint(0, 10, (400,), generator=gen),
                 epochs=5, seed=0)
    ctx = AttackContext(method="noise", labels=y, service_model=noise_model, classifier=digits_lenet, seed=0)
    out = create("model-inversion", steps=100).run(x, x, context=ctx)
    assert out.scores["aux_acc"] <= 0.4  # an independent reader does not see the classes


def test_needs_the_service_model(digits_test):
    x = digits_test.images[:4]
    with pytest.raises(NotApplicableError, match="service_model"):
        create("model-inversion").run(x, x, context=AttackContext(method="blur", labels=digits_test.labels[:4]))
