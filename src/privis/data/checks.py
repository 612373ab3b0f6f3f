"""The checks every layer makes on its inputs, written once (the lowest layer, so every other can import it).

- :func:`check_images`: the canonical image form, ``(N, C, H, W)`` floating point in ``[0, 1]``
  (docs/architecture.md), with the channels-last mistake named and its fix given.
- :func:`check_labels`: ``(N,)`` integer class indices, one per image, optionally below a class count.
- :func:`check_int`: an integer setting with a lower bound (sizes, counts, widths; bools refused).
- :func:`check_same_layout`: data a protector is fitted on (``--fit-data``) must have the image size and
  channel count of the data it protects; a Veil local model or a perturbation generator fitted on 1x28x28
  images cannot protect 3x32x32 ones, and the failure would otherwise come late, from deep inside a model.
- :func:`check_classes`: accuracies mean something only when the training data holds at least two classes
  and the training and test data hold the same classes (on one class every accuracy is 1.0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import torch
from torch import Tensor

from privis.errors import DatasetError, InvalidInputError

__all__ = ["CHANNELS", "check_classes", "check_images", "check_int", "check_labels", "check_same_layout",
           "check_two_classes"]

#: Channel counts of the canonical form: grey (1) or RGB (3).
CHANNELS = (1, 3)

#: How far outside ``[0, 1]`` a value may lie by floating-point rounding before :func:`check_images` refuses it.
VALUE_TOLERANCE = 1e-6


def check_images(images: Any, *, name: str = "images", channels: tuple[int, ...] | None = CHANNELS,
                 allow_empty: bool = False, float32: bool = False, tolerance: float = VALUE_TOLERANCE) -> Tensor:
    """Validate the canonical image form and return it as float32 (the same tensor when it already is).

    Args:
        images: ``(N, C, H, W)`` floating point in ``[0, 1]``.
        name: what the message calls the tensor (e.g. ``"originals"``, ``"dataset 'digits': images"``).
        channels: the channel counts ``C`` the caller supports (default grey or RGB); None accepts any count
            (for channel-agnostic callers) except a layout that looks channels-last.
        allow_empty: accept ``N = 0`` (a dataset or a batch may be empty; a method's input may not).
        float32: require dtype ``torch.float32`` exactly instead of converting any floating dtype.
        tolerance: how far outside ``[0, 1]`` rounding may have pushed a value (0: exactly within).

    Returns:
        ``images`` as float32 (a copy only when its dtype differs).

    Raises:
        InvalidInputError: not a tensor; not 4-D; empty (unless allowed); a tensor that looks channels-last,
            ``(N, H, W, C)`` (the last dimension is 1 or 3 and dimension 1 is not, nor one of ``channels``),
            with the fix; a channel count outside ``channels``; not floating point (not float32 when
            required); NaN present; values outside ``[0, 1]`` (infinities included).

    Examples:
        >>> check_images(torch.zeros(2, 1, 4, 4)).shape
        torch.Size([2, 1, 4, 4])
        >>> check_images(torch.zeros(2, 4, 4, 3))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        privis.errors.InvalidInputError: images of shape (2, 4, 4, 3) look channels-last ... images.permute(0, 3, 1, 2)
    """
    if not isinstance(images, Tensor):
        raise InvalidInputError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(images).__name__}")
    shape = tuple(images.shape)
    if images.ndim != 4:
        raise InvalidInputError(f"{name} must have shape (N, C, H, W), got shape {shape}")
    if shape[0] == 0 and not allow_empty:
        raise InvalidInputError(f"{name} is empty (N = 0)")
    c = shape[1]
    if c not in CHANNELS and shape[-1] in CHANNELS and (channels is None or c not in channels):
        raise InvalidInputError(f"{name} of shape {shape} look channels-last (N, H, W, C); privis takes "
                                f"(N, C, H, W) with C = 1 or 3: pass images.permute(0, 3, 1, 2)")
    if channels is not None and c not in channels:
        raise InvalidInputError(f"{name} must have {' or '.join(map(str, channels))} channels in dimension 1 of "
                                f"(N, C, H, W), got shape {shape}")
    if float32 and images.dtype != torch.float32:
        raise InvalidInputError(f"{name} must be float32, got dtype {images.dtype}")
    if not images.is_floating_point():
        raise InvalidInputError(f"{name} must be floating point in [0, 1], got dtype {images.dtype}")
    if images.numel():
        lo_t, hi_t = torch.aminmax(images.detach())  # one pass; NaN propagates, +-inf falls outside [0, 1]
        lo, hi = float(lo_t), float(hi_t)
        if math.isnan(lo) or math.isnan(hi):
            raise InvalidInputError(f"{name} contains NaN values")
        if lo < -tolerance or hi > 1.0 + tolerance:
            raise InvalidInputError(f"{name} must lie in [0, 1]: values span [{lo:.4g}, {hi:.4g}], not within [0, 1]")
    return images.float()


@overload
def check_labels(labels: None, n: int, *, num_classes: int | None = None, name: str = "labels") -> None: ...


@overload
def check_labels(labels: Tensor | Sequence[int] | np.ndarray, n: int, *, num_classes: int | None = None,
                 name: str = "labels") -> Tensor: ...


def check_labels(labels: Any, n: int, *, num_classes: int | None = None, name: str = "labels") -> Tensor | None:
    """Validate class labels for ``n`` images; None passes through (for callers whose labels are optional).

    Args:
        labels: ``(n,)`` integer class indices (a tensor, or anything ``torch.as_tensor`` takes), or None.
        n: the number of images the labels belong to.
        num_classes: when given, every label must lie in ``[0, num_classes)``; else only ``>= 0``.
        name: what the message calls the labels.

    Returns:
        The labels as ``torch.long`` ``(n,)``, or None.

    Raises:
        InvalidInputError: not convertible to a tensor, not 1-D, a length other than ``n``, not integers
            (floating point, complex or bool), or a value outside the class range.

    Examples:
        >>> check_labels([0, 1, 1], 3).dtype
        torch.int64
        >>> check_labels(torch.tensor([0, 2]), 2, num_classes=2)
        Traceback (most recent call last):
        ...
        privis.errors.InvalidInputError: labels must be class indices in [0, 1]; the labels span 0..2
    """
    if labels is None:
        return None
    try:
        labels = torch.as_tensor(labels)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidInputError(f"{name} must be a (N,) tensor of class indices, got {type(labels).__name__}") from None
    if labels.ndim != 1:
        raise InvalidInputError(f"{name} must have shape (N,) = ({n},), got {tuple(labels.shape)}")
    if labels.shape[0] != n:
        raise InvalidInputError(f"{name} has {labels.shape[0]} entries but there are {n} images")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise InvalidInputError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    labels = labels.long()
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            bound = f"[0, {num_classes - 1}]" if num_classes is not None else ">= 0"
            raise InvalidInputError(f"{name} must be class indices in {bound}; the labels span {lo}..{hi}")
    return labels


def check_int(value: Any, name: str, *, minimum: int = 1, hint: str = "") -> int:
    """Return ``value`` as an int after checking it is an integer ``>= minimum`` (bools refused).

    Args:
        value: the setting (a Python or numpy integer).
        name: what the message calls it (``"batch_size"``, ``"--train-size"``).
        minimum: the smallest allowed value (default 1: a positive count).
        hint: words added after the bound in the message, e.g. ``" (leave it out for the default)"``.

    Raises:
        InvalidInputError: ``"{name} must be an integer >= {minimum}{hint}, got {value!r}"``.

    Examples:
        >>> check_int(3, "epochs")
        3
        >>> check_int(0, "batch_size")
        Traceback (most recent call last):
        ...
        privis.errors.InvalidInputError: batch_size must be an integer >= 1, got 0
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}{hint}, got {value!r}")
    return int(value)


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
