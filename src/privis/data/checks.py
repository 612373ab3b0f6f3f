"""Checks that two datasets can be used together, made before any work starts.

- :func:`check_same_layout`: data a protector is fitted on (``--fit-data``) must have the image size and
  channel count of the data it protects; a Veil local model or a perturbation generator fitted on 1x28x28
  images cannot protect 3x32x32 ones, and the failure would otherwise come late, from deep inside a model.
- :func:`check_classes`: accuracies mean something only when the training data holds at least two classes
  and the training and test data hold the same classes (on one class every accuracy is 1.0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from privis.errors import DatasetError, InvalidInputError

__all__ = ["check_classes", "check_same_layout", "check_two_classes"]


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def check_same_layout(fit_shape: Sequence[int], data_shape: Sequence[int], *, fit_name: str, data_name: str) -> None:
    """Refuse fitting data whose images differ in channels or size from the data to protect.

    Args:
        fit_shape: ``(C, H, W)`` of the fitting images (a full ``(N, C, H, W)`` shape is accepted too).
        data_shape: ``(C, H, W)`` of the images to protect (or ``(N, C, H, W)``).
        fit_name, data_name: the two datasets' specs, for the message.

    Raises:
        InvalidInputError: the channel counts or the image sizes differ (one line naming both datasets).
    """
    fit, data = tuple(fit_shape)[-3:], tuple(data_shape)[-3:]
    if fit != data:
        what = "channels" if fit[0] != data[0] else "image size"
        raise InvalidInputError(f"the fitting data {fit_name} holds {_shape_text(fit)} (CxHxW) images but "
                                f"{data_name} holds {_shape_text(data)}: a protector fitted on them cannot "
                                f"protect these ({what} differ); fit on data of the same size and channels")


def check_two_classes(labels: torch.Tensor, *, source: str = "the data") -> None:
    """Refuse training data a classifier cannot learn anything from: fewer than two classes hold images.

    Args:
        labels: ``(N,)`` integer labels.
        source: the dataset spec, for the message.

    Raises:
        DatasetError: one line with the count of images and of classes.
    """
    held = len(set(labels.tolist()))
    if held < 2:
        raise DatasetError(f"{source}: {len(labels)} training images hold {held} class(es); a classifier needs at "
                           "least 2 classes (on one class every accuracy is 1.0)")


def check_classes(train_labels: torch.Tensor, test_labels: torch.Tensor, *, class_names: Sequence[str] = (),
                  source: str = "the data") -> None:
    """Refuse a train/test pair whose accuracies cannot mean anything.

    Args:
        train_labels, test_labels: ``(N,)`` integer labels of the two splits.
        class_names: names of the class indices, for the message.
        source: the dataset spec, for the message.

    Raises:
        DatasetError: fewer than two classes hold training images, or one split holds classes the other
            lacks (one line with the counts of images per split and the classes missing).
    """
    train = sorted(set(train_labels.tolist()))
    test = sorted(set(test_labels.tolist()))

    def names(indices: list[int]) -> str:
        shown = [class_names[i] if 0 <= i < len(class_names) and class_names[i] else str(i) for i in indices[:5]]
        return ", ".join(shown) + (f" and {len(indices) - 5} more" if len(indices) > 5 else "")

    counts = f"{len(train_labels)} training and {len(test_labels)} test images"
    if len(train) < 2:
        raise DatasetError(f"{source}: {counts} hold {len(train)} class(es) for training; accuracies need at least "
                           "2 classes (on one class every accuracy is 1.0)")
    missing_test = [c for c in train if c not in set(test)]
    missing_train = [c for c in test if c not in set(train)]
    if missing_test or missing_train:
        parts = []
        if missing_test:
            parts.append(f"the test images lack {len(missing_test)} of the {len(train)} training classes "
                         f"({names(missing_test)})")
        if missing_train:
            parts.append(f"the training images lack {len(missing_train)} of the {len(test)} test classes "
                         f"({names(missing_train)})")
        raise DatasetError(f"{source}: {counts}, but " + " and ".join(parts) + "; use larger or other slices")
