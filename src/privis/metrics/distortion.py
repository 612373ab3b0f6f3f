"""Pixel-space distortion metrics, per image of a batch: MSE, PSNR, L2 and ALD_p.

All take two ``(N, C, H, W)`` batches (torch or numpy, same shape, finite) and return one value per image,
``(N,)``; numpy in, numpy out. Each is differentiable in torch where the formula is (PSNR of identical
images is ``inf`` and has no useful gradient there).
"""

from __future__ import annotations

import math

import torch

from privis.errors import InvalidInputError
from privis.metrics._common import ImageBatch, check_positive, finish, prepare

__all__ = ["mse", "psnr", "l2", "ald"]

_DIMS = (1, 2, 3)


def mse(x: ImageBatch, y: ImageBatch) -> ImageBatch:
    """Mean squared error per image: ``MSE = (1 / (C H W)) * sum (x - y)^2``.

    Matches ``skimage.metrics.mean_squared_error(x[i], y[i])`` for every ``i``.

    Returns:
        ``(N,)`` mean squared errors.

    Examples:
        >>> import torch
        >>> from privis.metrics import mse
        >>> x = torch.zeros(2, 1, 4, 4)
        >>> mse(x, x + 0.5)
        tensor([0.2500, 0.2500])
    """
    (xt, yt), numpy_out = prepare((x, "x"), (y, "y"))
    return finish((xt - yt).square().mean(dim=_DIMS), numpy_out)


def psnr(x: ImageBatch, y: ImageBatch, *, data_range: float = 1.0) -> ImageBatch:
    """Peak signal-to-noise ratio per image in dB: ``PSNR = 10 log10(L^2 / MSE)``, ``L = data_range``.

    Matches ``skimage.metrics.peak_signal_noise_ratio(x[i], y[i], data_range=data_range)``. Identical
    images (``MSE = 0``) give ``inf``, as in scikit-image (without its divide-by-zero warning).

    Args:
        x: reference images ``(N, C, H, W)``.
        y: test images, same shape.
        data_range: ``L``, the span of possible values (1.0 for ``[0, 1]`` images, 255 for 8-bit data).

    Returns:
        ``(N,)`` PSNR values in decibels (``inf`` where the images are identical).

    Examples:
        >>> import numpy as np
        >>> from privis.metrics import psnr
        >>> x = np.zeros((1, 1, 4, 4))
        >>> psnr(x, x + 0.1)  # 10 log10(1 / 0.01) dB; numpy in, numpy out
        array([20.])
        >>> float(psnr(x, x)[0])
        inf
    """
    data_range = check_positive(data_range, "data_range")
    (xt, yt), numpy_out = prepare((x, "x"), (y, "y"))
    err = (xt - yt).square().mean(dim=_DIMS)
    return finish(10.0 * torch.log10(data_range**2 / err), numpy_out)


def l2(x: ImageBatch, y: ImageBatch) -> ImageBatch:
    """Euclidean distance per image: ``||y - x||_2`` over all ``C * H * W`` values.

    Returns:
        ``(N,)`` L2 distances (not normalised by the number of pixels; see :func:`ald` for the relative one).

    Examples:
        >>> import torch
        >>> from privis.metrics import l2
        >>> x = torch.zeros(1, 1, 4, 4)
        >>> l2(x, x + 0.5)  # sqrt(16 * 0.25)
        tensor([2.])
    """
    (xt, yt), numpy_out = prepare((x, "x"), (y, "y"))
    return finish(torch.linalg.vector_norm(yt - xt, ord=2, dim=_DIMS), numpy_out)


def ald(x: ImageBatch, y: ImageBatch, p: float = math.inf) -> ImageBatch:
    """Average L_p distortion per image: ``ALD_p = ||X^pr - X||_p / ||X||_p`` (Xue thesis, Section III.B).

    ``x`` is the original ``X``, ``y`` the protected ``X^pr``; both are flattened per image (over
    ``C * H * W`` values) before taking the norm. Averaging over a dataset is the caller's ``.mean()``.

    Args:
        x: original images ``(N, C, H, W)``.
        y: protected images, same shape.
        p: the norm order: ``1``, ``2``, ``math.inf`` (the default: the largest absolute change relative
            to the largest absolute original value) or any positive float (``0 < p < 1`` gives the
            quasi-norm ``(sum |v|^p)^(1/p)``).

    Returns:
        ``(N,)`` relative distortions.

    Raises:
        InvalidInputError: ``p`` is not a positive number, or an original image is all zeros (its norm is 0,
            so the relative distortion is undefined); the message lists the offending batch indices.

    Examples:
        >>> import math, torch
        >>> from privis.metrics import ald
        >>> x = torch.full((1, 1, 2, 2), 0.5)
        >>> ald(x, x + 0.1, p=math.inf)  # the largest change over the largest original value
        tensor([0.2000])
    """
    p = check_positive(p, "p", allow_inf=True)
    (xt, yt), numpy_out = prepare((x, "x"), (y, "y"))
    ref = torch.linalg.vector_norm(xt, ord=p, dim=_DIMS)
    zero = (ref == 0).nonzero().flatten()
    if zero.numel():
        shown = zero[:10].tolist()
        more = ", ..." if zero.numel() > 10 else ""
        raise InvalidInputError(
            f"ALD_p is undefined for all-zero original images (||x||_p = 0) at batch indices {shown}{more}"
        )
    dist = torch.linalg.vector_norm(yt - xt, ord=p, dim=_DIMS)
    return finish(dist / ref, numpy_out)
