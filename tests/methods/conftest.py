"""Fixtures shared by the method tests."""

from __future__ import annotations

import pytest
import torch

from privis import models


@pytest.fixture(scope="session")
def digits_aux(digits_train):
    """A second, differently seeded classifier on digits: the auxiliary model (on the CPU, as the tests'
    tensors)."""
    torch.manual_seed(1)
    model = models.create("lenet5", num_classes=10, in_channels=1, image_size=8)
    models.train(model, digits_train.images, digits_train.labels, epochs=4, seed=1, device="cpu")
    return model.eval()
