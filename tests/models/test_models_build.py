"""``privis.models.create_seeded`` and ``freeze``: the one way to make seeded models and to freeze them."""

from __future__ import annotations

import pytest
import torch

from privis.models import create, create_seeded, freeze


@pytest.mark.parametrize(("arch", "options"), [("lenet5", {}), ("vgg", {"width": 4, "hidden": 16}),
                                               ("unet-perturbation", {"width": 4})])
def test_create_seeded_gives_the_weights_of_manual_seed_then_create(arch, options):
    """Same seed, same weights as the pattern it replaces (so recorded figures stay valid); another seed, others."""
    kwargs = {"num_classes": 3, "in_channels": 1, "image_size": 16, **options}
    torch.manual_seed(7)
    reference = create(arch, **kwargs)
    seeded = create_seeded(arch, 7, **kwargs)
    for (name, a), (_, b) in zip(reference.state_dict().items(), seeded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    other = create_seeded(arch, 8, **kwargs)
    assert any(not torch.equal(a, b) for a, b in zip(seeded.parameters(), other.parameters(), strict=True))


def test_create_seeded_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    create_seeded("lenet5", 0, num_classes=2, in_channels=1, image_size=12)
    assert torch.equal(torch.rand(5), expected)


def test_seeded_callers_leave_the_global_rng_alone():
    """The evaluation protocol's classifiers and the attacks' models used to reseed the global RNG."""
    from privis.experiments.evaluate import build_classifier

    images = torch.rand(4, 1, 12, 12)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    model = build_classifier("lenet5", images, 2, seed=0)
    assert torch.equal(torch.rand(3), expected)
    reference = create_seeded("lenet5", 0, num_classes=2, in_channels=1, image_size=12)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters(), strict=True))


def test_freeze_stops_gradients_and_sets_eval_mode():
    model = create("vgg", num_classes=2, in_channels=1, image_size=8, width=4, hidden=16).train()
    assert freeze(model) is model
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(not m.training for m in model.modules())
    loss = model(torch.rand(2, 1, 8, 8)).sum()
    assert not loss.requires_grad  # nothing to train
