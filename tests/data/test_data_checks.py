"""``privis.data.checks``: datasets that cannot be used together are refused by name before any work."""

from __future__ import annotations

import pytest
import torch

from privis.data.checks import check_classes, check_same_layout, check_two_classes
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


def test_training_data_of_one_class_is_refused():
    with pytest.raises(DatasetError, match="hold 1 class"):
        check_two_classes(torch.zeros(30, dtype=torch.long), source="npz:x.npz")
    check_two_classes(torch.tensor([0, 1, 1]))
