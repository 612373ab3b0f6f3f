"""``filters``: classical denoisers applied to protected images (scikit-image / SciPy).

Threat model: the attacker holds only the protected images (no model, no auxiliary data, no knowledge of
the method) and runs off-the-shelf restorations on them: median, Gaussian, bilateral (Tomasi & Manduchi,
ICCV 1998), non-local means (Buades et al., CVPR 2005) and total-variation denoising (Chambolle, JMIV
2004). The papers' DP-noise argument (VisualMixer Sec. I: noise "in high frequency domain can be filtered
by human eyes") is this attack. Every filter of the bank is tried; the one with the highest mean |SSIM|
against the originals is reported (an oracle choice over a small bank: the defender's worst case).

Vectorised where the library allows: median and Gaussian filter the whole batch with one SciPy call
(kernel size 1 along the batch and channel axes); TV denoises all images at once by passing them as the
channel axis of one array, which Chambolle's solver treats independently. Bilateral and non-local means
have no batch form in scikit-image (a channel axis there couples the channels), so they loop over images.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from skimage import restoration
from torch import Tensor

from privis import references
from privis.attacks import register_attack
from privis.attacks.base import Attack, AttackContext, AttackOutcome
from privis.errors import InvalidInputError
from privis.methods.base import Param

FILTER_KINDS = ("median", "gaussian", "bilateral", "nl-means", "tv")
DEFAULT_BANK: tuple[tuple[str, float], ...] = (
    ("median", 3), ("median", 5), ("gaussian", 0.7), ("gaussian", 1.5), ("bilateral", 0.1),
    ("nl-means", 0.08), ("tv", 0.1), ("tv", 0.3),
)


def apply_filter(images: np.ndarray, kind: str, strength: float) -> np.ndarray:
    """One filter on a batch ``(N, C, H, W)`` float array in ``[0, 1]``; returns the same shape.

    ``strength``: median window side, Gaussian sigma (px), bilateral colour sigma, non-local means ``h``,
    TV weight.
    """
    n, c, h, w = images.shape
    if kind == "median":
        return ndimage.median_filter(images, size=(1, 1, int(strength), int(strength)), mode="reflect")
    if kind == "gaussian":
        return ndimage.gaussian_filter(images, sigma=(0, 0, strength, strength), mode="reflect")
    if kind == "tv":
        stack = images.reshape(n * c, h, w).transpose(1, 2, 0)
        out = restoration.denoise_tv_chambolle(stack, weight=strength, channel_axis=-1)
        return out.transpose(2, 0, 1).reshape(n, c, h, w)
    planes = images.reshape(n * c, h, w)
    if kind == "bilateral":
        out = [restoration.denoise_bilateral(p, sigma_color=strength, sigma_spatial=1.5) for p in planes]
    elif kind == "nl-means":
        patch = max(3, min(5, h // 4))
        out = [restoration.denoise_nl_means(p, h=strength, patch_size=patch, patch_distance=max(2, h // 5))
               for p in planes]
    else:
        raise InvalidInputError(f"unknown filter {kind!r}; use median, gaussian, bilateral, nl-means or tv")
    return np.stack(out).reshape(n, c, h, w)


@register_attack
class Filters(Attack):
    """Denoising filters on the protected images; the best filter of the bank is reported.

    Args:
        bank: ``(kind, strength)`` pairs; kinds ``median``, ``gaussian``, ``bilateral``, ``nl-means``, ``tv``.

    Examples:
        >>> from privis import attacks, data, methods
        >>> from privis.attacks import AttackContext
        >>> digits = data.load("digits:test[:16]")
        >>> noisy = methods.create("noise", sigma=0.2, random_state=8_271_532_904).transform(digits.images)
        >>> attack = attacks.create("filters", bank=[("median", 3), ("tv", 0.1)])
        >>> outcome = attack.run(digits.images, noisy, context=AttackContext(method="noise"))
        >>> outcome.variant in ("median-3", "tv-0.1"), outcome.recovered.shape
        (True, torch.Size([16, 1, 8, 8]))
        >>> sorted(outcome.scores)  # |SSIM| and PSNR of the best recovery and of the protected images themselves
        ['psnr_mean', 'psnr_protected', 'ssim_mean', 'ssim_protected']
    """

    name = "filters"
    citation = references.DENOISING_FILTERS
    param_specs = {"bank": Param("literal", "(kind, strength) pairs, e.g. [('median', 3), ('tv', 0.1)]; kinds "
                                 + ", ".join(FILTER_KINDS))}

    def __init__(self, bank: tuple[tuple[str, float], ...] | list[Any] = DEFAULT_BANK) -> None:
        self.bank = bank

    def _check_params(self) -> None:
        for entry in self.bank:
            ok = (isinstance(entry, tuple | list) and len(entry) == 2 and entry[0] in FILTER_KINDS
                  and isinstance(entry[1], int | float) and not isinstance(entry[1], bool)
                  and math.isfinite(entry[1]) and entry[1] > 0)
            if not ok:
                raise InvalidInputError(f"filters: parameter bank must hold (kind, strength > 0) pairs with kinds "
                                        f"{', '.join(FILTER_KINDS)}, got {entry!r}")

    def attack(self, protected: Tensor, context: AttackContext) -> AttackOutcome:
        """Filter ``protected`` with every bank entry; :meth:`Attack.run` keeps the best by |SSIM|."""
        if not self.bank:
            raise InvalidInputError("filters needs a non-empty bank of (kind, strength) pairs")
        x = protected.detach().cpu().double().numpy()
        candidates = {f"{kind}-{strength:g}": torch.from_numpy(apply_filter(x, kind, float(strength))).float()
                      .to(protected.device) for kind, strength in self.bank}
        return AttackOutcome(self.name, context.method, candidates=candidates,
                             notes=[f"{len(candidates)} filters tried on the protected images"])
