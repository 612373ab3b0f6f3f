"""The region grid: non-overlapping ``window x window`` regions tiling an image from the top-left corner.

One home for the grid that VisualMixer shuffles in (Q. Li, Y. Zhang, J. Ren, Q. Li and Y. Zhang, "You Can
Use But Cannot Recognize: Preserving Visual Privacy in Deep Neural Networks", NDSS 2024, arXiv:2404.04098,
Section IV-D), that the ``invariants`` and ``shredder`` attacks average over, and that the region VFE
(:func:`privis.metrics.vfe_regions`, Eq. 2) sums over.

Cut points along an axis of ``size`` pixels are the multiples of ``window``; there are ``size // window``
regions. What happens to the ``size mod window`` pixels left over is the ``remainder`` rule:

* ``"absorb"`` (VisualMixer, the attacks): the last region absorbs them (it is ``window + size mod window``
  long), so every pixel lies in exactly one region and no region is smaller than ``window``. Cut points
  of windows ``s, s/2, s/4, ...`` are nested.
* ``"drop"`` (:func:`privis.metrics.vfe_regions`): the leftover pixels belong to no region, so every
  region is exactly ``window`` long (Eq. 2 sums over ``w x h`` regions).

Everything here is numpy on the CPU (grids are small: one entry per pixel of one image) and independent of
the images' values.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from privis.errors import InvalidInputError

__all__ = ["Remainder", "grid_cuts", "grid_positions", "region_grid"]

Remainder = Literal["absorb", "drop"]


def grid_cuts(size: int, window: int, *, remainder: Remainder = "absorb") -> np.ndarray:
    """Region boundaries along one axis: ``(size // window + 1,)`` int64.

    Args:
        size: pixels along the axis, ``>= window``.
        window: region length in pixels, ``>= 1``.
        remainder: ``"absorb"``: the last boundary is ``size`` (the last region absorbs the remainder);
            ``"drop"``: it is ``(size // window) * window`` (the remainder lies outside every region).

    Returns:
        Increasing boundaries starting at 0; region ``i`` covers ``cuts[i] .. cuts[i + 1] - 1``.

    Raises:
        InvalidInputError: ``window`` below 1 or above ``size``, or an unknown ``remainder``.

    Examples:
        >>> grid_cuts(10, 4).tolist()
        [0, 4, 10]
        >>> grid_cuts(10, 4, remainder="drop").tolist()
        [0, 4, 8]
    """
    if not 1 <= window <= size:
        raise InvalidInputError(f"region window must lie in [1, {size}] for an axis of {size} pixels, got {window}")
    if remainder not in ("absorb", "drop"):
        raise InvalidInputError(f"remainder must be 'absorb' or 'drop', got {remainder!r}")
    n = size // window
    return np.append(np.arange(n, dtype=np.int64) * window, size if remainder == "absorb" else n * window)


def grid_positions(cuts: np.ndarray) -> np.ndarray:
    """Index of the region (between consecutive ``cuts``) of every pixel ``0 .. cuts[-1] - 1``: int64.

    Examples:
        >>> grid_positions(grid_cuts(10, 4)).tolist()
        [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    """
    return np.searchsorted(cuts, np.arange(cuts[-1]), side="right").astype(np.int64) - 1


def region_grid(height: int, width: int, window: int) -> tuple[np.ndarray, int]:
    """Region id of every raster pixel of a ``height x width`` image on the ``"absorb"`` grid, and the count.

    Region ``(i, j)`` has id ``i * (width // window) + j``; ids run in raster order of the regions.

    Returns:
        ``(ids, count)``: ``ids`` ``(height * width,)`` int64 in ``[0, count)``, ``count = (height // window) *
        (width // window)``.

    Raises:
        InvalidInputError: ``window`` below 1 or above ``min(height, width)``.

    Examples:
        >>> ids, count = region_grid(5, 4, 2)
        >>> count
        4
        >>> ids.reshape(5, 4).tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3], [2, 2, 3, 3]]
    """
    rows = grid_positions(grid_cuts(height, window))
    cols = grid_positions(grid_cuts(width, window))
    n_cols = width // window
    return (rows[:, None] * n_cols + cols[None, :]).reshape(-1), (height // window) * n_cols
