"""The ``IdentityModel`` contract: images to identity embeddings, a similarity and a match threshold.

Identity metrics of the face de-identification literature are built on one: the identity similarity score
(ISS) and the face privacy protection success rate (FPPSR, also called SPR) of H. Xue, "A Study on Image
Privacy Protection in Response to Artificial Intelligence Technology", PhD thesis, University of Technology
Sydney, 2023, Section 4.5.1.2, measured there with ArcFace (cosine similarity, threshold 0.31).
"""

from __future__ import annotations

from torch import Tensor, nn

from privis.data.checks import check_images
from privis.errors import InvalidInputError

__all__ = ["IdentityModel"]


class IdentityModel(nn.Module):
    """Base class of every identity model.

    Subclasses implement :meth:`_embed` and set :attr:`threshold`, :attr:`metric` and :attr:`name`.

    Attributes:
        name: what reports call it (e.g. ``"lenet5-penultimate"``, ``"dlib-resnet"``).
        metric: ``"cosine"`` (similarity in ``[-1, 1]``, higher is the same identity) or ``"euclidean"``
            (a distance, lower is the same identity; dlib uses 0.6).
        threshold: the decision threshold: the same identity when ``similarity >= threshold`` (cosine) or
            ``distance <= threshold`` (euclidean).
        image_shape: ``(C, H, W)`` the model expects, or None when it resizes itself.
    """

    name: str = "identity"
    metric: str = "cosine"
    threshold: float
    image_shape: tuple[int, int, int] | None = None

    def embed(self, images: Tensor) -> Tensor:
        """Embeddings ``(N, E)`` float32 of canonical images ``(N, C, H, W)`` in ``[0, 1]``.

        Differentiable for white-box models (gradients reach ``images``).

        Raises:
            InvalidInputError: not canonical images, or a shape other than :attr:`image_shape` when set.
        """
        images = check_images(images, channels=None)
        if self.image_shape is not None and tuple(images.shape[1:]) != tuple(self.image_shape):
            raise InvalidInputError(f"identity model {self.name!r} expects images of shape (N, "
                                    f"{', '.join(map(str, self.image_shape))}), got {tuple(images.shape)}")
        return self._embed(images)

    def _embed(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def score(self, a: Tensor, b: Tensor) -> Tensor:
        """Pairwise score ``(N,)`` of embeddings ``a`` and ``b`` (both ``(N, E)``): cosine or L2 distance."""
        if a.shape != b.shape or a.dim() != 2:
            raise InvalidInputError(f"embeddings must both be (N, E), got {tuple(a.shape)} and {tuple(b.shape)}")
        if self.metric == "cosine":
            return nn.functional.cosine_similarity(a, b, dim=1)
        return (a - b).norm(dim=1)

    def same_identity(self, scores: Tensor) -> Tensor:
        """Boolean ``(N,)``: which scores mean the same identity under :attr:`threshold`."""
        return scores >= self.threshold if self.metric == "cosine" else scores <= self.threshold
