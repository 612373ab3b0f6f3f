"""A convolutional autoencoder codec whose latent groups come from three encoder scales (coarse to fine).

The stand-in, trainable in minutes on a CPU, for the pSp encoder + StyleGAN2 generator pair of DP-Image
(H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence Technology", PhD
thesis, University of Technology Sydney, 2023, Section 4.5.1.3). pSp (E. Richardson et al., "Encoding in
Style: a StyleGAN Encoder for Image-to-Image Translation", CVPR 2021, arXiv:2008.00951) reads its 18 style
vectors off three feature maps of a ResNet backbone: styles 1-3 from the smallest map, 4-7 from the medium
one, 8-18 from the largest; StyleGAN2 then feeds the coarse styles to its low-resolution layers and the fine
ones to its high-resolution layers. :class:`ConvAutoencoder` keeps that layout at small scale:

- encoder: a 3x3 convolution stem, then three stride-2 stages giving maps at ``ceil(H/2)``, ``ceil(H/4)``
  and ``ceil(H/8)`` (``base``, ``2 base`` and ``4 base`` channels). Group set ``s`` (coarse: the smallest
  map; medium; fine: the largest map) is a linear map of the flattened feature map of its scale, reshaped to
  ``groups[s]`` groups of ``group_size`` values; the latent is their concatenation ``(N, G, D)`` with
  ``G = sum(groups)``, ordered coarse to fine;
- decoder: the coarse groups set the smallest map (a linear map), which is upsampled (nearest) and refined
  by two 3x3 convolutions per scale; at the medium and the fine scales the groups of that scale are added
  as a linear map to the feature map (StyleGAN's per-resolution style input, additive), and a last
  upsampling stage returns ``(N, C, H, W)`` through a sigmoid.

Latents are unbounded real vectors; their spread after training is whatever reconstruction needs (about
unit scale). No Lipschitz bound is claimed (:attr:`lipschitz_bound` is None); see
:mod:`privis.latent.contractive` for a codec with one.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from privis.errors import InvalidInputError
from privis.latent.base import LatentCodec

__all__ = ["ConvAutoencoder", "check_codec_shape"]

_SCALES = ("coarse", "medium", "fine")


def check_codec_shape(channels: Any, height: Any, width: Any) -> tuple[int, int, int]:
    """``(C, H, W)`` as ints when ``C`` is 1 or 3 and ``H, W >= 4``; else :class:`InvalidInputError`."""
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (channels, height, width))
    if not ok or channels not in (1, 3) or height < 4 or width < 4:
        raise InvalidInputError(f"a codec needs 1 or 3 channels and images of at least 4x4 pixels, got "
                                f"channels={channels!r}, height={height!r}, width={width!r}")
    return int(channels), int(height), int(width)


def _down(size: int, times: int) -> int:
    for _ in range(times):
        size = math.ceil(size / 2)
    return size


class ConvAutoencoder(LatentCodec):
    """Convolutional autoencoder with a grouped latent from three encoder scales (module docstring).

    Args:
        channels: ``C``, 1 (grey) or 3 (RGB).
        height, width: ``H, W`` of the images, at least 4 pixels each.
        groups: groups per scale ``(coarse, medium, fine)``, each ``>= 1`` (default ``(2, 2, 4)``: ``G = 8``).
        group_size: ``D``, values per group (``>= 1``; default 64, so ``d = G D = 512``).
        base: channels of the largest feature map (``>= 4``; default 16); the smaller maps have 2 and 4 times
            as many.
        head_size: the largest side of a feature map the linear heads read and the decoder's linear inputs
            write (``>= 1``; default 16): a larger map is average-pooled to at most ``head_size x head_size``
            before its head and its decoder input is upsampled (bilinear) back, so the linear layers stay small
            on large images (a 512 x 512 RGB image would otherwise need about 700 million weights). Images up to
            32 x 32 are unaffected. None: no cap (codecs saved before the cap existed load this way).

    Raises:
        InvalidInputError: any argument outside its range.

    Examples:
        >>> import torch
        >>> from privis.latent import ConvAutoencoder
        >>> codec = ConvAutoencoder(channels=1, height=8, width=8, groups=(1, 1, 2), group_size=4, base=4)
        >>> z = codec.encode(torch.rand(3, 1, 8, 8))
        >>> tuple(z.shape), codec.group_names, tuple(codec.decode(z).shape)
        ((3, 4, 4), ('coarse-0', 'medium-0', 'fine-0', 'fine-1'), (3, 1, 8, 8))
    """

    def __init__(self, channels: int = 1, height: int = 28, width: int = 28, *,
                 groups: tuple[int, int, int] | list[int] = (2, 2, 4), group_size: int = 64, base: int = 16,
                 head_size: int | None = 16) -> None:
        super().__init__()
        c, h, w = check_codec_shape(channels, height, width)
        counts = tuple(groups)
        if len(counts) != 3 or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in counts):
            raise InvalidInputError(f"groups must be three integers >= 1 (coarse, medium, fine), got {groups!r}")
        for key, value, low in (("group_size", group_size, 1), ("base", base, 4), ("head_size", head_size, 1)):
            if key == "head_size" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInputError(f"{key} must be an integer >= {low}, got {value!r}")
        self.config = {"channels": c, "height": h, "width": w, "groups": list(counts), "group_size": group_size,
                       "base": base, "head_size": head_size}
        self.image_shape = (c, h, w)
        self.latent_shape = (sum(counts), group_size)
        self.group_names = tuple(f"{scale}-{i}" for scale, k in zip(_SCALES, counts, strict=True) for i in range(k))
        self._counts = counts
        # sizes and widths of the fine (H/2), medium (H/4) and coarse (H/8) maps
        self._sizes = [(_down(h, s), _down(w, s)) for s in (1, 2, 3)]
        widths = [base, 2 * base, 4 * base]
        self._widths = widths

        def block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, 1, 1), nn.ReLU(inplace=True))

        self.stem = nn.Sequential(nn.Conv2d(c, base, 3, 1, 1), nn.ReLU(inplace=True))
        self.down = nn.ModuleList([block(base, widths[0], 2), block(widths[0], widths[1], 2),
                                   block(widths[1], widths[2], 2)])
        cap = head_size or max(h, w)
        self._head_sizes = [(min(sh, cap), min(sw, cap)) for sh, sw in self._sizes]
        flat = [wd * sh * sw for wd, (sh, sw) in zip(widths, self._head_sizes, strict=True)]
        # heads and decoder inputs, indexed coarse, medium, fine (scale 2, 1, 0)
        self.heads = nn.ModuleList([nn.Linear(flat[s], k * group_size)
                                    for s, k in zip((2, 1, 0), counts, strict=True)])
        self.inject = nn.ModuleList([nn.Linear(k * group_size, flat[s])
                                     for s, k in zip((2, 1, 0), counts, strict=True)])
        self.up = nn.ModuleList([block(widths[2], widths[1]), block(widths[1], widths[0]), block(widths[0], base)])
        self.out = nn.Conv2d(base, c, 3, 1, 1)

    def _encode(self, images: Tensor) -> Tensor:
        h = self.stem(images)
        maps = []
        for stage in self.down:
            h = stage(h)
            maps.append(h)
        n, d = images.shape[0], self.latent_shape[1]
        parts = [head(self._pooled(maps[s], s).flatten(1)).reshape(n, -1, d)
                 for head, s in zip(self.heads, (2, 1, 0), strict=True)]
        return torch.cat(parts, dim=1)

    def _pooled(self, feature_map: Tensor, scale: int) -> Tensor:
        """The feature map of ``scale`` average-pooled to the heads' size (itself when it is that size)."""
        size = self._head_sizes[scale]
        return feature_map if size == self._sizes[scale] else F.adaptive_avg_pool2d(feature_map, size)

    def _injected(self, index: int, part: Tensor, scale: int) -> Tensor:
        """Decoder input ``index`` of the latent groups ``part`` as a map of ``scale``'s size."""
        n, size = part.shape[0], self._head_sizes[scale]
        injected = self.inject[index](part.flatten(1)).reshape(n, self._widths[scale], *size)
        if size == self._sizes[scale]:
            return injected
        return F.interpolate(injected, size=self._sizes[scale], mode="bilinear", align_corners=False)

    def _decode(self, latents: Tensor) -> Tensor:
        parts = torch.split(latents, list(self._counts), dim=1)
        scales = (2, 1, 0)
        h = self._injected(0, parts[0], scales[0])
        for i in (1, 2):
            size = self._sizes[scales[i]]
            h = self.up[i - 1](F.interpolate(h, size=size, mode="nearest")) + self._injected(i, parts[i], scales[i])
        h = self.up[2](F.interpolate(h, size=self.image_shape[1:], mode="nearest"))
        return torch.sigmoid(self.out(h))
