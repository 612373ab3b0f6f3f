"""The ``Detector`` contract: images to boxes, classes and scores, and a differentiable classification loss.

The loss is the first term of Eq. 3.8 of H. Xue, "A Study on Image Privacy Protection in Response to Artificial
Intelligence Technology", PhD thesis, University of Technology Sydney, 2023: the cross-entropy between each
region's (anchor's) class probabilities and a one-hot target, averaged over the regions, with the background
class ``c_bg`` at index 0 (Eq. 3.3). Hiding private objects (a method) sets the targets; this module only
states what a detector must offer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from privis.data.checks import check_images
from privis.errors import InvalidInputError, PrivisError
from privis.metrics.detection import box_iou

__all__ = ["BACKGROUND", "Detections", "Detector", "RegionLogits", "box_iou", "check_score_threshold", "nms",
           "region_targets", "uint8_hwc"]

#: Class id of the background class ``c_bg`` in every detector's ``class_names``.
BACKGROUND = 0


@dataclass(frozen=True)
class Detections:
    """The detections of one image.

    Attributes:
        boxes: ``(K, 4)`` float32, pixels, ``(x1, y1, x2, y2)`` with ``x2 > x1``, ``y2 > y1``.
        labels: ``(K,)`` long class ids, ``1 <= label < len(class_names)`` (background is never reported).
        scores: ``(K,)`` float32 confidences in ``[0, 1]``.
    """

    boxes: Tensor
    labels: Tensor
    scores: Tensor

    def __post_init__(self) -> None:
        k = self.boxes.shape[0] if self.boxes.dim() == 2 else -1
        if self.boxes.dim() != 2 or self.boxes.shape[1] != 4 or self.labels.shape != (k,) or self.scores.shape != (k,):
            shapes = ", ".join(str(tuple(t.shape)) for t in (self.boxes, self.labels, self.scores))
            raise InvalidInputError(f"detections need boxes (K, 4), labels (K,), scores (K,); got {shapes}")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def empty(cls, device: torch.device | str = "cpu") -> Detections:
        """No detection."""
        return cls(torch.zeros(0, 4, device=device), torch.zeros(0, dtype=torch.long, device=device),
                   torch.zeros(0, device=device))

    def select(self, keep: Tensor) -> Detections:
        """The detections where boolean or index tensor ``keep`` selects."""
        return Detections(self.boxes[keep], self.labels[keep], self.scores[keep])


@dataclass(frozen=True)
class RegionLogits:
    """What a white-box detector's classifier says about every region (anchor, proposal, pyramid cell).

    Attributes:
        logits: ``(N, R, M)`` float32 class logits, differentiable with respect to the input images; ``M`` is
            ``len(class_names)`` and index :data:`BACKGROUND` is the background class.
        boxes: ``(N, R, 4)`` float32 pixel ``xyxy`` box each region stands for (detached).
    """

    logits: Tensor
    boxes: Tensor


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float = 0.5, labels: Tensor | None = None, *,
        overlap: str = "iou") -> Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    Args:
        boxes: ``(K, 4)`` pixel ``xyxy``.
        scores: ``(K,)``.
        iou_threshold: a box is dropped when its overlap with a kept, higher-scoring box exceeds this.
        labels: ``(K,)`` class ids; when given, boxes of different classes never suppress each other.
        overlap: ``"iou"`` (intersection over union) or ``"min"`` (intersection over the smaller box, as
            MTCNN's last stage).

    Returns:
        ``(K',)`` long indices into ``boxes``.

    Examples:
        >>> boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]])
        >>> nms(boxes, torch.tensor([0.9, 0.8, 0.7])).tolist()
        [0, 2]
    """
    order = scores.argsort(descending=True)
    b = boxes[order]
    if overlap == "iou":
        share = box_iou(b, b)
    else:
        inter = (torch.minimum(b[:, None, 2:], b[None, :, 2:]) - torch.maximum(b[:, None, :2], b[None, :, :2]))
        area = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
        share = inter.clamp(min=0).prod(-1) / torch.minimum(area[:, None], area[None, :]).clamp(min=1e-12)
    if labels is not None:
        share = share * (labels[order][:, None] == labels[order][None, :])
    suppress = torch.triu(share > iou_threshold, diagonal=1)
    keep = torch.ones(order.shape[0], dtype=torch.bool, device=boxes.device)
    for i in range(order.shape[0]):  # greedy; callers keep K small (hundreds at most)
        if keep[i]:
            keep &= ~suppress[i]
    return order[keep]


def uint8_hwc(images: Tensor) -> list[np.ndarray]:
    """Canonical images ``(N, C, H, W)`` as C-contiguous ``uint8`` arrays ``(H, W, C)`` (``(H, W)`` when grey),
    rounded from ``[0, 1]`` to ``0..255``: what dlib and ONNX face detectors read (dlib silently misreads
    strided arrays, hence the copy)."""
    arrays = (images.detach() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]


