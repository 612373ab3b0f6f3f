"""The server's input layer for VisualMixer images (beyond the paper): sort every smallest-window cell."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from privis.errors import InvalidInputError
from privis.metrics.regions import region_grid

__all__ = ["WindowSort", "sort_within_windows"]


@lru_cache(maxsize=64)
def _cell_order(height: int, width: int, window: int) -> tuple[Tensor, Tensor]:
    """Cell id of every raster pixel on the ``window`` grid (:func:`privis.metrics.regions.region_grid`), and the
    pixels grouped by cell."""
    ids = torch.from_numpy(region_grid(height, width, window)[0])
    return ids, torch.argsort(ids, stable=True)


def sort_within_windows(images: Tensor, window: int) -> Tensor:
    """Put the pixels of every cell of the ``window`` grid in a canonical order: ascending, per channel.

    Shapes: ``(N, C, H, W) -> (N, C, H, W)``. The grid is the one VisualMixer's smallest window uses (cuts at
    multiples of ``window``, edge cells absorbing remainders); the sorted values fill the cell's positions in
    raster order. Every region of Algorithm 1 is a union of such cells, so the output is the same for every
    shuffle that keeps pixels inside their cells: a VisualMixer image and any re-draw of its cells give one
    image. It is computed from the protected image and the public grid alone. Beyond the paper.

    Args:
        images: ``(N, C, H, W)`` float tensor, any device.
        window: cell side, ``2 <= window <= min(H, W)``.

    Returns:
        ``(N, C, H, W)``, same dtype and device.

    Raises:
        InvalidInputError: ``images`` is not 4-D, or ``window`` is out of range.

    Examples:
        >>> import torch
        >>> sort_within_windows(torch.tensor([[[[4., 3.], [2., 1.]]]]), 2)
        tensor([[[[1., 2.],
                  [3., 4.]]]])
    """
    if images.ndim != 4:
        raise InvalidInputError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    if not 2 <= window <= min(h, w):
        raise InvalidInputError(f"window must lie in [2, {min(h, w)}] for {h}x{w} images, got {window}")
    cell, grouped = (t.to(images.device) for t in _cell_order(h, w, window))
    flat = images.reshape(n, c, h * w)
    by_value = torch.sort(flat, dim=2, stable=True).indices
    by_cell = torch.sort(cell[by_value], dim=2, stable=True).indices  # stable: ascending values inside a cell
    out = torch.empty_like(flat)
    out[..., grouped] = flat.gather(2, by_value.gather(2, by_cell))
    return out.reshape(n, c, h, w)


class WindowSort(nn.Module):
    """:func:`sort_within_windows` as a parameter-free layer: put it in front of a model that serves
    VisualMixer images and the model is exactly invariant to the order of pixels inside each cell.

    Examples:
        >>> import torch
        >>> layer = WindowSort(2)
        >>> x = torch.rand(1, 1, 4, 4)
        >>> torch.equal(layer(x), layer(x[..., [1, 0, 3, 2]]))  # columns swapped inside each 2x2 cell
        True
    """

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = int(window)

    def forward(self, images: Tensor) -> Tensor:
        return sort_within_windows(images, self.window)

    def extra_repr(self) -> str:
        return f"window={self.window}"

