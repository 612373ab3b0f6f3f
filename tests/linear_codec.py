"""A linear codec whose every map is known in closed form, for tests of codecs and latent-space methods."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from privis.latent import LatentCodec


class LinearCodec(LatentCodec):
    """``f(x) = A (x - 0.5)``, ``g(z) = 0.5 + B z`` on flattened ``(C, H, W)`` images; latent ``(G, D)``.

    ``A`` and ``B`` default to the identity (``G D == C H W``), so ``f(g(z)) = z`` wherever ``g(z)`` stays inside
    ``[0, 1]`` (the decoder's clamp); pass ``a`` and ``b`` for another Jacobian ``A B``.
    """

    def __init__(self, image_shape: tuple[int, int, int] = (1, 4, 4), latent_shape: tuple[int, int] = (2, 8),
                 a: Tensor | None = None, b: Tensor | None = None) -> None:
        super().__init__()
        pixels = image_shape[0] * image_shape[1] * image_shape[2]
        latent = latent_shape[0] * latent_shape[1]
        self.image_shape = image_shape
        self.latent_shape = latent_shape
        self.group_names = tuple(f"group-{i}" for i in range(latent_shape[0]))
        self.a = nn.Parameter(torch.eye(latent, pixels) if a is None else a.clone(), requires_grad=False)
        self.b = nn.Parameter(torch.eye(pixels, latent) if b is None else b.clone(), requires_grad=False)

    def _encode(self, images: Tensor) -> Tensor:
        return ((images.flatten(1) - 0.5) @ self.a.T).reshape(-1, *self.latent_shape)

    def _decode(self, latents: Tensor) -> Tensor:
        return (0.5 + latents.flatten(1) @ self.b.T).reshape(-1, *self.image_shape)
