"""The ``LatentCodec`` contract: canonical images to a grouped latent and back.

A codec pairs an encoder ``f`` (image -> latent) and a decoder ``g`` (latent -> image), the two maps every
latent-space protection iterates (DP-Image: H. Xue, "A Study on Image Privacy Protection in Response to
Artificial Intelligence Technology", PhD thesis, University of Technology Sydney, 2023, Algorithm 6; FSAP
and the diffusion-autoencoder anonymiser of the same thesis). The latent is grouped ``(N, G, D)``: ``G``
groups of ``D`` values each, ordered coarse to fine, as pSp's style vectors for StyleGAN2's W+ space
(E. Richardson et al., "Encoding in Style: a StyleGAN Encoder for Image-to-Image Translation", CVPR 2021,
arXiv:2008.00951: 18 groups of 512).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from privis.data.checks import check_images
from privis.errors import InvalidInputError

__all__ = ["LatentCodec"]


class LatentCodec(nn.Module):
    """Base class of every codec: ``encode`` ``(N, C, H, W)`` -> ``(N, G, D)``, ``decode`` back.

    Subclasses set :attr:`image_shape`, :attr:`latent_shape` and :attr:`group_names` (in ``__init__``) and
    implement :meth:`_encode` and :meth:`_decode`; the public :meth:`encode` and :meth:`decode` check shapes
    and values first and say what was expected, so every adapter fails the same clear way.

    Attributes:
        image_shape: ``(C, H, W)`` the encoder expects (images are canonical: float32 in ``[0, 1]``).
        latent_shape: ``(G, D)``: ``G`` groups of ``D`` values.
        group_names: ``G`` names, coarse to fine (e.g. ``("coarse-0", ..., "fine-17")``).
        lipschitz_bound: a *certified* upper bound on the L2 Lipschitz constant of ``encode(decode(z))``
            (latent to latent), or None when nothing is proven (the usual case). Only a codec built so that
            the bound holds by construction sets it.
    """

    image_shape: tuple[int, int, int]
    latent_shape: tuple[int, int]
    group_names: tuple[str, ...]
    lipschitz_bound: float | None = None

    @property
    def latent_dim(self) -> int:
        """``G * D``, the dimension ``d`` of the flattened latent."""
        groups, width = self.latent_shape
        return groups * width

    def encode(self, images: Tensor) -> Tensor:
        """Encode canonical images.

        Args:
            images: ``(N, C, H, W)`` float32 in ``[0, 1]`` with ``(C, H, W) == image_shape``.

        Returns:
            ``(N, G, D)`` float32 latents on the codec's device.

        Raises:
            InvalidInputError: not canonical images, or a shape other than :attr:`image_shape` (the message
                names both shapes and suggests resizing).
        """
        images = check_images(images, channels=None)
        if tuple(images.shape[1:]) != tuple(self.image_shape):
            c, h, w = self.image_shape
            raise InvalidInputError(
                f"{type(self).__name__} expects images of shape (N, {c}, {h}, {w}), got "
                f"{tuple(images.shape)}; resize or convert the data to {w}x{h} with {c} channel(s) first")
        return self._encode(images)

    def decode(self, latents: Tensor) -> Tensor:
        """Decode latents to canonical images.

        Args:
            latents: ``(N, G, D)`` floating point, finite, ``(G, D) == latent_shape``.

        Returns:
            ``(N, C, H, W)`` float32 in ``[0, 1]`` with ``(C, H, W) == image_shape``.

        Raises:
            InvalidInputError: not a 3-D floating tensor of the codec's latent shape, or NaN/infinite values.
        """
        self.check_latents(latents)
        return self._decode(latents).clamp(0.0, 1.0)

    def check_latents(self, latents: Any, *, name: str = "latents") -> Tensor:
        """Return ``latents`` when they are a finite ``(N, G, D)`` floating tensor of :attr:`latent_shape`.

        Raises:
            InvalidInputError: otherwise, with the expected and the received shape.
        """
        groups, width = self.latent_shape
        if not isinstance(latents, Tensor) or not latents.is_floating_point() or latents.dim() != 3:
            got = tuple(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__
            raise InvalidInputError(f"{name} must be a floating tensor of shape (N, {groups}, {width}), got {got}")
        if tuple(latents.shape[1:]) != (groups, width):
            raise InvalidInputError(
                f"{name} must have shape (N, {groups}, {width}) for {type(self).__name__}, got {tuple(latents.shape)}")
        if not bool(torch.isfinite(latents).all()):
            raise InvalidInputError(f"{name} contain NaN or infinite values")
        return latents

    def _encode(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def _decode(self, latents: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"image_shape={self.image_shape}, latent_shape={self.latent_shape}"
