"""Latent codecs: encoders and decoders between canonical images and a grouped latent ``(N, G, D)``.

- :class:`LatentCodec`: the contract (:mod:`privis.latent.base`);
- :class:`ConvAutoencoder`: a convolutional autoencoder whose groups come from three encoder scales;
- :class:`ContractiveCodec`: a dense codec with a certified Lipschitz bound ``<= 1`` on ``f(g(z))``;
- :class:`TorchScriptCodec`: any TorchScript encoder/decoder pair (pSp + StyleGAN2), shapes probed once;
- :class:`DiffusionAutoencoder`: semantic code ``z_bar`` + DDIM-inverted ``x_T`` (DiffAE), with a density of
  ``z_bar`` (:class:`LatentDensity`); :class:`TorchScriptDiffusionAutoencoder` runs an exported one;
- :func:`train_codec`, :func:`codec_quality`, :func:`save_codec`, :func:`load_codec`;
- :func:`measure_lipschitz`: the empirical Lipschitz constant of ``clip(f(g(z)))``.
"""

from privis.latent.autoencoder import ConvAutoencoder
from privis.latent.base import LatentCodec
from privis.latent.contractive import ContractiveCodec
from privis.latent.density import LatentDensity, compare_densities
from privis.latent.diffae import DiffusionAutoencoder, DiffusionCodec, TorchScriptDiffusionAutoencoder
from privis.latent.lipschitz import LipschitzEstimate, measure_lipschitz
from privis.latent.torchscript import TorchScriptCodec
from privis.latent.training import codec_quality, load_codec, save_codec, train_codec

__all__ = ["ContractiveCodec", "ConvAutoencoder", "DiffusionAutoencoder", "DiffusionCodec", "LatentCodec",
           "LatentDensity", "LipschitzEstimate", "TorchScriptCodec", "TorchScriptDiffusionAutoencoder",
           "codec_quality", "compare_densities", "load_codec", "measure_lipschitz", "save_codec", "train_codec"]