def check_score_threshold(value: float) -> float:
    """``value`` as a float after checking it is a confidence in ``[0, 1]``.

    Raises:
        InvalidInputError: outside ``[0, 1]`` or not a number.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInputError(f"score_threshold must be a number in [0, 1], got {value!r}")
    return float(value)


def region_targets(region_boxes: Tensor, objects: Sequence[Detections], private_classes: Sequence[int], *,
                   iou_threshold: float = 0.5) -> Tensor:
    """One-hot targets ``p_i*`` of Eq. 3.8 as class ids ``(N, R)`` long.

    A region matched (IoU ``>= iou_threshold``, best match) to an object of a private class gets the background
    class; a region matched to another object keeps that object's class; unmatched regions are background.

    Args:
        region_boxes: ``(N, R, 4)`` pixel ``xyxy`` (:attr:`RegionLogits.boxes`).
        objects: per image, the objects to hide or keep (usually the detector's own detections).
        private_classes: class ids to hide (``C_private``).
        iou_threshold: in ``(0, 1]``.

    Raises:
        InvalidInputError: ``len(objects) != N`` or a threshold outside ``(0, 1]``.
    """
    if len(objects) != region_boxes.shape[0]:
        raise InvalidInputError(f"{len(objects)} detection lists for {region_boxes.shape[0]} images")
    if not 0 < iou_threshold <= 1:
        raise InvalidInputError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    n, r = region_boxes.shape[:2]
    targets = torch.full((n, r), BACKGROUND, dtype=torch.long, device=region_boxes.device)
    private = torch.tensor(sorted(set(private_classes)), dtype=torch.long, device=region_boxes.device)
    for i, det in enumerate(objects):
        if len(det) == 0:
            continue
        iou = box_iou(region_boxes[i], det.boxes.to(region_boxes.device))
        best, which = iou.max(dim=1)
        labels = det.labels.to(region_boxes.device)[which]
        labels = torch.where(torch.isin(labels, private), torch.full_like(labels, BACKGROUND), labels)
        targets[i] = torch.where(best >= iou_threshold, labels, targets[i])
    return targets


class Detector(nn.Module):
    """Base class of every detector.

    Subclasses implement :meth:`_detect`, and white-box ones also :meth:`_regions`.

    Attributes:
        name: what reports call it (``"mtcnn"``, ``"centerface"``, ``"dlib-hog"``, ``"scene-detector"``).
        class_names: index 0 is ``"background"``; e.g. ``("background", "face")``.
        white_box: whether :meth:`regions` and :meth:`classification_loss` exist (gradients reach the images).
        score_threshold: confidence at or above which :meth:`detect` reports a detection.
        channels: input channels the detector needs (1 or 3), or None for either; grey images are repeated to
            three channels by detectors that need colour.
    """

    name: str = "detector"
    class_names: tuple[str, ...] = ("background", "object")
    white_box: bool = False
    score_threshold: float = 0.5
    channels: int | None = None

    def detect(self, images: Tensor) -> list[Detections]:
        """Detections of canonical images ``(N, C, H, W)`` float32 in ``[0, 1]``, one :class:`Detections` each.

        Raises:
            InvalidInputError: not canonical images.
        """
        images = check_images(images, channels=None)
        with torch.no_grad():
            return self._detect(self._channels(images))

    def regions(self, images: Tensor) -> RegionLogits:
        """Per-region class logits, differentiable with respect to ``images`` (white-box detectors only).

        Raises:
            PrivisError: a black-box detector (``white_box`` is False).
            InvalidInputError: not canonical images.
        """
        if not self.white_box:
            raise PrivisError(f"detector {self.name!r} is black-box: it gives detections, not gradients")
        return self._regions(self._channels(check_images(images, channels=None)))

    def classification_loss(self, images: Tensor, targets: Tensor) -> Tensor:
        """Eq. 3.8's classification term ``(1/n_a) Σ_i CE(p_i, p_i*)`` per image, ``(N,)`` float32.

        Args:
            images: canonical ``(N, C, H, W)``; gradients flow back to them.
            targets: ``(N, R)`` long class ids (:func:`region_targets`), ``R`` matching :meth:`regions`.

        Raises:
            InvalidInputError: targets of another shape, or class ids outside ``[0, M)``.
        """
        out = self.regions(images)
        n, r, m = out.logits.shape
        if targets.shape != (n, r):
            raise InvalidInputError(f"targets must be (N, R) = ({n}, {r}), got {tuple(targets.shape)}")
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= m):
            raise InvalidInputError(f"target class ids must be in [0, {m}), got [{int(targets.min())}, "
                                    f"{int(targets.max())}]")
        ce = nn.functional.cross_entropy(out.logits.reshape(n * r, m), targets.reshape(-1).to(out.logits.device),
                                         reduction="none")
        return ce.reshape(n, r).mean(dim=1)

    def _channels(self, images: Tensor) -> Tensor:
        if self.channels == 3 and images.shape[1] == 1:
            return images.expand(-1, 3, -1, -1)
        if self.channels == 1 and images.shape[1] == 3:
            raise InvalidInputError(f"detector {self.name!r} takes grey images (N, 1, H, W), got {tuple(images.shape)}")
        return images

    def _detect(self, images: Tensor) -> list[Detections]:
        raise NotImplementedError

    def _regions(self, images: Tensor) -> RegionLogits:
        raise NotImplementedError
