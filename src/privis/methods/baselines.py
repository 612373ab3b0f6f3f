"""Simple deterministic baselines: Gaussian blur, pixelation (mosaic) and pixel-space Gaussian noise.

These are the obfuscations every image-privacy paper compares against (McPherson, Shokri &
Shmatikov, "Defeating Image Obfuscation with Deep Learning", 2016, arXiv:1609.00408, defeat blur and
pixelation; H. Xue, "A Study on Image Privacy Protection in Response to Artificial Intelligence
Technology", PhD thesis, University of Technology Sydney, 2023, compares against all three); each has one
strength knob. They also serve the engine: their output depends only on the item and the seed, so a
resumed or re-batched run reproduces an uninterrupted one byte for byte.

- :class:`GaussianBlur` (``blur``): convolution with a normalised 2-D Gaussian of standard deviation
  ``sigma`` pixels, separable, reflect-padded; no randomness.
- :class:`Pixelate` (``pixelate``): each ``block x block`` cell replaced by its mean (edge cells by the
  mean of their in-image pixels); no randomness.
- :class:`GaussianNoise` (``noise``): ``clip(x + sigma * z, 0, 1)`` with ``z ~ N(0, 1)`` per pixel. With
  ``ids`` the noise of item ``i`` is drawn from a counter-based generator keyed by
  ``(random_state, ids[i])`` (splitmix64 over the pixel counter, then Box-Muller), so an item's noise
  does not depend on its batch, its position or the other items, and the whole batch is drawn in one
  vectorised pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from privis import references
from privis.errors import InvalidInputError
from privis.methods import register
from privis.methods.base import Protector, check_images, check_labels, float_param, int_param, seed_param
from privis.random import resolve_seed, torch_generator

__all__ = ["GaussianBlur", "GaussianNoise", "Pixelate", "gaussian_kernel1d", "item_keys", "keyed_normal"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele, Lea & Flood, OOPSLA 2014) on a ``uint64`` array (wrapping arithmetic)."""
    z = x.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= _MUL1
    z ^= z >> np.uint64(27)
    z *= _MUL2
    z ^= z >> np.uint64(31)
    return z


def item_keys(random_state: int | None, ids: Tensor | Sequence[int]) -> np.ndarray:
    """Per-item generator keys ``(N,)`` uint64 derived from ``(random_state, ids[i])`` only.

    ``random_state=None`` draws one seed from OS entropy for the call (items still get distinct keys).
    """
    seed = resolve_seed(random_state)
    raw = ids.detach().cpu().numpy() if isinstance(ids, Tensor) else np.asarray(list(ids))
    if raw.ndim != 1 or not np.issubdtype(raw.dtype, np.integer):
        raise InvalidInputError(f"ids must be a 1-D sequence of integers, got {raw.dtype} {raw.shape}")
    base = _splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) + _GOLDEN)
    return _splitmix64(raw.astype(np.int64).view(np.uint64) ^ base)


