"""Hide and keep ratios of a protection against an object detector (thesis Section 3.4.2.3).

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Section 3.4.2.3: ``R = r_p + lambda r_a`` with ``r_p`` the share of
private objects the detector no longer finds (hide ratio), ``r_a`` the share of the other objects it still
finds (keep ratio) and ``lambda = 0.5``. The thesis leaves the matching open; privis counts an object of the
clean image's detections as *found again* when a detection of the protected image has the same class and an
IoU of at least ``iou_threshold`` (0.5, the PASCAL VOC rule) with it. The ratios pool all objects of the batch
(hidden private objects over all private objects), so an image with many faces weighs more than one with one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from privis.errors import InvalidInputError
from privis.metrics.detection import Boxes, box_iou

__all__ = ["HidingRatios", "found_again", "hiding_ratios"]


def found_again(reference: Boxes, other: Boxes, *, iou_threshold: float = 0.5) -> Tensor:
    """Whether each object of ``reference`` is detected again in ``other``: ``(K,)`` bool.

    An object is found again when ``other`` holds a detection of the same class whose IoU with it is at least
    ``iou_threshold`` (a detection may find several reference objects).

    Raises:
        InvalidInputError: ``iou_threshold`` outside ``(0, 1]``.

    Examples:
        >>> import torch
        >>> from privis.detectors import Detections
        >>> clean = Detections(torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), torch.tensor([1, 2]),
        ...                    torch.tensor([0.9, 0.8]))
        >>> after = Detections(torch.tensor([[1.0, 1, 10, 10]]), torch.tensor([1]), torch.tensor([0.7]))
        >>> found_again(clean, after).tolist()
        [True, False]
    """
    if not 0 < iou_threshold <= 1:
        raise InvalidInputError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    if reference.boxes.shape[0] == 0 or other.boxes.shape[0] == 0:
        return torch.zeros(reference.boxes.shape[0], dtype=torch.bool, device=reference.boxes.device)
    iou = box_iou(reference.boxes, other.boxes.to(reference.boxes.device))
    same = reference.labels[:, None] == other.labels.to(reference.labels.device)[None, :]
    return ((iou >= iou_threshold) & same).any(dim=1)


@dataclass(frozen=True)
class HidingRatios:
    """Hide and keep ratios of one batch.

    Attributes:
        hide_ratio: ``r_p``, hidden private objects over private objects of the clean detections (NaN: none).
        keep_ratio: ``r_a``, other objects found again over other objects (NaN: none).
        score: ``R = r_p + weight r_a`` (NaN terms count as 0 when the other term exists).
        private_objects, other_objects: how many objects each ratio is over.
        hidden: per image, ``(K_i,)`` bool: which private objects of image ``i`` are hidden.
        kept: per image, ``(K_i,)`` bool: which other objects of image ``i`` are found again.
    """

    hide_ratio: float
    keep_ratio: float
    score: float
    private_objects: int
    other_objects: int
    hidden: list[Tensor]
    kept: list[Tensor]

    def all_hidden(self) -> Tensor:
        """``(N,)`` bool: every private object of the image is hidden (True for an image without any)."""
        return torch.tensor([bool(h.all()) for h in self.hidden], dtype=torch.bool)


def hiding_ratios(clean: Sequence[Boxes], protected: Sequence[Boxes], private_classes: Sequence[int], *,
                  iou_threshold: float = 0.5, weight: float = 0.5) -> HidingRatios:
    """Hide ratio ``r_p``, keep ratio ``r_a`` and ``R = r_p + weight r_a`` (thesis Section 3.4.2.3).

    Args:
        clean: the detections of the original images (what there was to hide or keep).
        protected: the detections of the protected images, same length.
        private_classes: class ids to hide.
        iou_threshold: the IoU at or above which a detection of the same class finds an object again.
        weight: ``lambda`` of ``R`` (thesis: 0.5).

    Raises:
        InvalidInputError: lists of different lengths, or a threshold outside ``(0, 1]``.

    Examples:
        >>> import torch
        >>> from privis.detectors import Detections
        >>> clean = [Detections(torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), torch.tensor([1, 2]),
        ...                     torch.tensor([0.9, 0.8]))]
        >>> after = [Detections(torch.tensor([[20.0, 20, 30, 30]]), torch.tensor([2]), torch.tensor([0.8]))]
        >>> r = hiding_ratios(clean, after, private_classes=[1])
        >>> r.hide_ratio, r.keep_ratio, r.score
        (1.0, 1.0, 1.5)
    """
    if len(clean) != len(protected):
        raise InvalidInputError(f"{len(clean)} clean detection lists but {len(protected)} protected ones")
    hidden: list[Tensor] = []
    kept: list[Tensor] = []
    for before, after in zip(clean, protected, strict=True):
        again = found_again(before, after, iou_threshold=iou_threshold).cpu()
        private = torch.isin(before.labels.cpu(), torch.tensor(sorted(set(private_classes)), dtype=torch.long))
        hidden.append(~again[private])
        kept.append(again[~private])
    n_private = sum(int(h.numel()) for h in hidden)
    n_other = sum(int(k.numel()) for k in kept)
    hide = sum(int(h.sum()) for h in hidden) / n_private if n_private else math.nan
    keep = sum(int(k.sum()) for k in kept) / n_other if n_other else math.nan
    score = math.nan if n_private == n_other == 0 else (0.0 if math.isnan(hide) else hide) + weight * (
        0.0 if math.isnan(keep) else keep)
    return HidingRatios(hide, keep, score, n_private, n_other, hidden, kept)
