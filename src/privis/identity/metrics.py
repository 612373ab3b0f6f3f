"""Identity privacy metrics: the identity similarity score (ISS) and the protection success rate (FPPSR).

H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis,
University of Technology Sydney, 2023, Section 4.5.1.2: ISS is the recogniser's soft score between a
protected image and its original; FPPSR (face privacy protection success rate, also called SPR) is the share
of pairs the recogniser judges to be different identities. The thesis measures both with ArcFace (cosine,
threshold 0.31) and the Microsoft Face API; any :class:`~privis.identity.IdentityModel` serves here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from privis.data.checks import check_images
from privis.errors import InvalidInputError
from privis.identity.base import IdentityModel

__all__ = ["identity_similarity", "iss_and_fppsr", "protection_success_rate"]


@torch.no_grad()
def identity_similarity(model: IdentityModel, originals: Tensor, protected: Tensor, *,
                        batch_size: int = 500) -> Tensor:
    """ISS: the identity model's score of each (original, protected) pair.

    Args:
        model: the identity model (its :attr:`~privis.identity.IdentityModel.metric` says what the score is:
            a cosine similarity in ``[-1, 1]``, higher = more alike, or an L2 distance >= 0, lower = more alike).
        originals: ``(N, C, H, W)`` canonical images (float32 in ``[0, 1]``).
        protected: the same shape: the protected version of each original.
        batch_size: pairs embedded per forward pass (the result does not depend on it).

    Returns:
        ``(N,)`` float32 scores on the device of ``originals``; no autograd graph.

    Raises:
        InvalidInputError: not canonical images, shapes that differ, or a non-positive ``batch_size``.
    """
    originals = check_images(originals, name="originals", channels=None)
    protected = check_images(protected, name="protected", channels=None)
    if originals.shape != protected.shape:
        raise InvalidInputError(f"originals and protected must have the same shape, got {tuple(originals.shape)} "
                                f"and {tuple(protected.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    scores = [model.score(model.embed(a), model.embed(b)).float()
              for a, b in zip(originals.split(batch_size), protected.split(batch_size), strict=True)]
    return torch.cat(scores).to(originals.device)


def iss_and_fppsr(model: IdentityModel, originals: Tensor, protected: Tensor, *,
                  batch_size: int = 500) -> tuple[float, float]:
    """Mean ISS and FPPSR of a release, from one pass of the identity model over the pairs.

    FPPSR / SPR is the fraction of pairs the identity model judges a DIFFERENT identity, in ``[0, 1]``: a pair
    counts as protected when its ISS (:func:`identity_similarity`) falls on the "different" side of the
    model's :attr:`~privis.identity.IdentityModel.threshold`.

    Raises:
        InvalidInputError: as :func:`identity_similarity`.
    """
    scores = identity_similarity(model, originals, protected, batch_size=batch_size)
    return float(scores.mean()), float((~model.same_identity(scores)).float().mean())


def protection_success_rate(model: IdentityModel, originals: Tensor, protected: Tensor, *,
                            batch_size: int = 500) -> float:
    """FPPSR / SPR alone (:func:`iss_and_fppsr`).

    Raises:
        InvalidInputError: as :func:`identity_similarity`.
    """
    return iss_and_fppsr(model, originals, protected, batch_size=batch_size)[1]
