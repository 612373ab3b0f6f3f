"""torchvision's Faster R-CNN with a user's weights, as a white-box :class:`~privis.detectors.base.Detector`.

S. Ren, K. He, R. Girshick and J. Sun, "Faster R-CNN: Towards Real-Time Object Detection with Region Proposal
Networks", NeurIPS 2015 (arXiv:1506.01497): the detector H. Xue, "A Study on Image Privacy Protection in
Response to Artificial Intelligence Technology", PhD thesis, University of Technology Sydney, 2023, Chapter 3
attacks (Eq. 3.1-3.3). privis downloads no weights: the user passes a state-dict file for
``torchvision.models.detection.fasterrcnn_resnet50_fpn`` (e.g. one saved from torchvision's COCO weights on a
machine that has them) and the class names it was trained with. ``torchvision`` is imported only when the detector
is built; without it the constructor raises one line saying so.

Regions (:meth:`FasterRCNN.regions`): the ROI classifier's class logits (Eq. 3.2, background at index 0) for the
region proposal network's proposals (Eq. 3.1) on the input itself, in the input's pixels, padded with zero
logits and empty boxes to ``rpn_post_nms_top_n_test`` (1000) regions per image so that ``R`` does not change
with the image (padding regions have no gradient and match no object).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from privis import references
from privis.detectors import register
from privis.detectors.base import Detections, Detector, RegionLogits, check_score_threshold
from privis.errors import InvalidInputError, PrivisError

__all__ = ["FasterRCNN"]


def _torchvision_detection() -> Any:
    try:
        from torchvision.models import detection
    except Exception as exc:  # not installed, or built for another torch: both end here
        raise PrivisError(f"the faster-rcnn detector needs torchvision, which cannot be imported ({exc}); "
                          "install the torchvision release matching your torch") from exc
    return detection


@register
class FasterRCNN(Detector):
    """torchvision's ``fasterrcnn_resnet50_fpn`` with the user's weights (white-box through its ROI classifier).

    Args:
        weights: a ``torch.save`` state dict of the model (read with ``weights_only=True``).
        class_names: the model's classes, ``"background"`` first (``len`` is its ``num_classes``).
        score_threshold: report detections scoring at least this, in ``[0, 1]``.

    Raises:
        InvalidInputError: a missing weights file, bad class names or threshold, or weights that do not fit.
        PrivisError: torchvision cannot be imported.
    """

    name = "faster-rcnn"
    citation = references.FASTER_RCNN
    white_box = True
    channels = 3

    def __init__(self, weights: str | Path, class_names: Sequence[str], score_threshold: float = 0.5) -> None:
        super().__init__()
        path = Path(weights)
        if not path.is_file():
            raise InvalidInputError(f"{path}: Faster R-CNN weights file not found")
        names = tuple(class_names)
        if len(names) < 2 or names[0] != "background":
            raise InvalidInputError(f"class_names must start with 'background' and name at least one class, "
                                    f"got {names[:3]}...")
        self.class_names = names
        self.score_threshold = check_score_threshold(score_threshold)
        detection = _torchvision_detection()
        self.model = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=len(names),
                                                       box_score_thresh=0.0)
        try:
            self.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except (RuntimeError, OSError, ValueError) as exc:
            raise InvalidInputError(f"{path}: not fasterrcnn_resnet50_fpn weights for {len(names)} classes "
                                    f"({str(exc).splitlines()[0]})") from exc
        self.eval().requires_grad_(False)

    def _detect(self, images: Tensor) -> list[Detections]:
        found = []
        for out in self.model(list(images)):
            keep = out["scores"] >= self.score_threshold
            found.append(Detections(out["boxes"][keep], out["labels"][keep], out["scores"][keep]))
        return found

    def _regions(self, images: Tensor) -> RegionLogits:
        model = self.model
        batch, _ = model.transform(list(images))
        features = model.backbone(batch.tensors)
        proposals, _ = model.rpn(batch, features)
        pooled = model.roi_heads.box_roi_pool(features, proposals, batch.image_sizes)
        logits, _ = model.roi_heads.box_predictor(model.roi_heads.box_head(pooled))
        r = int(model.rpn._post_nms_top_n["testing"])
        m = len(self.class_names)
        h, w = images.shape[-2:]
        out_logits = images.new_zeros(images.shape[0], r, m)
        out_boxes = images.new_zeros(images.shape[0], r, 4)
        start = 0
        for i, (props, (rh, rw)) in enumerate(zip(proposals, batch.image_sizes, strict=True)):
            k = props.shape[0]
            out_logits[i, :k] = logits[start:start + k]
            out_boxes[i, :k] = props.detach() * props.new_tensor([w / rw, h / rh, w / rw, h / rh])
            start += k
        return RegionLogits(out_logits, out_boxes)
