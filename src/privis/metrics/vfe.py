"""Visual Feature Entropy (VFE), batched.

Li, Zhang, Ren, Li & Zhang, "You Can Use But Cannot Recognize: Preserving Visual Privacy in Deep Neural
Networks", NDSS 2024, arXiv:2404.04098, Section III.B, Eq. 1-4.

Definitions (``I`` one channel of one image, ``x`` the column index along the width ``N1 = W``, ``y`` the
row index along the height ``N2 = H``; ``I(x, y)`` is ``image[..., y, x]``):

- Eq. 1, forward-difference gradients: ``grad_x I(x, y) = I(x + 1, y) - I(x, y)`` and
  ``grad_y I(x, y) = I(x, y + 1) - I(x, y)``.
  **Border choice**: the last column has no right neighbour and the last row no lower neighbour; there the
  corresponding difference is taken as 0 (zero padding of the *difference*, equivalently a replicated
  border of the image). So the last column contributes only ``grad_y^2`` and the last row only
  ``grad_x^2``; the bottom-right pixel contributes 0.
- Per-pixel map: ``grad_x I^2 + grad_y I^2`` (:func:`vfe_map`).
- Eq. 2, region VFE: the map summed over a ``w x h`` region (:func:`vfe_regions`). The gradient at a
  pixel on a region's right/bottom edge uses the image's neighbour in the next region, because Eq. 2 sums
  the *image* gradient, not a gradient computed inside the region.
- Eq. 3, channel VFE: ``F / (N1 N2) * sum over regions of VFE_R``. When the regions partition the image,
  this is ``F`` times the mean of the map over all pixels, independent of the region size
  (:func:`vfe_channel`).
- Eq. 4, image VFE: the mean of Eq. 3 over the ``C`` channels (:func:`vfe`).

Pixel scale: privis images are in ``[0, 1]``. The paper states pixels as RGB values, i.e. ``0-255``; the
squared gradients make VFE on that scale ``255^2 = 65025`` times larger. Pass ``pixel_scale=255`` to get
the paper's convention from ``[0, 1]`` inputs (the image is multiplied by ``pixel_scale`` before Eq. 1).
``scale`` is the paper's constant ``F`` of Eq. 3 (default 1).

All functions take ``(N, C, H, W)`` batches (torch or numpy, finite values; numpy in, numpy out), are
vectorised over the batch and differentiable in torch.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from privis.errors import InvalidInputError
from privis.metrics._common import ImageBatch, check_int, check_positive, finish, prepare
from privis.metrics.regions import grid_cuts

__all__ = ["vfe_map", "vfe_regions", "vfe_channel", "vfe"]


def _vfe_map(images: Tensor, pixel_scale: float) -> Tensor:
    """Eq. 1 squared and summed per pixel, zero difference past the last row/column."""
    grad_x = F.pad(images[..., :, 1:] - images[..., :, :-1], (0, 1))  # along W, 0 in the last column
    grad_y = F.pad(images[..., 1:, :] - images[..., :-1, :], (0, 0, 0, 1))  # along H, 0 in the last row
    return (pixel_scale * pixel_scale) * (grad_x.square() + grad_y.square())


def vfe_map(images: ImageBatch, *, pixel_scale: float = 1.0) -> ImageBatch:
    """Per-pixel ``grad_x I^2 + grad_y I^2``: Eq. 1 gradients squared, the summand of VisualMixer Eq. 2.

    Args:
        images: ``(N, C, H, W)`` batch.
        pixel_scale: multiply pixel values by this before differencing (255 for the paper's 0-255
            convention on ``[0, 1]`` inputs; the map scales by ``pixel_scale**2``).

    Returns:
        ``(N, C, H, W)`` map; the forward difference past the last column/row is 0 (see the module notes).

    Examples:
        >>> import torch
        >>> from privis.metrics import vfe_map
        >>> edge = torch.zeros(1, 1, 4, 4)
        >>> edge[..., 2:] = 1.0  # a vertical edge between columns 1 and 2
        >>> vfe_map(edge)[0, 0]
        tensor([[0., 1., 0., 0.],
                [0., 1., 0., 0.],
                [0., 1., 0., 0.],
                [0., 1., 0., 0.]])
    """
    pixel_scale = check_positive(pixel_scale, "pixel_scale")
    (t,), numpy_out = prepare((images, "images"))
    return finish(_vfe_map(t, pixel_scale), numpy_out)


def _window(window: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(window, (tuple, list)):
        if len(window) != 2:
            raise InvalidInputError(f"window must be an int or a (height, width) pair, got {window!r}")
        return check_int(window[0], "window height"), check_int(window[1], "window width")
    size = check_int(window, "window")
    return size, size


def vfe_regions(images: ImageBatch, window: int | tuple[int, int], *, pixel_scale: float = 1.0) -> ImageBatch:
    """Region VFE (VisualMixer Eq. 2) of every non-overlapping ``wh x ww`` region of every channel.

    Regions tile the image from the top-left corner on the grid of :mod:`privis.metrics.regions` with
    ``remainder="drop"``: region ``(i, j)`` covers rows ``i*wh .. i*wh+wh-1`` and columns
    ``j*ww .. j*ww+ww-1``. When ``wh`` does not divide ``H`` (or ``ww`` does not divide ``W``), the leftover
    bottom rows (right columns) belong to no region and are ignored, so the regions then sum to less than
    the whole image. This differs on purpose from VisualMixer's grid (``remainder="absorb"``, the last
    region absorbing the leftover): Eq. 2 is a sum over ``wh x ww`` regions, and every region returned here
    has exactly that size, so region values compare across positions. Gradients are those of the whole
    image (a region's last row/column differences against the next region's pixels).

    Args:
        images: ``(N, C, H, W)`` batch.
        window: region size, an int for square regions or ``(wh, ww)`` (height, width); at most ``(H, W)``.
        pixel_scale: as in :func:`vfe_map`.

    Returns:
        ``(N, C, H // wh, W // ww)`` region sums.

    Raises:
        InvalidInputError: bad input, or a window that is not positive or larger than the image.
    """
    wh, ww = _window(window)
    pixel_scale = check_positive(pixel_scale, "pixel_scale")
    (t,), numpy_out = prepare((images, "images"))
    n, c, h, w = t.shape
    if wh > h or ww > w:
        raise InvalidInputError(f"window {wh}x{ww} is larger than the {h}x{w} images")
    rows, cols = grid_cuts(h, wh, remainder="drop"), grid_cuts(w, ww, remainder="drop")
    rh, rw = len(rows) - 1, len(cols) - 1
    covered = _vfe_map(t, pixel_scale)[..., : int(rows[-1]), : int(cols[-1])]
    regions = covered.reshape(n, c, rh, wh, rw, ww).sum(dim=(3, 5))
    return finish(regions, numpy_out)


def _vfe_channel(images: ImageBatch, scale: float, pixel_scale: float) -> tuple[Tensor, bool]:
    scale = check_positive(scale, "scale")
    pixel_scale = check_positive(pixel_scale, "pixel_scale")
    (t,), numpy_out = prepare((images, "images"))
    return scale * _vfe_map(t, pixel_scale).mean(dim=(2, 3)), numpy_out


def vfe_channel(images: ImageBatch, scale: float = 1.0, *, pixel_scale: float = 1.0) -> ImageBatch:
    """Single-channel VFE (VisualMixer Eq. 3) of every channel of every image.

    ``VFE(I) = F / (N1 N2) * sum_R VFE_R(R)``; over a partition of the image the region sums add up to the
    sum of the map over all pixels, so this is ``F * mean(vfe_map)``, whatever the region size.

    Args:
        images: ``(N, C, H, W)`` batch.
        scale: the paper's constant ``F`` (default 1).
        pixel_scale: as in :func:`vfe_map` (255 for the paper's 0-255 convention).

    Returns:
        ``(N, C)`` channel VFEs.

    Examples:
        >>> import torch
        >>> from privis.metrics import vfe_channel
        >>> edge = torch.zeros(1, 2, 4, 4)
        >>> edge[:, 0, :, 2:] = 1.0  # an edge in channel 0, channel 1 flat
        >>> vfe_channel(edge)  # 4 unit gradients over 16 pixels
        tensor([[0.2500, 0.0000]])
    """
    values, numpy_out = _vfe_channel(images, scale, pixel_scale)
    return finish(values, numpy_out)


def vfe(images: ImageBatch, scale: float = 1.0, *, pixel_scale: float = 1.0) -> ImageBatch:
    """Multi-channel VFE (VisualMixer Eq. 4): the mean over channels of :func:`vfe_channel` (Eq. 3).

    Args:
        images: ``(N, C, H, W)`` batch.
        scale: the paper's constant ``F`` (default 1).
        pixel_scale: as in :func:`vfe_map` (255 for the paper's 0-255 convention).

    Returns:
        ``(N,)`` image VFEs.

    Examples:
        >>> import torch
        >>> from privis.metrics import vfe
        >>> edge = torch.zeros(1, 2, 4, 4)
        >>> edge[:, 0, :, 2:] = 1.0
        >>> vfe(edge)  # the mean of the channel VFEs 0.25 and 0
        tensor([0.1250])
        >>> vfe(edge, pixel_scale=255.0)  # the paper's 0-255 convention scales by 255 ** 2
        tensor([8128.1250])
    """
    values, numpy_out = _vfe_channel(images, scale, pixel_scale)
    return finish(values.mean(dim=1), numpy_out)
