"""``privis.data.checks``: datasets that cannot be used together are refused by name before any work."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from privis.data.checks import (
    check_classes,
    check_images,
    check_int,
    check_labels,
    check_same_layout,
    check_two_classes,
)
from privis.errors import DatasetError, InvalidInputError


@pytest.mark.parametrize(("fit", "data", "what"), [((1, 8, 8), (3, 8, 8), "channels"),
                                                   ((1, 28, 28), (1, 8, 8), "image size"),
                                                   ((5, 3, 16, 16), (2, 3, 16, 12), "image size")])
def test_fit_data_of_another_size_or_channel_count_is_refused(fit, data, what):
    with pytest.raises(InvalidInputError) as info:
        check_same_layout(fit, data, fit_name="digits:train", data_name="folder:photos")
    message = str(info.value)
    assert "digits:train" in message and "folder:photos" in message and f"({what} differ)" in message
    assert "x".join(map(str, fit[-3:])) in message and "x".join(map(str, data[-3:])) in message


def test_same_layout_passes_whatever_the_counts():
    check_same_layout((100, 3, 16, 16), (7, 3, 16, 16), fit_name="a", data_name="b")


def test_classes_need_two_and_the_same_in_both_splits():
    check_classes(torch.tensor([0, 1, 1, 0]), torch.tensor([1, 0]))
    with pytest.raises(DatasetError, match=r"x: 3 training and 2 test images hold 1 class\(es\)"):
        check_classes(torch.tensor([2, 2, 2]), torch.tensor([2, 2]), source="x")
    with pytest.raises(DatasetError, match=r"the test images lack 1 of the 3 training classes \(bird\)"):
        check_classes(torch.tensor([0, 1, 2]), torch.tensor([0, 1]), class_names=["cat", "dog", "bird"])
    with pytest.raises(DatasetError, match=r"the training images lack 1 of the 3 test classes \(2\)"):
        check_classes(torch.tensor([0, 1]), torch.tensor([0, 1, 2]))


# ------------------------------------------------------------------- the one image / label / integer check


BAD_IMAGES = [
    (torch.rand(2, 8, 8), "shape (N, C, H, W)"),
    (torch.zeros(0, 1, 8, 8), "empty"),
    (torch.rand(2, 8, 8, 3), "channels-last"),
    (torch.randint(0, 255, (2, 1, 8, 8)), "floating point"),
    (torch.full((2, 1, 8, 8), float("nan")), "NaN"),
    (torch.full((2, 1, 8, 8), float("inf")), "not within [0, 1]"),
    (torch.full((2, 1, 8, 8), 1.5), "values span [1.5, 1.5], not within [0, 1]"),
]


@pytest.mark.parametrize(("images", "fragment"), BAD_IMAGES)
def test_every_layer_refuses_bad_images_with_the_same_words(images, fragment, tmp_path):
    """The protector contract, the training loop, the Dataset and the folder writer share one check: the same bad
    tensor gets the same sentence from each (after the caller's name for the tensor)."""
    from privis.data import Dataset, FolderWriter
    from privis.methods.base import check_images as method_check
    from privis.models import create, train

    labels = torch.zeros(len(images), dtype=torch.long)
    calls = [lambda: check_images(images),
             lambda: method_check(images),
             lambda: train(create("lenet5", num_classes=2, in_channels=1, image_size=8), images, labels, epochs=1)]
    if len(images) > 0:  # a batch to write and a Dataset may be empty
        calls.append(lambda: FolderWriter(tmp_path / "o", ["a", "b"]).write(images, labels))
        if images.is_floating_point():  # a Dataset must be float32 exactly
            calls.append(lambda: Dataset(images, labels, ["a", "b"], "d"))
    messages = []
    for call in calls:
        with pytest.raises(InvalidInputError) as info:
            call()
        messages.append(str(info.value))
    assert all(fragment in m for m in messages), messages
    tails = {m.split("images", 1)[1] for m in messages}
    assert len(tails) == 1, messages


def test_check_images_keeps_good_images_and_converts_only_the_dtype():
    images = torch.rand(3, 3, 5, 5)
    assert check_images(images) is images
    doubled = check_images(images.double())
    assert doubled.dtype == torch.float32 and torch.equal(doubled, images)
    assert check_images(torch.rand(2, 4, 6, 6), channels=None).shape == (2, 4, 6, 6)
    with pytest.raises(InvalidInputError, match="1 or 3 channels"):
        check_images(torch.rand(2, 4, 6, 6))
    assert check_images(torch.zeros(0, 1, 4, 4), allow_empty=True).shape[0] == 0
    assert check_images(torch.full((1, 1, 2, 2), 1 + 1e-7)).max() > 1  # rounding slack, not changed
    with pytest.raises(InvalidInputError, match="not within"):
        check_images(torch.full((1, 1, 2, 2), 1 + 1e-7), tolerance=0.0)
    with pytest.raises(InvalidInputError, match="float32"):
        check_images(images.double(), float32=True)


def test_check_labels():
    assert check_labels(None, 3) is None
    assert check_labels([2, 0, 1], 3, num_classes=3).tolist() == [2, 0, 1]
    assert check_labels(torch.tensor([1, 0], dtype=torch.int32), 2).dtype == torch.long
    for labels, n, classes, fragment in ((torch.tensor([0, 1]), 3, None, "2 entries but there are 3 images"),
                                         (torch.zeros(2, 2, dtype=torch.long), 2, None, "shape (N,)"),
                                         (torch.tensor([0.0, 1.0]), 2, None, "integer class indices"),
                                         (torch.tensor([True, False]), 2, None, "integer class indices"),
                                         (torch.tensor([0, -1]), 2, None, "labels span -1..0"),
                                         (torch.tensor([0, 4]), 2, 4, "in [0, 3]; the labels span 0..4"),
                                         ("abc", 3, None, "class indices")):
        with pytest.raises(InvalidInputError) as info:
            check_labels(labels, n, num_classes=classes)
        assert fragment in str(info.value)


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4", None])
def test_check_int_refuses_non_integers_and_values_below_the_minimum(value):
    with pytest.raises(InvalidInputError, match=rf"^width must be an integer >= 1, got {re.escape(repr(value))}$"):
        check_int(value, "width")


def test_check_int_is_the_one_positive_integer_check():
    """Zoo options, the U-Net width, batch sizes, the server's limits and metric windows all say the same."""
    from privis.metrics import ssim
    from privis.models import create, predict
    from privis.serve.app import create_app

    assert check_int(np.int64(5), "n") == 5 and check_int(0, "n", minimum=0) == 0
    calls = [lambda: create("vgg", num_classes=2, in_channels=1, image_size=8, width=0),
             lambda: create("unet-perturbation", in_channels=1, width=0),
             lambda: predict(create("lenet5", num_classes=2, in_channels=1, image_size=8), torch.rand(2, 1, 8, 8),
                             batch_size=0),
             lambda: create_app("unused.pt", max_files=0),
             lambda: ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), win_size=0)]
    for call in calls:
        with pytest.raises(InvalidInputError, match=r"must be an integer >= 1, got 0$"):
            call()


def test_training_data_of_one_class_is_refused():
    with pytest.raises(DatasetError, match="hold 1 class"):
        check_two_classes(torch.zeros(30, dtype=torch.long), source="npz:x.npz")
    check_two_classes(torch.tensor([0, 1, 1]))
