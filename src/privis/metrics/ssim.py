"""Structural similarity (SSIM), batched and differentiable, matching scikit-image.

SSIM (Wang et al. 2004, Eq. 13) between two windows ``a`` and ``b`` is::

    SSIM(a, b) = (2 mu_a mu_b + C1) (2 sigma_ab + C2) / ((mu_a^2 + mu_b^2 + C1) (sigma_a^2 + sigma_b^2 + C2))

with ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2`` and ``L`` the data range. The local means, variances and
covariance come from a sliding window (uniform or Gaussian). This module reproduces exactly the
conventions of ``skimage.metrics.structural_similarity(x_i, y_i, data_range=..., channel_axis=0, ...)``
(scikit-image 0.26, ``_structural_similarity.py``):

- uniform window: ``scipy.ndimage.uniform_filter(size=win_size)``; Gaussian window
  (``gaussian_weights=True``): ``scipy.ndimage.gaussian_filter(sigma=sigma, truncate=3.5)``, whose radius
  is ``int(3.5 * sigma + 0.5)`` whatever ``win_size`` is (``win_size`` still sets the crop and ``NP``);
- borders: scipy's ``mode='reflect'`` (half-sample symmetric, ``d c b a | a b c d | d c b a``), repeated
  when the window is larger than the image;
- sample covariance: variances and covariance are multiplied by ``NP / (NP - 1)``, ``NP = win_size**2``,
  when ``use_sample_covariance`` (population covariance, factor 1, otherwise);
- the mean is taken over the map cropped by ``(win_size - 1) // 2`` pixels on every border, per channel,
  then over channels (all channels have the same size, so this equals the mean over everything).

The whole batch is filtered at once by two 1-D depthwise ``conv2d`` passes (the windows are separable), with
no Python loop over images or pixels, and everything is differentiable with autograd (SSIM is used as a
training loss). :func:`ssim` only filters the part of the image that survives the crop, so the uniform
window needs no padding at all.

The Veil and VisualMixer papers report ``|SSIM|`` (SSIM can be negative for anti-correlated images):
use :func:`abs_ssim`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from privis.errors import InvalidInputError
from privis.metrics._common import (
    ImageBatch,
    check_int,
    check_nonnegative,
    check_positive,
    finish,
    prepare,
)

__all__ = ["ssim", "ssim_map", "abs_ssim", "ssim_window"]

_TRUNCATE = 3.5
"""scikit-image's Gaussian truncation for SSIM: an 11-tap filter at the default sigma of 1.5."""


