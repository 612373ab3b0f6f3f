"""Detection metrics: box IoU, average precision at an IoU threshold (VOC all-point), mAP, detection rates.

Detections and ground truths are per-image objects with ``boxes`` ``(K, 4)`` pixel ``xyxy``, ``labels`` ``(K,)``
class ids and ``scores`` ``(K,)`` (:class:`privis.detectors.Detections`; ground-truth scores are ignored).

Average precision follows the PASCAL VOC protocol from 2010 on (M. Everingham, L. Van Gool, C. K. I. Williams,
J. Winn and A. Zisserman, "The Pascal Visual Object Classes (VOC) Challenge", IJCV 2010): detections of one
class from every image are ranked by score; each is a true positive when the ground truth of that class it
overlaps most in its image has IoU at least the threshold and was not matched by a higher-scoring detection,
else a false positive (duplicates included); AP is the area under the precision-recall curve after making
precision monotone (every recall point, not the 11-point sampling of VOC 2007).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import torch
from torch import Tensor

from privis.errors import InvalidInputError

__all__ = ["average_precision", "box_iou", "image_detection_rate", "mean_average_precision",
           "object_detection_rate"]


class Boxes(Protocol):
    """What the metrics read of one image's detections or ground truth."""

    @property
    def boxes(self) -> Tensor: ...

    @property
    def labels(self) -> Tensor: ...

    @property
    def scores(self) -> Tensor: ...


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of every box of ``a`` ``(..., P, 4)`` with every box of ``b`` ``(..., Q, 4)``.

    Boxes are ``xyxy``; the result is ``(..., P, Q)`` in ``[0, 1]`` (0 for empty boxes).
    """
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def _check(detections: Sequence[Boxes], truths: Sequence[Boxes], iou_threshold: float) -> None:
    if len(detections) != len(truths):
        raise InvalidInputError(f"{len(detections)} detection lists for {len(truths)} ground-truth lists")
    if not 0 < iou_threshold <= 1:
        raise InvalidInputError(f"iou_threshold must be in (0, 1], got {iou_threshold}")


def _matches(det: Boxes, truth: Boxes, label: int | None, iou_threshold: float) -> tuple[Tensor, Tensor, int]:
    """Scores and true-positive flags of one image's detections of ``label`` (all when None), greedy in score
    order, and its number of ground truths of ``label``."""
    d = det.labels == label if label is not None else torch.ones_like(det.labels, dtype=torch.bool)
    t = truth.labels == label if label is not None else torch.ones_like(truth.labels, dtype=torch.bool)
    scores, boxes = det.scores[d].detach().cpu().float(), det.boxes[d].detach().cpu().float()
    gt = truth.boxes[t].detach().cpu().float()
    order = scores.argsort(descending=True, stable=True)
    scores, boxes = scores[order], boxes[order]
    hit = torch.zeros(scores.shape[0], dtype=torch.bool)
    if gt.shape[0]:
        iou = box_iou(boxes, gt)
        free = torch.ones(gt.shape[0], dtype=torch.bool)
        best_iou, best = iou.max(dim=1)
        for i in range(scores.shape[0]):
            if best_iou[i] >= iou_threshold and free[best[i]]:
                hit[i], free[best[i]] = True, False
    return scores, hit, int(gt.shape[0])


def average_precision(detections: Sequence[Boxes], truths: Sequence[Boxes], label: int, *,
                      iou_threshold: float = 0.5) -> float:
    """AP of class ``label`` at ``iou_threshold`` over a set of images (VOC all-point interpolation).

    Args:
        detections: per image, the detector's output.
        truths: per image, the ground truth (same length).
        label: the class id.
        iou_threshold: in ``(0, 1]``.

    Returns:
        AP in ``[0, 1]``; ``nan`` when no image holds a ground truth of ``label``.

    Raises:
        InvalidInputError: lists of different lengths or a threshold outside ``(0, 1]``.

    Examples:
        >>> from privis.detectors import Detections
        >>> truth = [Detections(torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), torch.tensor([1, 1]),
        ...                     torch.ones(2))]
        >>> found = [Detections(torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 31]]),
        ...                     torch.tensor([1, 1, 1]), torch.tensor([0.9, 0.8, 0.7]))]
        >>> round(average_precision(found, truth, 1), 4)  # recall 0.5 at precision 1, then 1.0 at 2/3
        0.8333
    """
    _check(detections, truths, iou_threshold)
    per_image = [_matches(d, t, label, iou_threshold) for d, t in zip(detections, truths, strict=True)]
    total = sum(n for _, _, n in per_image)
    if total == 0:
        return float("nan")
    scores = torch.cat([s for s, _, _ in per_image])
    hits = torch.cat([h for _, h, _ in per_image])
    hits = hits[scores.argsort(descending=True, stable=True)].double()
    tp = hits.cumsum(0)
    precision = tp / torch.arange(1, hits.shape[0] + 1, dtype=torch.float64)
    recall = tp / total
    # monotone precision: the best precision at this recall or any higher one
    precision = precision.flip(0).cummax(0).values.flip(0)
    steps = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
    return float((steps * precision).sum())


def mean_average_precision(detections: Sequence[Boxes], truths: Sequence[Boxes], labels: Iterable[int], *,
                           iou_threshold: float = 0.5) -> tuple[float, dict[int, float]]:
    """mAP over ``labels``: the mean AP (:func:`average_precision`) of the classes that have ground truth.

    Returns:
        ``(mAP, {label: AP})``; the dictionary has ``nan`` for classes without ground truth, and mAP is ``nan``
        when no class has any.
    """
    per_class = {int(c): average_precision(detections, truths, int(c), iou_threshold=iou_threshold)
                 for c in labels}
    present = [ap for ap in per_class.values() if ap == ap]
    return (sum(present) / len(present) if present else float("nan")), per_class


def object_detection_rate(detections: Sequence[Boxes], truths: Sequence[Boxes], *, label: int | None = None,
                          iou_threshold: float = 0.5) -> float:
    """Share of ground-truth objects (of class ``label``, or all) found by a detection of the same class with
    IoU ``>= iou_threshold`` (each detection finds at most one object); ``nan`` without ground truth.

    Raises:
        InvalidInputError: lists of different lengths or a threshold outside ``(0, 1]``.
    """
    _check(detections, truths, iou_threshold)
    classes = [label] if label is not None else sorted({int(c) for t in truths for c in t.labels.tolist()})
    found = total = 0
    for c in classes:
        for d, t in zip(detections, truths, strict=True):
            _, hit, n = _matches(d, t, c, iou_threshold)
            found, total = found + int(hit.sum()), total + n
    return found / total if total else float("nan")


def image_detection_rate(detections: Sequence[Boxes], *, label: int | None = None) -> float:
    """Share of images with at least one detection (of class ``label``, or of any class); ``nan`` for none.

    Used where images have no boxes, e.g. one face per image: the rate a face detector finds a face.
    """
    if not detections:
        return float("nan")
    return sum(bool((d.labels == label).any()) if label is not None else len(d.labels) > 0
               for d in detections) / len(detections)
