"""InstaHide: k-image mixup with random sign flips (Huang, Song, Li & Arora, "InstaHide: Instance-hiding
Schemes for Private Distributed Learning", ICML 2020, arXiv:2010.02772, Sec. 3 and Algorithm 1
"inside-dataset").

For each private image ``x_1`` (in the ``[-1, 1]`` domain) InstaHide draws ``k - 1`` other images
``x_2 .. x_k`` of the dataset and coefficients ``lambda_1 .. lambda_k`` and releases

    ``x~ = sigma o sum_j lambda_j x_j``,   ``sigma`` uniform in ``{-1, +1}`` per pixel and channel,

a fresh mixing and a fresh sign mask for every image and call. The strength knob is ``k`` (paper: 4).

Choices, following the authors' reference implementation where the paper is silent:

* Coefficients: ``|z| / sum |z|`` with ``z ~ N(0, I_k)``, redrawn while the largest exceeds ``upper``
  (paper default 0.65), so no single image dominates. Rejection runs in vectorised rounds over the rows
  still out of bounds.
* Partners: one uniformly random permutation of the batch per extra image (as the reference code does,
  so a partner can coincide with the image itself or another partner with probability about ``1/N``).
  Mixing is inside the images of one ``transform`` call: pass the whole dataset (or large batches).
* Labels (a deviation): the paper trains on the mixed soft labels ``sum_j lambda_j y_j``; a privis
  ``Protector`` returns images only and the service trains on each protected image with its own label.
  With ``dominant=True`` (default) the private image therefore takes the largest of the ``k`` coefficients,
  which makes its label the single most represented one; ``dominant=False`` keeps the paper's order.
* Domain: ``[-1, 1]`` (``2x - 1``) instead of per-channel standardisation, so ``|x~| <= 1`` and the
  canonical output ``(x~ + 1) / 2`` needs no clipping.

Known weakness, stated plainly: ``|x~|`` does not depend on the sign mask (Carlini et al., "Is Private
Learning Possible with Instance Encoding?", S&P 2021); ``privis attack invariants`` uses exactly that.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from privis import references
from privis.errors import InvalidInputError
from privis.methods import register
from privis.methods.base import (
    Protector,
    bool_param,
    check_images,
    check_labels,
    check_memory,
    float_param,
    int_param,
    seed_param,
    to_canonical,
    to_signed,
)
from privis.random import torch_generator

__all__ = ["InstaHide", "draw_mixing", "mix"]

_MAX_ROUNDS = 10_000


def draw_mixing(n: int, k: int, upper: float, generator: torch.Generator, *,
                dominant: bool = True) -> tuple[Tensor, Tensor]:
    """Partners and coefficients of ``n`` InstaHide encodings.

    Args:
        n: images in the batch.
        k: images per mixture (``k >= 1``); ``k = 1`` is sign flipping alone.
        upper: bound on every coefficient (needs ``1 / k <= upper <= 1``; ignored for ``k = 1``).
        generator: randomness.
        dominant: put the largest coefficient in column 0 (the private image).

    Returns:
        ``(partners, weights)``: ``(n, k)`` long indices into the batch with ``partners[:, 0] = arange(n)``,
        and ``(n, k)`` float32 coefficients, non-negative, summing to 1 per row, each ``<= upper``.
    """
    if k < 1:
        raise InvalidInputError(f"InstaHide k must be >= 1, got {k}")
    if k > 1 and not 1.0 / k <= upper <= 1.0:
        raise InvalidInputError(f"InstaHide upper must lie in [1/k, 1] = [{1.0 / k:.3g}, 1], got {upper}")
    bound = upper if k > 1 else 1.0
    weights = torch.empty(n, k, dtype=torch.float64)
    todo = torch.arange(n)
    for _ in range(_MAX_ROUNDS):
        z = torch.randn(todo.numel(), k, generator=generator, dtype=torch.float64).abs()
        w = z / z.sum(1, keepdim=True).clamp_min(1e-300)
        weights[todo] = w
        todo = todo[w.max(1).values > bound + 1e-12]
        if todo.numel() == 0:
            break
    else:  # pragma: no cover - only for upper within 1e-12 of 1/k
        raise InvalidInputError(f"InstaHide upper={upper} is too close to 1/k={1.0 / k:.6g} to sample")
    if dominant:
        weights = weights.sort(dim=1, descending=True).values
    cols = [torch.arange(n)] + [torch.randperm(n, generator=generator) for _ in range(k - 1)]
    return torch.stack(cols, 1), weights.float()


def mix(signed: Tensor, partners: Tensor, weights: Tensor, signs: Tensor) -> Tensor:
    """``signs o sum_j weights[:, j] signed[partners[:, j]]`` for ``[-1, 1]`` images ``(N, C, H, W)``."""
    mixed = torch.einsum("nk,nkchw->nchw", weights.to(signed), signed[partners])
    return mixed * signs


@register
class InstaHide(Protector):
    """InstaHide (Huang et al., ICML 2020): k-image mixup with random per-pixel sign flips (strength: ``k``).

    Args:
        k: images per mixture (paper default 4).
        upper: bound on any single coefficient (paper default 0.65).
        dominant: the private image takes the largest coefficient (see the module notes).
        sign_flip: apply the random sign mask (the paper's encryption step); False is plain k-mixup.
        random_state: seed; None draws partners, coefficients and masks from OS entropy.

    Examples:
        >>> from privis import data
        >>> from privis.methods.instahide import InstaHide
        >>> images = data.load("digits:test[:32]").images
        >>> out = InstaHide(k=4, random_state=8_271_532_904).transform(images)
        >>> out.shape, out.dtype, bool(out.min() >= 0 and out.max() <= 1)
        (torch.Size([32, 1, 8, 8]), torch.float32, True)
    """

    name = "instahide"
    citation = references.INSTAHIDE
    param_specs = {
        "k": int_param("images per mixture (paper: 4); memory grows as k x batch x image", ge=1, le=1_000_000),
        "upper": float_param("bound on any single coefficient, at least 1/k (paper: 0.65)", gt=0, le=1),
        "dominant": bool_param("the private image takes the largest coefficient"),
        "sign_flip": bool_param("apply the random per-pixel sign mask (False: plain k-mixup)"),
        "random_state": seed_param(),
    }
    requires_fit = False
    stochastic = True

    def __init__(self, k: int = 4, upper: float = 0.65, dominant: bool = True, sign_flip: bool = True,
                 random_state: int | None = None) -> None:
        self.k = k
        self.upper = upper
        self.dominant = dominant
        self.sign_flip = sign_flip
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.k > 1 and self.upper < 1.0 / self.k:
            raise InvalidInputError(f"instahide: parameter upper must be at least 1/k = {1.0 / self.k:.3g} for "
                                    f"k={self.k}, got {self.upper}")

    def invariants(self) -> dict[str, Any]:
        """``{"sign_magnitude": True}``: the sign mask leaves ``|sum_j lambda_j x_j|``, the mixture's magnitude
        (Carlini et al., S&P 2021; see :meth:`Protector.invariants`)."""
        return {"sign_magnitude": True}

    def transform(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """Encode ``images`` ``(N, C, H, W)`` in [0, 1] (mixing inside the batch); returns the same shape.

        Raises:
            InvalidInputError: bad parameters or images, or a mixture too large for the memory available
                (``k`` partner images per image are gathered at once: about ``4 k N C H W`` bytes).
        """
        self.validate_params()
        images = check_images(images, channels=None)  # channel-agnostic
        check_labels(labels, images.shape[0])
        n = images.shape[0]
        k = int(self.k)
        # the gathered partners (n, k, C, H, W) float32, the coefficient draws and partner indices (n, k)
        needed = 4.0 * n * k * images[0].numel() + 24.0 * n * k + 12.0 * images.numel()
        check_memory(needed, f"instahide k={k} on {n} images of {'x'.join(map(str, images.shape[1:]))}",
                     images.device)
        generator = torch_generator(self.random_state)
        partners, weights = draw_mixing(n, self.k, float(self.upper), generator, dominant=bool(self.dominant))
        if self.sign_flip:
            signs = to_signed(torch.randint(0, 2, images.shape, generator=generator).float())
        else:
            signs = torch.ones(images.shape)
        encoded = mix(to_signed(images), partners.to(images.device), weights, signs.to(images.device))
        return to_canonical(encoded)
