"""Latent codecs: encoders and decoders between canonical images and a grouped latent ``(N, G, D)``."""

from privis.latent.base import LatentCodec

__all__ = ["LatentCodec"]
