"""Blur and mosaic restricted to the private objects' boxes, each as weak as still hides them ("just hide").

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Section 3.5.2 (Fig. 3.5, Tables 3.1-3.2) compares the adversarial
perturbation with blur and mosaic whose "thickness has been modified to barely hide the sensitive information
from the object detector". privis makes that tuning a search, per image: the detector finds the private
objects of the original; their boxes (rounded outwards to whole pixels) are blurred
(:class:`~privis.methods.baselines.GaussianBlur`) or pixelated (:class:`~privis.methods.baselines.Pixelate`)
at the weakest strength of ``strengths`` after which the detector finds none of them again
(:func:`privis.metrics.hiding.found_again`), the rest of the image untouched. An image the strongest level
does not hide keeps that strongest level (:meth:`~privis.methods.object_hiding.DetectorProtector.report` says
which); an image without a private object is left unchanged. The obfuscation is computed on the whole image
and kept inside the boxes, so a box's edge pixels mix in their surroundings as a blur of the full photograph
would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from privis import references
from privis.detectors import Detections, Detector
from privis.errors import InvalidInputError
from privis.methods import register
from privis.methods.base import Param, Protector
from privis.methods.baselines import GaussianBlur, Pixelate
from privis.methods.object_hiding import DEFAULT_DETECTOR, DetectorProtector

__all__ = ["RegionBlur", "RegionMosaic", "box_mask"]


def box_mask(objects: Sequence[Detections], private_classes: Sequence[int], shape: tuple[int, int],
             device: torch.device) -> Tensor:
    """``(N, 1, H, W)`` float32: 1 inside the boxes of private objects (rounded outwards to whole pixels), 0 else."""
    h, w = shape
    mask = torch.zeros(len(objects), 1, h, w, device=device)
    for i, det in enumerate(objects):
        keep = torch.isin(det.labels.cpu(), torch.tensor(sorted(set(private_classes)), dtype=torch.long))
        for x1, y1, x2, y2 in det.boxes.cpu()[keep].tolist():
            mask[i, :, max(0, math.floor(y1)):min(h, math.ceil(y2)), max(0, math.floor(x1)):min(w, math.ceil(x2))] = 1
    return mask


class _RegionObfuscation(DetectorProtector):
    """The strength search shared by :class:`RegionBlur` and :class:`RegionMosaic`."""

    citation = references.OBJECT_HIDING
    #: the candidate strengths when ``strengths`` is None, increasing
    default_strengths: ClassVar[tuple[float, ...]] = ()
    param_specs: ClassVar[dict[str, Param]] = {
        **DetectorProtector.DETECTOR_PARAMS,
        "strengths": Param("literal", "candidate strengths, pixels, increasing (the weakest that hides wins; "
                                      "none: the class' default_strengths)", optional=True),
    }

    def _check_params(self) -> None:
        super()._check_params()
        s = self.strengths
        if s is not None and not (isinstance(s, list | tuple) and s and all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in s)
                and list(s) == sorted(set(s))):
            raise InvalidInputError(f"{self.name}: parameter strengths must be a non-empty increasing list of "
                                    f"positive numbers, got {s!r}")

    def __init__(self, detector: Detector | str | Path = DEFAULT_DETECTOR,
                 private_classes: str | int | Sequence[str | int] = "face",
                 strengths: Sequence[float] | None = None) -> None:
        self.detector = detector
        self.private_classes = private_classes
        self.strengths = strengths

    def _rounds(self) -> Sequence[float]:
        return [float(s) for s in (self.default_strengths if self.strengths is None else self.strengths)]

    def _obfuscator(self, strength: float) -> Protector:
        raise NotImplementedError

    def _attempt(self, detector: Detector, original: Tensor, current: Tensor, clean: list[Detections],
                 value: float) -> Tensor:
        mask = box_mask(clean, self.private_ids_, (original.shape[-2], original.shape[-1]), original.device)
        return original + mask * (self._obfuscator(value).transform(original) - original)


@register
class RegionBlur(_RegionObfuscation):
    """Gaussian blur of the private boxes at the weakest ``sigma`` of ``strengths`` that hides them (per image).

    Args:
        detector: the detector to hide from (any, black-box too): a registry name (default ``"mtcnn"``), a
            scene-detector checkpoint (``.pt``) or, from Python, a :class:`~privis.detectors.Detector`.
        private_classes: the class names (or ids) to hide; default ``"face"``.
        strengths: the candidate ``sigma`` values in pixels, increasing, tried in order; None:
            :attr:`default_strengths` (0.5 to 24).
    """

    name = "region-blur"
    effort_name = "sigma"
    default_strengths = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0)

    def _obfuscator(self, strength: float) -> Protector:
        return GaussianBlur(sigma=strength)


@register
class RegionMosaic(_RegionObfuscation):
    """Mosaic (pixelation) of the private boxes at the weakest cell side of ``strengths`` that hides them.

    The cells are those of :class:`~privis.methods.baselines.Pixelate` on the whole image (aligned to its top
    left corner), kept inside the boxes.

    Args:
        detector: the detector to hide from (any, black-box too): a registry name (default ``"mtcnn"``), a
            scene-detector checkpoint (``.pt``) or, from Python, a :class:`~privis.detectors.Detector`.
        private_classes: the class names (or ids) to hide; default ``"face"``.
        strengths: the candidate cell sides in pixels (integers >= 1), increasing, tried in order; None:
            :attr:`default_strengths` (2 to 32).
    """

    name = "region-mosaic"
    effort_name = "block"
    default_strengths = (2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32)

    def _check_params(self) -> None:
        super()._check_params()
        if self.strengths is not None and not all(isinstance(v, int) for v in self.strengths):
            raise InvalidInputError(f"{self.name}: parameter strengths must be whole cell sides, got "
                                    f"{self.strengths!r}")

    def _obfuscator(self, strength: float) -> Protector:
        return Pixelate(block=int(strength))
