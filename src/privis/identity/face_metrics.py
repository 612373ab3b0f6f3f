"""Face de-identification metrics: SPR under an identity model, SDR under a detector, landmark distances.

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Section 5.5.1.3:

- **SPR** (Eq. 5.9-5.11): the share of protected images the recogniser judges a different identity from their
  originals (dlib's "Face Recognition Library" at distance 0.6 in the thesis). Any
  :class:`~privis.identity.IdentityModel` serves: :func:`privis.identity.protection_success_rate`.
- **SDR** (Eq. 5.12): the share of protected images in which a face detector still finds a face
  (:func:`successful_detection_rate`; dlib's detector in the thesis: ``privis.detectors`` ``"dlib-hog"``).
- **Landmark distances** (Table 5.3): per facial region (chin, nose, eyes, mouth), the mean pixel distance
  between the 68 landmarks of dlib's shape predictor on the original and on the protected image
  (:func:`landmark_distances`, :func:`region_distances`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from privis.data.checks import check_images
from privis.detectors.base import Detector
from privis.errors import InvalidInputError
from privis.identity.alignment import face_landmarks

__all__ = ["LANDMARK_REGIONS", "detected", "landmark_distances", "region_distances", "successful_detection_rate"]

#: Index ranges of dlib's 68-point (iBUG 300-W) landmarks per region of Table 5.3: the jaw line (``chin``),
#: the nose bridge and nostrils, both eyes, the outer and inner lips.
LANDMARK_REGIONS: dict[str, range] = {"chin": range(0, 17), "nose": range(27, 36), "eyes": range(36, 48),
                                      "mouth": range(48, 68)}


def detected(detector: Detector, images: Tensor, *, batch_size: int = 64) -> Tensor:
    """``g_D`` of Eq. 5.12 per image: ``(N,)`` bool, whether ``detector`` reports at least one object.

    Args:
        detector: any :class:`~privis.detectors.Detector` (a face detector for SDR).
        images: ``(N, C, H, W)`` canonical images.
        batch_size: images per :meth:`~privis.detectors.Detector.detect` call (the result does not depend on it).

    Raises:
        InvalidInputError: not canonical images or a non-positive ``batch_size``.
    """
    images = check_images(images, channels=None)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    found = [len(d) > 0 for chunk in images.split(batch_size) for d in detector.detect(chunk)]
    return torch.tensor(found, dtype=torch.bool)


def successful_detection_rate(detector: Detector, images: Tensor, *, batch_size: int = 64) -> float:
    """SDR (Eq. 5.12): the fraction of ``images`` in which ``detector`` finds a face, in ``[0, 1]``.

    Raises:
        InvalidInputError: as :func:`detected`.
    """
    return float(detected(detector, images, batch_size=batch_size).float().mean())


def region_distances(original_points: Tensor, protected_points: Tensor) -> dict[str, Tensor]:
    """Mean Euclidean distance (pixels) of corresponding 68-point landmarks per region, per image.

    Args:
        original_points, protected_points: ``(N, 68, 2)`` ``(x, y)`` pixel landmarks; NaN rows (no face) give
            NaN distances.

    Returns:
        ``{region: (N,) float32}`` for each region of :data:`LANDMARK_REGIONS`.

    Raises:
        InvalidInputError: shapes other than ``(N, 68, 2)`` or that differ.
    """
    a, b = torch.as_tensor(original_points).float(), torch.as_tensor(protected_points).float()
    if a.dim() != 3 or a.shape[1:] != (68, 2) or a.shape != b.shape:
        raise InvalidInputError(f"landmarks must both be (N, 68, 2), got {tuple(a.shape)} and {tuple(b.shape)}")
    per_point = (a - b.to(a.device)).norm(dim=2)
    return {region: per_point[:, list(idx)].mean(dim=1) for region, idx in LANDMARK_REGIONS.items()}


def landmark_distances(originals: Tensor, protected: Tensor, *, upsample: int = 1) -> dict[str, float]:
    """Table 5.3's landmark distances: per region, the mean over faces of :func:`region_distances`.

    The 68 landmarks of both images are fitted by dlib's shape predictor in the face box dlib's HOG detector
    finds on the ORIGINAL (the same box for both), so the figure measures how far the protection moved the
    facial features, not whether the detector still fires (that is SDR). Originals without a detected face
    are left out; ``faces`` says how many were measured.

    Args:
        originals, protected: ``(N, C, H, W)`` canonical images of the same shape (C = 1 or 3).
        upsample: HOG detector upsampling on the originals.

    Returns:
        ``{"chin", "nose", "eyes", "mouth"}`` in pixels (NaN when no face was measured) and ``"faces"``.

    Raises:
        InvalidInputError: bad images, shapes that differ, or dlib missing.
    """
    originals = check_images(originals, name="originals")
    protected = check_images(protected, name="protected")
    if originals.shape != protected.shape:
        raise InvalidInputError(f"originals and protected must have the same shape, got {tuple(originals.shape)} "
                                f"and {tuple(protected.shape)}")
    before = face_landmarks(originals, points=68, upsample=upsample)
    keep = before.found.nonzero().flatten()
    out: dict[str, float] = {"faces": float(keep.numel())}
    if keep.numel() == 0:
        return {**dict.fromkeys(LANDMARK_REGIONS, math.nan), **out}
    after = face_landmarks(protected[keep.to(protected.device)], before.boxes[keep], points=68)
    distances = region_distances(before.points[keep], after.points)
    return {**{region: float(d.mean()) for region, d in distances.items()}, **out}
