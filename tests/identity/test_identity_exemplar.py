"""Exemplar identity models: the augmentation's stated ranges, the match property on digits, seeding, errors."""

from __future__ import annotations

import pytest
import torch

from privis.errors import InvalidInputError
from privis.identity import ClassifierIdentity
from privis.identity.exemplar import augment_exemplar, max_shift, train_exemplar_identity


@pytest.fixture(scope="module")
def exemplar(digits_train, one_thread) -> ClassifierIdentity:
    images = digits_train.images
    return train_exemplar_identity(images[:150], epochs=20, random_state=0, calibrate_on=images[150:250])


def test_shift_is_two_pixels_at_28_and_scales_down_to_one():
    assert (max_shift(28, 28), max_shift(8, 8), max_shift(4, 4), max_shift(56, 64)) == (2, 1, 1, 4)


def test_augmentation_shifts_within_two_pixels_and_keeps_the_range():
    images = torch.zeros(64, 1, 28, 28)
    images[:, 0, 14, 14] = 1.0  # one bright pixel on the 0 background
    out = augment_exemplar(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    flat = out.flatten(1).argmax(1)
    rows, cols = flat // 28, flat % 28
    assert bool(((rows - 14).abs() <= 2).all() and ((cols - 14).abs() <= 2).all())
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10  # the shifts do vary
    background = out[:, 0, 0, 0]  # a corner pixel: brightness offset and noise only
    assert float(background.max()) < 0.3


def test_augmentation_is_seeded_and_does_not_touch_the_global_rng():
    images = torch.rand(8, 1, 8, 8)
    state = torch.random.get_rng_state()
    a = augment_exemplar(images, torch.Generator().manual_seed(3))
    b = augment_exemplar(images, torch.Generator().manual_seed(3))
    c = augment_exemplar(images, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(state, torch.random.get_rng_state())


def test_exemplar_model_matches_an_image_to_its_augmented_copy_far_more_often_than_to_another(exemplar, digits_train):
    images = digits_train.images[:150]  # the identities the model was trained on
    with torch.no_grad():
        base = exemplar.embed(images)
        same = exemplar.score(base, exemplar.embed(augment_exemplar(images, torch.Generator().manual_seed(9))))
        other = exemplar.score(base, exemplar.embed(images.roll(1, 0)))
    # ROC-style: a genuine pair outscores an impostor pair in most of all (genuine, impostor) combinations
    auc = float((same[:, None] > other[None, :]).float().mean())
    assert auc > 0.85, auc
    genuine_rate = float(exemplar.same_identity(same).float().mean())
    impostor_rate = float(exemplar.same_identity(other).float().mean())
    assert genuine_rate > impostor_rate + 0.4, (genuine_rate, impostor_rate)


def test_exemplar_model_is_named_calibrated_and_frozen(exemplar):
    assert exemplar.name == "lenet5-exemplar"
    assert -1.0 <= exemplar.threshold <= 1.0
    assert exemplar.eer is not None and 0.0 <= exemplar.eer < 0.5
    assert not exemplar.training and not any(p.requires_grad for p in exemplar.parameters())


def test_exemplar_training_is_seeded(digits_train):
    images = digits_train.images[:30]
    a = train_exemplar_identity(images, epochs=1, augmentations=2, random_state=5)
    b = train_exemplar_identity(images, epochs=1, augmentations=2, random_state=5)
    c = train_exemplar_identity(images, epochs=1, augmentations=2, random_state=6)
    assert a.threshold == b.threshold
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values(), strict=True))


def test_calibrate_on_given_images_trains_on_every_image(digits_train):
    images = digits_train.images[:12]
    identity = train_exemplar_identity(images, epochs=1, augmentations=1, random_state=0,
                                       calibrate_on=digits_train.images[12:20])
    assert identity.features.model.num_classes == 12


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"arch": "no-such-net"}, "unknown architecture"),
    ({"epochs": 0}, "epochs"),
    ({"augmentations": 0}, "augmentations"),
    ({"calibrate_on": torch.rand(1, 1, 8, 8)}, "calibrate_on"),
    ({"calibrate_on": torch.rand(4, 1, 9, 9)}, "calibrate_on"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        train_exemplar_identity(torch.rand(6, 1, 8, 8), random_state=0, **kwargs)


def test_too_few_images_to_hold_out_is_an_error():
    with pytest.raises(InvalidInputError, match="at least 4 images"):
        train_exemplar_identity(torch.rand(3, 1, 8, 8), random_state=0)