def _gaussian_kernel1d(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian of radius ``int(3.5 * sigma + 0.5)``, as ``scipy.ndimage.gaussian_filter``."""
    radius = int(_TRUNCATE * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype=dtype, device=device)


def _uniform_kernel1d(size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Box filter of ``size`` taps, as ``scipy.ndimage.uniform_filter``."""
    return torch.full((size,), 1.0 / size, dtype=dtype, device=device)


def _reflect_index(n: int, pad: int, device: torch.device) -> Tensor:
    """Indices of a length-``n`` axis padded by ``pad`` on both sides in scipy's ``'reflect'`` mode.

    Half-sample symmetric extension with period ``2n`` (``... b a | a b ... y z | z y ...``), valid for any
    ``pad`` (including ``pad > n``, where the reflection repeats, exactly as scipy does).
    """
    idx = torch.arange(-pad, n + pad, device=device).remainder(2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def _reflect_pad(images: Tensor, pad: int) -> Tensor:
    """Pad the last two axes of ``images`` by ``pad`` on every side in scipy's ``'reflect'`` mode."""
    if pad == 0:
        return images
    h, w = images.shape[-2:]
    if pad <= h and pad <= w:  # one reflection: concatenated flipped slices (fast)
        images = torch.cat((images[..., :pad, :].flip(-2), images, images[..., h - pad :, :].flip(-2)), dim=-2)
        return torch.cat((images[..., :pad].flip(-1), images, images[..., w - pad :].flip(-1)), dim=-1)
    # repeated reflections (window wider than the image): general index map
    images = images.index_select(-2, _reflect_index(h, pad, images.device))
    return images.index_select(-1, _reflect_index(w, pad, images.device))


def _local_moments(x: Tensor, y: Tensor, kernel: Tensor, pad: int) -> tuple[Tensor, ...]:
    """Filtered ``x, y, x*x, y*y, x*y`` of ``(N, C, H, W)`` batches with a separable 1-D ``kernel``.

    The images are padded by ``pad`` (scipy ``'reflect'``) and then filtered without further padding, so
    each output has size ``H + 2 * pad - len(kernel) + 1``: ``pad = radius`` gives scipy's 'same'-size
    output; a smaller ``pad`` gives only the central part (all :func:`ssim` needs after its crop).
    The five quantities of all channels are filtered together by one depthwise (``groups=5C``) ``conv2d``
    per axis, laid out channels-last (much faster on CPU than single-channel convolutions).

    Returns:
        ``(mu_x, mu_y, mu_xx, mu_yy, mu_xy)``, each ``(N, C, H', W')``.
    """
    n, c = x.shape[:2]
    k = kernel.numel()
    xl = _reflect_pad(x, pad).permute(0, 2, 3, 1)  # (N, Hp, Wp, C)
    yl = _reflect_pad(y, pad).permute(0, 2, 3, 1)
    hp, wp = xl.shape[1:3]
    planes = torch.stack((xl, yl, xl * xl, yl * yl, xl * yl), dim=3)  # (N, Hp, Wp, 5, C)
    planes = planes.reshape(n, hp, wp, 5 * c).permute(0, 3, 1, 2)  # (N, 5C, Hp, Wp), channels-last
    groups = 5 * c
    out = F.conv2d(planes, kernel.view(1, 1, k, 1).repeat(groups, 1, 1, 1), groups=groups)
    out = F.conv2d(out, kernel.view(1, 1, 1, k).repeat(groups, 1, 1, 1), groups=groups)
    return out.unflatten(1, (5, c)).unbind(dim=1)


def ssim_window(height: int, width: int, preferred: int = 7) -> int:
    """The SSIM window for ``height x width`` images: the largest odd side ``<= preferred`` that fits (at least 1).

    Every caller that scores small images (8x8 digits, crops) picks its ``win_size`` here, so all figures
    use one rule: 7 (scikit-image's default) on images of at least 7x7, 5 on 5x5 and 6x6, 1 on 1xW.

    Args:
        height, width: the image size in pixels (``>= 1``).
        preferred: the window wanted when the image is large enough (odd, ``>= 1``).

    Returns:
        An odd ``int`` in ``[1, preferred]``.

    Examples:
        >>> ssim_window(28, 28), ssim_window(8, 8), ssim_window(6, 32), ssim_window(1, 5)
        (7, 7, 5, 1)
    """
    win = max(1, min(preferred, height, width))
    return win - (1 - win % 2)


def _check_params(
    win_size: int | None,
    gaussian_weights: bool,
    sigma: float,
    use_sample_covariance: bool,
    data_range: float,
    k1: float,
    k2: float,
) -> tuple[int, float, float, float, float]:
    """Validate the SSIM parameters; resolve ``win_size=None`` to scikit-image's default."""
    data_range = check_positive(data_range, "data_range")
    k1 = check_nonnegative(k1, "k1")
    k2 = check_nonnegative(k2, "k2")
    sigma = check_positive(sigma, "sigma")
    if win_size is None:  # scikit-image's default
        win_size = 2 * int(_TRUNCATE * sigma + 0.5) + 1 if gaussian_weights else 7
    win_size = check_int(win_size, "win_size", minimum=1)
    if win_size % 2 != 1:
        raise InvalidInputError(f"win_size must be odd, got {win_size}")
    if use_sample_covariance and win_size == 1:
        raise InvalidInputError("win_size=1 has no sample covariance: use win_size >= 3")
    return win_size, sigma, data_range, k1, k2


def _ssim_map(
    x: ImageBatch,
    y: ImageBatch,
    data_range: float,
    win_size: int | None,
    gaussian_weights: bool,
    sigma: float,
    use_sample_covariance: bool,
    k1: float,
    k2: float,
    crop: bool,
) -> tuple[Tensor, bool]:
    """Tensor SSIM map and whether the caller wants numpy back; see :func:`ssim_map`."""
    win_size, sigma, data_range, k1, k2 = _check_params(
        win_size, gaussian_weights, sigma, use_sample_covariance, data_range, k1, k2
    )
    (xt, yt), numpy_out = prepare((x, "x"), (y, "y"))
    n, c, h, w = xt.shape
    if h < win_size or w < win_size:
        raise InvalidInputError(
            f"images of size {h}x{w} are smaller than win_size={win_size}: lower win_size to an odd "
            f"value <= {min(h, w)}"
        )
    kernel = (
        _gaussian_kernel1d(sigma, xt.dtype, xt.device)
        if gaussian_weights
        else _uniform_kernel1d(win_size, xt.dtype, xt.device)
    )
    crop_px = (win_size - 1) // 2 if crop else 0
    ux, uy, uxx, uyy, uxy = _local_moments(xt, yt, kernel, max(0, (kernel.numel() - 1) // 2 - crop_px))
    if crop_px and kernel.numel() < win_size:  # Gaussian narrower than the crop: trim the surplus
        extra = crop_px - (kernel.numel() - 1) // 2
        ux, uy, uxx, uyy, uxy = (m[..., extra:-extra, extra:-extra] for m in (ux, uy, uxx, uyy, uxy))

    np_ = win_size * win_size
    cov_norm = np_ / (np_ - 1) if use_sample_covariance else 1.0
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s, numpy_out


def ssim_map(
    x: ImageBatch,
    y: ImageBatch,
    *,
    data_range: float = 1.0,
    win_size: int | None = 7,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    use_sample_covariance: bool = True,
    k1: float = 0.01,
    k2: float = 0.03,
    crop: bool = True,
) -> ImageBatch:
    """Local SSIM map (Wang et al. 2004, Eq. 13), per pixel and channel, for a batch.

    Args:
        x, y: image batches of shape ``(N, C, H, W)`` (torch or numpy), same shape, finite values.
        data_range: ``L``, the span of possible values (1.0 for the canonical ``[0, 1]`` form, 255 for
            8-bit data).
        win_size: odd side of the sliding window; sets the uniform window, the border crop
            ``(win_size - 1) // 2`` and the sample-covariance factor ``NP / (NP - 1)``, ``NP = win_size**2``.
            ``None`` takes scikit-image's default (7, or ``2 * int(3.5 * sigma + 0.5) + 1`` for Gaussian
            weights).
        gaussian_weights: weight the window by a Gaussian of std ``sigma`` truncated at 3.5 sigma instead
            of a uniform window (the Gaussian's size does not depend on ``win_size``, as in scikit-image).
        sigma: standard deviation of the Gaussian window.
        use_sample_covariance: normalise (co)variances by ``NP - 1`` rather than ``NP``.
        k1, k2: the constants of ``C1 = (k1 L)^2`` and ``C2 = (k2 L)^2``.
        crop: drop the ``(win_size - 1) // 2`` border pixels that :func:`ssim` does not average.

    Returns:
        ``(N, C, H', W')`` map with ``H' = H - 2 * ((win_size - 1) // 2)`` (likewise ``W'``) when ``crop``,
        else ``(N, C, H, W)`` (scikit-image's ``full=True`` image ``S``). Numpy in, numpy out.

    Raises:
        InvalidInputError: shapes differ, not 4-D, NaN/inf, bad parameters, or ``H`` or ``W`` smaller than
            ``win_size`` (lower ``win_size``).

    Examples:
        >>> import torch
        >>> from privis.metrics import ssim_map
        >>> x = torch.linspace(0, 1, 100).reshape(1, 1, 10, 10)
        >>> ssim_map(x, x).shape  # the 3-pixel border of the 7x7 window cropped
        torch.Size([1, 1, 4, 4])
    """
    s, numpy_out = _ssim_map(x, y, data_range, win_size, gaussian_weights, sigma, use_sample_covariance, k1, k2, crop)
    return finish(s, numpy_out)


def ssim(
    x: ImageBatch,
    y: ImageBatch,
    *,
    data_range: float = 1.0,
    win_size: int | None = 7,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    use_sample_covariance: bool = True,
    k1: float = 0.01,
    k2: float = 0.03,
) -> ImageBatch:
    """Mean SSIM per image (Wang et al. 2004, Eq. 13 averaged as their mean SSIM, Eq. 17).

    Equals, for every ``i``, ``skimage.metrics.structural_similarity(x[i], y[i], data_range=data_range,
    channel_axis=0, win_size=win_size, gaussian_weights=gaussian_weights, sigma=sigma,
    use_sample_covariance=use_sample_covariance, K1=k1, K2=k2)`` up to floating-point rounding, but computed
    for the whole batch at once and differentiable in torch. See :func:`ssim_map` for the arguments.

    Returns:
        ``(N,)``: the cropped SSIM map averaged per channel, then over channels. Numpy in, numpy out.

    Examples:
        >>> import torch
        >>> from privis.metrics import ssim
        >>> x = torch.linspace(0, 1, 100).reshape(1, 1, 10, 10)
        >>> ssim(x, x)
        tensor([1.])
        >>> bool(ssim(x, 1 - x) < 0)  # an inverted image has negative SSIM
        True
    """
    s, numpy_out = _ssim_map(x, y, data_range, win_size, gaussian_weights, sigma, use_sample_covariance, k1, k2, True)
    return finish(s.mean(dim=(2, 3)).mean(dim=1), numpy_out)


def abs_ssim(
    x: ImageBatch,
    y: ImageBatch,
    *,
    data_range: float = 1.0,
    win_size: int | None = 7,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    use_sample_covariance: bool = True,
    k1: float = 0.01,
    k2: float = 0.03,
) -> ImageBatch:
    """``|SSIM|`` per image, the figure the Veil and VisualMixer papers report; arguments as :func:`ssim`.

    Returns:
        ``(N,)`` absolute mean SSIM. Numpy in, numpy out.

    Examples:
        >>> import torch
        >>> from privis.metrics import abs_ssim, ssim
        >>> x = torch.linspace(0, 1, 100).reshape(1, 1, 10, 10)
        >>> torch.equal(abs_ssim(x, 1 - x), ssim(x, 1 - x).abs())
        True
    """
    s, numpy_out = _ssim_map(x, y, data_range, win_size, gaussian_weights, sigma, use_sample_covariance, k1, k2, True)
    return finish(s.mean(dim=(2, 3)).mean(dim=1).abs(), numpy_out)