def keyed_normal(keys: np.ndarray, shape: tuple[int, ...], *, chunk: int = 1 << 22) -> Tensor:
    """Standard normal draws ``(N, *shape)`` float32, row ``i`` a pure function of ``keys[i]``.

    Counter-based: the ``j``-th 64-bit word of row ``i`` is ``splitmix64(keys[i] + (j + 1) * golden)``
    (the splitmix64 sequence started at ``keys[i]``); its top and bottom 24 bits give two uniforms that the
    Box-Muller transform turns into two independent normals (float32). Rows are processed in chunks of about
    ``chunk`` words to bound temporary memory.
    """
    n = int(keys.shape[0])
    m = int(np.prod(shape)) if shape else 1
    pairs = (m + 1) // 2
    out = np.empty((n, 2 * pairs), dtype=np.float32)
    counters = (np.arange(1, pairs + 1, dtype=np.uint64) * _GOLDEN)[None, :]
    rows = max(1, chunk // max(pairs, 1))
    for start in range(0, n, rows):
        z = _splitmix64(keys[start:start + rows, None] + counters)
        # float32 arithmetic: 24-bit uniforms are plenty for noise that is quantised to 8 bits
        u1 = ((z >> np.uint64(40)).astype(np.float32) + np.float32(1.0)) * np.float32(2.0**-24)  # (0, 1]
        u2 = (z & np.uint64(0xFFFFFF)).astype(np.float32) * np.float32(2.0**-24)  # [0, 1)
        r = np.sqrt(np.float32(-2.0) * np.log(u1))
        theta = np.float32(2.0 * np.pi) * u2
        out[start:start + rows, :pairs] = r * np.cos(theta)
        out[start:start + rows, pairs:] = r * np.sin(theta)
    return torch.from_numpy(out[:, :m].reshape((n, *shape)).copy())


def gaussian_kernel1d(sigma: float, radius: int | None = None) -> Tensor:
    """Normalised 1-D Gaussian ``(2r + 1,)`` with ``r = ceil(3 sigma)`` unless given."""
    r = int(math.ceil(3.0 * sigma)) if radius is None else int(radius)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


@register
class GaussianBlur(Protector):
    """Gaussian blur baseline: convolve with a 2-D Gaussian of ``sigma`` pixels (strength: ``sigma``).

    Args:
        sigma: standard deviation in pixels (``> 0``); the kernel spans ``3 sigma`` each side, reflected
            at the border (clamped to the image when the image is smaller).

    Examples:
        >>> import torch
        >>> from privis.methods.baselines import GaussianBlur
        >>> images = torch.zeros(2, 1, 9, 9)
        >>> images[:, :, 4, 4] = 1.0  # one bright pixel
        >>> out = GaussianBlur(sigma=1.0).transform(images)
        >>> out.shape, round(float(out.sum(dim=(1, 2, 3))[0]), 4)  # same shape; the light is spread, not lost
        (torch.Size([2, 1, 9, 9]), 1.0)
    """

    name = "blur"
    citation = references.OBFUSCATION_BASELINES
    param_specs = {"sigma": float_param("standard deviation of the Gaussian, pixels", gt=0, le=1000)}
    requires_fit = False

    def __init__(self, sigma: float = 2.0) -> None:
        self.sigma = sigma

    def transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Blur ``images`` ``(N, C, H, W)`` in [0, 1]; returns the same shape in [0, 1]."""
        self.validate_params()
        images = check_images(images, channels=None)  # channel-agnostic
        check_labels(labels, images.shape[0])
        n, c, h, w = images.shape
        k = gaussian_kernel1d(float(self.sigma))
        r = k.numel() // 2
        x = images.reshape(n * c, 1, h, w)
        # separable: rows then columns, reflect padding (limited to size - 1, as reflection needs), each pass
        # a weighted sum of shifted views (one multiply-add per tap; conv2d's im2col would copy the batch
        # once per tap)
        for dim, radius in ((-1, min(r, w - 1)), (-2, min(r, h - 1))):
            if radius == 0:
                continue
            taps = k[r - radius:r + radius + 1]
            taps = taps / taps.sum()
            pad = (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius)
            padded = F.pad(x, pad, mode="reflect")
            size = x.shape[dim]
            acc = torch.zeros_like(x)
            for i, weight in enumerate(taps.tolist()):
                acc.add_(padded.narrow(dim, i, size), alpha=weight)
            x = acc
        return x.reshape(n, c, h, w).clamp_(0.0, 1.0)

    def invariants(self) -> dict[str, Any]:
        """``{"point_spread": (k, k) Gaussian kernel}``: the public point spread function (before the clamp and
        the reflected border; see :meth:`Protector.invariants`)."""
        k = gaussian_kernel1d(float(self.sigma))
        return {"point_spread": torch.outer(k, k)}


@register
class Pixelate(Protector):
    """Pixelation (mosaic) baseline: each ``block x block`` cell becomes its mean (strength: ``block``).

    Args:
        block: cell side in pixels (``>= 1``; 1 is the identity). Cells at the right and bottom edges
            that the image cuts short average only their in-image pixels.

    Examples:
        >>> import torch
        >>> from privis.methods.baselines import Pixelate
        >>> images = torch.arange(16.0).reshape(1, 1, 4, 4) / 15
        >>> Pixelate(block=2).transform(images)[0, 0] * 15  # each 2x2 cell becomes its mean
        tensor([[ 2.5000,  2.5000,  4.5000,  4.5000],
                [ 2.5000,  2.5000,  4.5000,  4.5000],
                [10.5000, 10.5000, 12.5000, 12.5000],
                [10.5000, 10.5000, 12.5000, 12.5000]])
    """

    name = "pixelate"
    citation = references.OBFUSCATION_BASELINES
    param_specs = {"block": int_param("cell side, pixels (1: identity)", ge=1, le=65536)}
    requires_fit = False

    def __init__(self, block: int = 4) -> None:
        self.block = block

    def transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Pixelate ``images`` ``(N, C, H, W)``; returns the same shape in [0, 1]."""
        self.validate_params()
        images = check_images(images, channels=None)  # channel-agnostic
        check_labels(labels, images.shape[0])
        h, w = images.shape[-2:]
        b = min(int(self.block), max(h, w))  # a larger cell is the whole image too; no b x b upsampling
        cells = F.avg_pool2d(images, kernel_size=b, stride=b, ceil_mode=True)
        up = cells.repeat_interleave(b, dim=-2).repeat_interleave(b, dim=-1)
        return up[..., :h, :w].contiguous().clamp_(0.0, 1.0)

    def invariants(self) -> dict[str, Any]:
        """``{"cell_means": block}``: the cell means are all the output keeps (see :meth:`Protector.invariants`)."""
        return {"cell_means": int(self.block)}


@register
class GaussianNoise(Protector):
    """Pixel-space Gaussian noise baseline: ``clip(x + sigma z, 0, 1)`` (strength: ``sigma``).

    Args:
        sigma: noise standard deviation in [0, 1] pixel units (``>= 0``).
        random_state: seed; None draws from OS entropy.

    Examples:
        >>> import torch
        >>> from privis.methods.baselines import GaussianNoise
        >>> images = torch.full((4, 3, 8, 8), 0.5)
        >>> a = GaussianNoise(sigma=0.1, random_state=8_271_532_904).transform(images)
        >>> b = GaussianNoise(sigma=0.1, random_state=8_271_532_904).transform(images)
        >>> torch.equal(a, b), bool(a.min() >= 0 and a.max() <= 1)  # a seed reproduces it; values stay in [0, 1]
        (True, True)
    """

    name = "noise"
    citation = references.OBFUSCATION_BASELINES
    param_specs = {"sigma": float_param("noise standard deviation, [0, 1] pixel units", ge=0, le=10),
                   "random_state": seed_param()}
    requires_fit = False
    stochastic = True
    accepts_ids = True

    def __init__(self, sigma: float = 0.1, random_state: int | None = None) -> None:
        self.sigma = sigma
        self.random_state = random_state

    def transform(self, images: Tensor, labels: Tensor | None = None, *,
                  ids: Tensor | Sequence[int] | None = None) -> Tensor:
        """Add noise to ``images`` ``(N, C, H, W)``; returns the same shape in [0, 1].

        Args:
            ids: optional ``(N,)`` integer item ids. When given, item ``i``'s noise is a function of
                ``(random_state, ids[i])`` alone (see :func:`keyed_normal`); without, the batch's noise
                comes from one generator seeded by ``random_state``.
        """
        self.validate_params()
        images = check_images(images, channels=None)  # channel-agnostic
        check_labels(labels, images.shape[0])
        if ids is not None:
            if len(ids) != images.shape[0]:
                raise InvalidInputError(f"{len(ids)} ids for {images.shape[0]} images")
            z = keyed_normal(item_keys(self.random_state, ids), tuple(images.shape[1:])).to(images.device)
        else:
            gen = torch_generator(self.random_state)
            z = torch.randn(images.shape, generator=gen).to(images.device)
        return (images + float(self.sigma) * z).clamp_(0.0, 1.0)
