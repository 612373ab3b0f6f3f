"""VisualMixer's partition (Algorithm 1, lines 3-24): region grids of every level, region statistics, the
split test.

The grid of each window is :func:`privis.metrics.regions.grid_cuts` (tiles from the top left, the last one
absorbing the remainder); finer levels refine coarser ones. :func:`window_levels` gives the windows
Algorithm 1 uses; :func:`_plan` decides, for a batch, which regions of each level are shuffled whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from privis.errors import InvalidInputError
from privis.metrics.regions import grid_cuts, grid_positions

__all__ = ["Statistic", "window_levels"]

_QUANT_STAT = 255  # quantisation of the keyed-mode split statistic (exact integer sums)

Statistic = Literal["auto", "vfe", "variance"]


@dataclass(frozen=True)
class _Group:
    """All *edge* regions of one level that share a shape (merged remainders): grid indices and pixels.

    Aligned ``s x s`` regions need no table: they are contiguous runs of the tile layout (see _Geometry).
    """

    level: int
    rows: np.ndarray  # (nb,) region row index at this level
    cols: np.ndarray  # (nb,) region column index
    pix: np.ndarray  # (nb, k) flat raster positions y * W + x, row-major inside the region
    lay: np.ndarray  # (nb, k) the same pixels' positions in the tile layout
    height: int
    width: int

    @property
    def k(self) -> int:
        return self.height * self.width


@dataclass(frozen=True)
class _Geometry:
    """Region grids of every level of a ``H x W`` image (nested cut points, edges absorb remainders).

    The tile layout: the image, padded to a multiple of the coarsest window ``s0`` (the *canvas*), is cut
    into ``s0 x s0`` tiles, each stored as one run of ``T = s0^2`` values in Morton (Z) order. Every aligned
    power-of-two region of any level is then one contiguous run inside its tile, so shuffling all aligned
    regions of an image is a single segmented sort of rows of length ``T`` (or of 64 consecutive values,
    i.e. several whole tiles, when ``T < 64``: the segment ids below are then positions in that row).
    """

    height: int
    width: int
    levels: tuple[int, ...]
    area: tuple[np.ndarray, ...]  # (nh, nw) pixels per region
    parent_rows: tuple[np.ndarray, ...]  # level l+1 region row -> level l region row
    parent_cols: tuple[np.ndarray, ...]
    aligned: tuple[np.ndarray, ...]  # (nh, nw) bool: region is an exact s x s block (not an edge merge)
    groups: tuple[_Group, ...]  # edge regions
    canvas: tuple[int, int]  # (Hp, Wp)
    tile: int  # values per sorted row: T = s0^2, or 64 consecutive values (several tiles) when T < 64
    seg_bits: int  # bits that hold a position inside a sorted row
    layout: np.ndarray  # (Hp * Wp,) canvas flat index of every layout position
    gather_index: np.ndarray  # (Hp * Wp,) raster index y * W + x of every layout position (padding -> 0)
    scatter_index: np.ndarray  # (H * W,) layout position of every raster pixel
    offsets: np.ndarray  # (Hp * Wp,) uint32 position of every layout value inside its tile
    tile_grid: tuple[np.ndarray, ...]  # per level: (Hp*Wp/s^2,) index into the padded (Hp/s, Wp/s) grid
    power_of_two: bool  # nested power-of-two levels (Morton order inside tiles) or a single window


def _morton(side: int) -> tuple[np.ndarray, np.ndarray]:
    """``(dy, dx)`` of the Morton index ``0 .. side^2 - 1`` inside a ``side x side`` tile (side a power of 2)."""
    m = np.arange(side * side)
    dy = np.zeros_like(m)
    dx = np.zeros_like(m)
    for bit in range(max(1, int(side).bit_length() - 1)):
        dx |= ((m >> (2 * bit)) & 1) << bit
        dy |= ((m >> (2 * bit + 1)) & 1) << bit
    return dy, dx


@lru_cache(maxsize=64)
def _geometry(height: int, width: int, levels: tuple[int, ...]) -> _Geometry:
    area, aligned, groups, prow, pcol = [], [], [], [], []
    s0 = levels[0]
    hp, wp = -(-height // s0) * s0, -(-width // s0) * s0
    power_of_two = all(s & (s - 1) == 0 for s in levels)
    if power_of_two:
        dy, dx = _morton(s0)
    else:
        dy, dx = np.divmod(np.arange(s0 * s0), s0)
    ty, tx = np.divmod(np.arange((hp // s0) * (wp // s0)), wp // s0)
    layout = (((ty * s0)[:, None] + dy[None, :]) * wp + (tx * s0)[:, None] + dx[None, :]).reshape(-1)
    inv_layout = np.empty_like(layout)
    inv_layout[layout] = np.arange(layout.size)
    row_of_prev = col_of_prev = None
    for li, s in enumerate(levels):
        ch, cw = grid_cuts(height, s), grid_cuts(width, s)
        row_of, col_of = grid_positions(ch), grid_positions(cw)
        hs, ws = np.diff(ch), np.diff(cw)
        area.append(np.outer(hs, ws).astype(np.float64))
        aligned.append((hs == s)[:, None] & (ws == s)[None, :])
        if row_of_prev is not None and col_of_prev is not None:
            prow.append(row_of_prev[ch[:-1]])
            pcol.append(col_of_prev[cw[:-1]])
        row_of_prev, col_of_prev = row_of, col_of
        for h in np.unique(hs):
            for w in np.unique(ws):
                if h == s and w == s:
                    continue
                ri, ci = np.nonzero(hs == h)[0], np.nonzero(ws == w)[0]
                rr, cc = np.repeat(ri, len(ci)), np.tile(ci, len(ri))
                ey, ex = np.divmod(np.arange(h * w), w)
                yy, xx = ch[rr][:, None] + ey[None, :], cw[cc][:, None] + ex[None, :]
                groups.append(_Group(li, rr, cc, (yy * width + xx).astype(np.int64),
                                     inv_layout[yy * wp + xx].astype(np.int64), int(h), int(w)))
    tile = s0 * s0
    if power_of_two and tile < 64 and (hp * wp) % 64 == 0:
        tile = 64  # sort rows of 64 (several whole tiles): numpy sorts short rows far slower per value
    tile_grid = []
    for s in levels:  # the level-s sub-blocks of every tile, in layout order (their first value's position)
        first = layout.reshape(-1, s * s)[:, 0]
        fy, fx = np.divmod(first, wp)
        tile_grid.append((fy // s) * (wp // s) + fx // s)
    ly, lx = np.divmod(layout, wp)
    gather = np.where((ly < height) & (lx < width), ly * width + lx, 0)
    scatter = inv_layout.reshape(hp, wp)[:height, :width].reshape(-1)
    return _Geometry(height, width, tuple(levels), tuple(area), tuple(prow), tuple(pcol), tuple(aligned), tuple(groups),
                     (hp, wp), tile, max(1, int(tile - 1).bit_length()), layout.astype(np.int64),
                     gather.astype(np.int64), scatter.astype(np.int64),
                     np.tile(np.arange(tile, dtype=np.uint32), hp * wp // tile), tuple(tile_grid), power_of_two)


def window_levels(height: int, width: int, ws_lower: int, ws_upper: int, *,
                  max_side_fraction: float | None = None) -> tuple[int, ...]:
    """Windows Algorithm 1 uses on a ``height x width`` image: ``s0, s0/2, ..., 2^floor(log2 WS_l)``.

    ``s0`` is the largest power of two ``<= min(WS_u, H, W)`` (lines 3-6); the smallest window is
    ``2^floor(log2 WS_l)`` (lines 11-12). ``max_side_fraction`` (beyond the paper) also keeps ``s0`` at most
    that fraction of the shorter side, but never below the smallest window.

    Raises:
        InvalidInputError: the image is smaller than the smallest window, or ``WS_u`` is below it.

    Examples:
        >>> window_levels(28, 28, ws_lower=3, ws_upper=7)
        (4, 2)
        >>> window_levels(224, 224, ws_lower=3, ws_upper=60)
        (32, 16, 8, 4, 2)
    """
    floor = 1 << int(math.floor(math.log2(ws_lower)))
    if min(height, width) < floor:
        raise InvalidInputError(f"images of {height}x{width} are smaller than the smallest VisualMixer window "
                                f"{floor}x{floor} (WS_l = {ws_lower})")
    if ws_upper < floor:
        raise InvalidInputError(f"WS_u = {ws_upper} is below the smallest window {floor} (WS_l = {ws_lower}); "
                                "raise bias_d or lower alpha / target_vfe")
    limit = min(ws_upper, height, width)
    if max_side_fraction is not None:
        limit = min(limit, max(floor, int(max_side_fraction * min(height, width))))
    top = 1 << int(math.floor(math.log2(limit)))
    levels = []
    s = top
    while s >= floor:
        levels.append(s)
        s //= 2
    return tuple(levels)


def _vfe_density_map(x: np.ndarray) -> np.ndarray:
    """Eq. 1-2 per pixel, mean over channels (Eq. 4): ``(n, C, H, W)`` -> ``(n, H, W)`` float32.

    Forward differences, 0 past the last row/column (the convention of :mod:`privis.metrics.vfe`). Computed
    channel by channel on flattened ``H * W`` rows (1-d contiguous loops, no ``(n, C, H, W)`` temporaries): the
    horizontal difference across a row end is overwritten by the last column's 0.
    """
    n, c, h, w = x.shape
    hw = h * w
    m = np.empty((n, hw), dtype=np.float32)
    tmp = np.empty((n, hw), dtype=np.float32)
    for ch in range(c):
        xc = x[:, ch].reshape(n, hw)
        target = m if ch == 0 else tmp
        np.subtract(xc[:, 1:], xc[:, :-1], out=target[:, :-1])
        np.square(target[:, :-1], out=target[:, :-1])
        target[:, w - 1 :: w] = 0  # last column (and the wrap to the next row)
        if ch:
            m += tmp
        np.subtract(xc[:, w:], xc[:, :-w], out=tmp[:, :-w])
        np.square(tmp[:, :-w], out=tmp[:, :-w])
        m[:, :-w] += tmp[:, :-w]
    if c > 1:
        m *= np.float32(1.0 / c)
    return m.reshape(n, h, w)


def _block_sum(a: np.ndarray, f: int) -> np.ndarray:
    """Sums of ``(..., R, C)`` over ``f x f`` blocks, the last block row/column absorbing the remainder.

    The rule of :func:`privis.metrics.regions.grid_cuts` (``R // f`` blocks), applied to pixels or to a finer
    grid of regions (the cut points are nested, so a level's sums are ``2 x 2`` block sums of the next finer
    level's).
    """
    r, c = a.shape[-2:]
    nr, nc = r // f, c // f
    cols = a[..., : nc * f : f].copy() if f > 1 else a[..., :nc].copy()
    for j in range(1, f):
        cols += a[..., j : nc * f : f]
    if c > nc * f:
        cols[..., -1] += a[..., nc * f :].sum(-1)
    out = cols[..., : nr * f : f, :].copy() if f > 1 else cols[..., :nr, :].copy()
    for i in range(1, f):
        out += cols[..., i : nr * f : f, :]
    if r > nr * f:
        out[..., -1, :] += cols[..., nr * f :, :].sum(-2)
    return out


def _region_sums(maps: np.ndarray, geo: _Geometry) -> list[np.ndarray]:
    """Sums of ``(..., H, W)`` maps over the regions of every level, finest level first then nested sums.

    Levels halve (:func:`window_levels`), so each level's sums are ``2 x 2`` block sums of the next finer one.

    Returns:
        Per level ``(..., nh, nw)``; exact when the maps hold integers (float64 sums below 2^53).
    """
    last = len(geo.levels) - 1
    sums: list[np.ndarray] = [np.empty(0)] * len(geo.levels)
    sums[last] = _block_sum(maps, geo.levels[last])
    for li in range(last - 1, -1, -1):
        sums[li] = _block_sum(sums[li + 1], geo.levels[li] // geo.levels[li + 1])
    return sums


def _region_statistics(x: np.ndarray, geo: _Geometry, statistic: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Per level, the split statistic of every region ``(n, nh, nw)`` float64, and each image's VFE.

    ``"vfe"``: VFE density (Eq. 2 / pixel count, channel mean). ``"variance"``: channel mean of the
    region's population variance of ``round(255 x)``, from exact integer sums (shuffle invariant).
    """
    n, _, h, w = x.shape
    dens = _vfe_density_map(x)
    if statistic == "vfe":
        sums = _region_sums(dens, geo)
        image_vfe = sums[0].reshape(n, -1).sum(1, dtype=np.float64) / (h * w)
        return [s / a for s, a in zip(sums, geo.area, strict=True)], image_vfe
    image_vfe = dens.reshape(n, -1).sum(1, dtype=np.float64) / (h * w)
    # exact integer sums: float32 while the largest region (an edge region is below (2 s0)^2 pixels) keeps
    # the sum of squares under 2^24, else float64 (exact below 2^53)
    dtype = np.float32 if (2 * geo.levels[0] - 1) ** 2 * _QUANT_STAT**2 < 2**24 else np.float64
    q = np.rint(np.multiply(x.astype(dtype, copy=False), _QUANT_STAT, dtype=dtype))
    s1, s2 = _region_sums(q, geo), _region_sums(q * q, geo)  # (n, C, nh, nw) per level, exact integers
    return [((b * a - s * s) / (a * a)).mean(1)
            for s, b, a in zip((v.astype(np.float64) for v in s1), (v.astype(np.float64) for v in s2), geo.area,
                               strict=True)], image_vfe


def _row_median(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=1)`` for a 2-d array: one sort for short rows, a partition for long ones."""
    k = a.shape[1]
    kth = [k // 2] if k % 2 else [k // 2 - 1, k // 2]
    s = np.sort(a, axis=1) if k <= 256 else np.partition(a, kth, axis=1)
    if k % 2:
        return s[:, k // 2]
    return (s[:, k // 2 - 1] + s[:, k // 2]) / 2


def _partition(stats: list[np.ndarray], geo: _Geometry, low_vfe_window: str) -> list[np.ndarray]:
    """Algorithm 1 lines 8-24 for a batch: which regions of each level are shuffled whole.

    Returns:
        Per level, a bool ``(n, nh, nw)`` mask of final regions; every pixel lies in exactly one.
    """
    n_levels = len(geo.levels)
    median = _row_median(stats[0].reshape(stats[0].shape[0], -1))[:, None, None]
    tested = np.ones(stats[0].shape, dtype=bool)
    forced = np.zeros_like(tested)
    finals = []
    for li in range(n_levels):
        if li == n_levels - 1:  # the smallest window: shuffle whatever is left (lines 11-14)
            finals.append(tested | forced)
            break
        high = stats[li] > median  # line 17
        low = tested & ~high
        if low_vfe_window == "current":
            finals.append(low)
            child_forced = np.zeros_like(low)
        else:  # "half": the region is shuffled in windows of half its size, i.e. its children are final
            finals.append(forced)
            child_forced = low
        pr, pc = geo.parent_rows[li], geo.parent_cols[li]
        tested = np.take(np.take(tested & high, pr, axis=1), pc, axis=2)  # line 21: split, examine quadrants
        forced = np.take(np.take(child_forced, pr, axis=1), pc, axis=2)
    return finals


@dataclass
class _ChunkPlan:
    finals: list[np.ndarray]
    counts: np.ndarray  # (n, R) final regions per size class (aligned per level, then edge groups)
    sizes: np.ndarray  # (R,) pixels per region of each class
    levels: np.ndarray  # (R,) level of each class
    vfe: np.ndarray  # (n,) image VFE before shuffling (Eq. 3-4)


def _plan(x: np.ndarray, geo: _Geometry, statistic: str, low_vfe_window: str) -> _ChunkPlan:
    stats, vfe = _region_statistics(x, geo, statistic)
    finals = _partition(stats, geo, low_vfe_window)
    counts = [(f & a).sum(axis=(1, 2)) for f, a in zip(finals, geo.aligned, strict=True)]
    counts += [finals[g.level][:, g.rows, g.cols].sum(1) for g in geo.groups]
    return _ChunkPlan(finals, np.stack(counts, 1), *_region_classes(geo), vfe)


def _region_classes(geo: _Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per region of each size class ``(R,)`` (aligned windows per level, then edge groups) and the
    level of each class ``(R,)``."""
    sizes = [s * s for s in geo.levels] + [g.k for g in geo.groups]
    return np.array(sizes), np.array(list(range(len(geo.levels))) + [g.level for g in geo.groups])

