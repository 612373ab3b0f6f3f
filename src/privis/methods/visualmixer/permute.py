"""VisualMixer's permutations: table-driven tile permutations, sorted shuffles, the gather, and the
functional core :func:`shuffle_regions` (which hands the counter scheme on a GPU to
:mod:`~privis.methods.visualmixer.counter`).

How random words become permutations is described in the package notes (:mod:`privis.methods.visualmixer`,
"Randomness and the keyed mode"); the layouts in :class:`privis.methods.visualmixer.partition._Geometry`.
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from privis.errors import InvalidInputError
from privis.methods.base import check_images
from privis.methods.visualmixer import counter
from privis.methods.visualmixer.keys import _counter_words, _image_keys, _image_stream, content_ids, id_bytes
from privis.methods.visualmixer.partition import _ChunkPlan, _Geometry, _geometry, _plan, _region_classes

__all__ = ["PERMUTATIONS", "ShuffleStats", "shuffle_regions"]

PERMUTATIONS = ("table", "counter")

_CHUNK_VALUES = 1 << 20
_GATHER_PIECE = 32768  # torch's parallel grain size: smaller index_select calls stay single-threaded
_LO, _HI = (0, 1) if sys.byteorder == "little" else (1, 0)  # 32-bit halves of a uint64 viewed as 2 x uint32

# ------------------------------------------------------------------- table-driven tile permutations
_FAST_TILES = (2, 4)  # coarsest windows whose tiles are permuted from tables instead of by sorting
_N8 = 40320  # 8!
_N_SPLIT = 12870  # C(16, 8)
_S4_PAIRS = 576  # 24^2
_U64 = np.uint64


@dataclass(frozen=True)
class _PermTables:
    """Lookup tables that turn a few uniform integers per tile into a uniform permutation of the tile.

    Positions are raster order inside the tile (``dy * s0 + dx``). Every table row maps an *output* position
    to the *source* position it takes its value from.

    * ``s4`` ``(24, 4)``: all permutations of a ``2 x 2`` window.
    * ``s8`` ``(8!, 8)``: all permutations of 8 positions.
    * ``split`` ``(C(16,8), 16)``: row ``a`` sends output positions 0-7 (the tile's top half) to the ``a``-th
      8-subset of the 16 positions, in increasing order, and 8-15 to its complement. ``split[a][inner]``
      with ``inner`` = a uniform permutation of the top half and, independently, of the bottom half is a
      uniform permutation of the ``4 x 4`` tile (a uniform coset representative of ``S_8 x S_8`` in
      ``S_16`` times a uniform element of ``S_8 x S_8``): ``C(16,8) * 8! * 8! = 16!``.
    * ``quads`` ``(576, 8)``: one half (two rows) of a ``4 x 4`` tile split into its two ``2 x 2`` quadrants,
      each permuted by its own ``s4`` row: row ``24 * c0 + c1``.
    """

    s4: np.ndarray
    s8: np.ndarray
    split: np.ndarray
    quads: np.ndarray


@lru_cache(maxsize=1)
def _perm_tables() -> _PermTables:
    import itertools

    s4 = np.array(list(itertools.permutations(range(4))), dtype=np.uint8)
    s8 = np.array(list(itertools.permutations(range(8))), dtype=np.uint8)
    split = np.array([list(a) + [v for v in range(16) if v not in a] for a in itertools.combinations(range(16), 8)],
                     dtype=np.uint8)
    k = np.arange(8)
    row, col = k // 4, k % 4
    qx, o = col // 2, row * 2 + col % 2  # quadrant (left/right) and raster position inside the 2x2 quadrant
    c = np.arange(_S4_PAIRS)
    src = np.where(qx[None, :] == 0, s4[c // 24][:, o], s4[c % 24][:, o])  # source position inside the quadrant
    quads = np.ascontiguousarray((src // 2) * 4 + 2 * qx[None, :] + src % 2, dtype=np.uint8)
    return _PermTables(s4, s8, split, quads)


def _uniform(words: np.ndarray, m: int) -> np.ndarray:
    """``floor(words * m / 2^64)`` for uint64 ``words`` and ``m < 2^31``: a uniform draw in ``[0, m)``.

    Exact 64 x 31-bit multiply-shift (bias below ``m / 2^64`` per outcome), as int64.
    """
    hi = words >> _U64(32)
    lo = words & _U64(0xFFFFFFFF)
    lo *= _U64(m)
    lo >>= _U64(32)
    hi *= _U64(m)
    hi += lo
    hi >>= _U64(32)
    return hi.view(np.int64)


def _fast_tiles(geo: _Geometry) -> bool:
    return geo.power_of_two and geo.levels[0] in _FAST_TILES


@lru_cache(maxsize=64)
def _tile_origin(height: int, width: int, s0: int) -> np.ndarray:
    """Raster index of the top-left pixel of every pixel's ``s0`` tile, ``(H * W,)`` int32 (int64 if huge)."""
    yy, xx = np.arange(height), np.arange(width)
    origin = (yy - yy % s0)[:, None] * width + (xx - xx % s0)[None, :]
    return origin.reshape(-1).astype(np.int32 if height * width < 2**31 else np.int64)


def _tile_status(plan: _ChunkPlan, geo: _Geometry, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Which canvas tiles are final aligned ``s0`` regions ``(n, nty, ntx)`` bool, and which of their ``2 x 2``
    quadrants are final aligned regions of the next level, coded per half tile ``(n, nty, 2, ntx)`` uint8 as
    ``left + 2 * right`` (None: one level)."""
    s0 = geo.levels[0]
    hp, wp = geo.canvas
    nty, ntx = hp // s0, wp // s0
    whole = np.zeros((n, nty, ntx), dtype=bool)
    mask = plan.finals[0] & geo.aligned[0]
    whole[:, : mask.shape[1], : mask.shape[2]] = mask
    if len(geo.levels) == 1:
        return whole, None
    quad = np.zeros((n, 2 * nty, 2 * ntx), dtype=np.uint8)
    mask = plan.finals[1] & geo.aligned[1]
    quad[:, : mask.shape[1], : mask.shape[2]] = mask
    code = quad[:, :, 0::2] + 2 * quad[:, :, 1::2]  # (n, 2 nty, ntx): left + 2 * right per half tile
    return whole, code.reshape(n, nty, 2, ntx)


def _tile_words(geo: _Geometry, planes: int) -> int:
    """Random 64-bit words one image needs for its tiles: two per tile and plane."""
    s0 = geo.levels[0]
    return 2 * planes * (geo.canvas[0] // s0) * (geo.canvas[1] // s0)


def _bytes_word(values: Sequence[int]) -> np.uint64:
    """Eight bytes as one uint64 word in memory order (so byte-wise work on words is endian-agnostic)."""
    return np.array(values, dtype=np.uint8).view(np.uint64)[0]


_ID_WORDS = (_bytes_word(range(8)), _bytes_word(range(8, 16)))  # identity: each position takes itself
_PLUS8 = _bytes_word([8] * 8)  # adds 8 to every byte (no carries: bytes <= 7)
# byte masks of the left and right 2x2 quadrant inside a half tile (two rows of four positions)
_QUAD_MASKS = np.array([_bytes_word([0] * 8), _bytes_word([255, 255, 0, 0] * 2), _bytes_word([0, 0, 255, 255] * 2),
                        _bytes_word([255] * 8)], dtype=np.uint64)


def _tile_permutations(plan: _ChunkPlan, geo: _Geometry, n: int, planes: int, words: np.ndarray) -> np.ndarray:
    """Source position of every output position of every tile: ``(n, planes, nty, ntx, s0^2)`` uint8.

    ``words`` ``(n, planes * nty * ntx * 2)`` uint64 random words, two per tile and plane. A tile that is a
    final ``s0`` region gets a uniform permutation of its ``s0^2`` pixels (``s0 = 2``: ``s4[u]``; ``s0 = 4``:
    ``split[a][s8[e0], 8 + s8[e1]]``); a tile cut into ``2 x 2`` quadrants gets an independent uniform
    permutation of every final quadrant (``quads``); everything else (edge regions, padding) stays in place.
    Rows of 16 positions are handled as two uint64 words (a row of 4 as one uint32).
    """
    tables = _perm_tables()
    s0 = geo.levels[0]
    nty, ntx = geo.canvas[0] // s0, geo.canvas[1] // s0
    whole, quad = _tile_status(plan, geo, n)
    shape = (n, planes, nty, ntx)
    w = words.reshape(-1, 2)
    sel = np.flatnonzero(np.broadcast_to(whole[:, None], shape))
    if s0 == 2:
        perm = np.empty(w.shape[0], dtype=np.uint32)
        perm[:] = np.arange(4, dtype=np.uint8).view(np.uint32)[0]
        perm[sel] = tables.s4.view(np.uint32)[_uniform(w[sel, 0], 24), 0]
        return perm.view(np.uint8).reshape(*shape, 4)
    perm = np.empty((w.shape[0], 2), dtype=np.uint64)
    perm[:, 0], perm[:, 1] = _ID_WORDS
    if quad is not None:
        both = quad[:, :, 0] + quad[:, :, 1]  # (n, nty, ntx): 0 no final quadrant, 6 all four
        qsel = np.flatnonzero(np.broadcast_to((both > 0)[:, None], shape))
        if qsel.size:
            u = _uniform(w[qsel, 0], _S4_PAIRS * _S4_PAIRS)
            top = np.floor(u / float(_S4_PAIRS)).astype(np.int64)  # exact: u < 2^31
            quads = tables.quads.view(np.uint64)[:, 0]
            partial = bool((both % 6).any())  # a tile with some quadrants final, not all (edges only)
            for half, first in enumerate((quads[top], quads[u - top * _S4_PAIRS] + _PLUS8)):
                if partial:  # quadrants that are not final (edge tiles only) keep the identity
                    mask = np.broadcast_to(_QUAD_MASKS[quad[:, :, half]][:, None], shape).reshape(-1)[qsel]
                    first = (first & mask) | (_ID_WORDS[half] & ~mask)
                perm[qsel, half] = first
    if sel.size:
        a = _uniform(w[sel, 0], _N_SPLIT)
        e = _uniform(w[sel, 1], _N8 * _N8)
        e0 = np.floor(e / float(_N8)).astype(np.int64)  # exact: e < 2^31
        s8 = tables.s8.view(np.uint64)[:, 0]
        inner = np.empty((sel.size, 2), dtype=np.uint64)
        inner[:, 0] = s8[e0]
        inner[:, 1] = s8[e - e0 * _N8] + _PLUS8
        flat = inner.view(np.uint8).astype(np.int32)  # row a of the split table, column inner
        flat += (a * 16).astype(np.int32)[:, None]
        full = np.take(tables.split.reshape(-1), flat).view(np.uint64)
        perm[sel, 0] = full[:, 0]
        perm[sel, 1] = full[:, 1]
    return perm.view(np.uint8).reshape(*shape, 16)


def _tile_sources(perm: np.ndarray, geo: _Geometry) -> np.ndarray:
    """Raster source index of every output pixel ``(n, planes, H * W)`` int32 (int64 past 2^31 pixels)."""
    n, planes, nty, ntx, t = perm.shape
    s0 = geo.levels[0]
    h, w = geo.height, geo.width
    wide = np.uint16 if s0 == 2 else np.uint32  # one tile row of s0 uint8 values as one word: cheap transpose
    rast = np.ascontiguousarray(perm.view(wide).reshape(n, planes, nty, ntx, s0).transpose(0, 1, 2, 4, 3))
    rast = rast.view(np.uint8).reshape(n, planes, nty * s0, ntx * s0)
    if rast.shape[2:] != (h, w):
        rast = np.ascontiguousarray(rast[:, :, :h, :w])
    # position m = dy * s0 + dx inside the tile -> raster offset dy * W + dx = m + (m >> log2 s0) * (W - s0)
    r = rast.reshape(n, planes, h * w).astype(np.int32 if h * w < 2**31 else np.int64)
    src = np.right_shift(r, s0.bit_length() - 1)
    src *= w - s0
    src += r
    src += _tile_origin(h, w, s0)
    return src


def _shuffle_tiles(x: np.ndarray, out: np.ndarray, geo: _Geometry, plan: _ChunkPlan, *, planes: int,
                   words: np.ndarray, inverse: bool) -> None:
    """Permute the aligned regions of ``x`` ``(n, C, H, W)`` into ``out`` from table-driven tile permutations;
    edge pixels are copied (their regions are shuffled by :func:`_shuffle_edges`)."""
    n, c, h, w = x.shape
    hw = h * w
    src = _tile_sources(_tile_permutations(plan, geo, n, planes, words), geo)
    xp, op = x.reshape(n, c, hw), out.reshape(n, c, hw)
    if hw < 4096:  # small images: one gather over the chunk (plane offsets added) beats a loop over planes
        src = (src + (np.arange(n * c, dtype=np.intp) * hw).reshape(n, c, 1)).reshape(-1)
        xp, op = x.reshape(1, 1, -1), out.reshape(1, 1, -1)
        src = src.reshape(1, 1, -1)
        n = c = 1
    for i in range(n):
        for ch in range(c):
            idx = src[i, ch if planes > 1 else 0]  # planes == 1: one permutation for every channel
            if inverse:
                op[i, ch, idx] = xp[i, ch]
            else:
                _gather(xp[i, ch], idx, op[i, ch])


def _gather(values: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = values[index]`` for 1-d arrays (``index`` int32 or int64, in range).

    ``torch.index_select`` takes int32 indices and runs about twice as fast as ``np.take`` here; it is called
    on pieces below torch's parallel grain size so that it stays on the calling (pool) thread.
    """
    v, i, o = torch.from_numpy(values), torch.from_numpy(index), torch.from_numpy(out)
    for a in range(0, index.shape[0], _GATHER_PIECE):
        torch.index_select(v, 0, i[a : a + _GATHER_PIECE], out=o[a : a + _GATHER_PIECE])


def _segment_map(plan: _ChunkPlan, geo: _Geometry, n: int) -> np.ndarray:
    """``(n, P)`` uint32 segment start of every layout position (its own offset where nothing moves).

    Inside a tile, the values of one aligned final region of window ``s`` occupy ``s^2`` consecutive
    positions starting at a multiple of ``s^2``; that start is the segment id. Edge regions and padding get
    their own offset (segments of one value), so the tile sort leaves them in place.
    """
    hp, wp = geo.canvas
    low = np.zeros((n, hp * wp), dtype=np.uint32)
    for li, s in enumerate(geo.levels):
        mask = plan.finals[li] & geo.aligned[li]
        grid = np.zeros((n, hp // s, wp // s), dtype=np.uint32)
        grid[:, : mask.shape[1], : mask.shape[2]] = mask
        value = np.uint32(s * s - 1 if geo.power_of_two else s * s)
        low += np.repeat(grid.reshape(n, -1)[:, geo.tile_grid[li]] * value, s * s, axis=1)
    offset = geo.offsets
    if geo.power_of_two:
        return offset & ~low
    return np.where(low > 0, np.uint32(0), offset)  # a single window: an aligned tile is one segment


def _shuffle_chunk(x: np.ndarray, out: np.ndarray, geo: _Geometry, plan: _ChunkPlan, *,
                   planes: int, keys: np.ndarray | None, rng: np.random.Generator | None,
                   inverse: bool) -> None:
    """Permute every final region of ``x`` ``(n, C, H, W)`` float32 into ``out`` (same shape).

    ``keys`` ``(n, planes, P)`` uint32 per-image keys in layout order (seeded/keyed mode), else ``rng`` draws
    fresh ones. ``planes`` is ``C`` (independent per-channel permutations) or 1 (one for all channels).
    Aligned regions: one sort of 64-bit words ``segment << (64 - b) | random << 32 | payload`` per tile row
    (payload = the value's bits, or its position when the permutation itself is needed). Edge regions:
    the same with one row per region.
    """
    n, c, h, w = x.shape
    hp, wp = geo.canvas
    size, tile, bits = hp * wp, geo.tile, geo.seg_bits
    # (n, c, P) tile layout; padding positions hold a copy of pixel 0 but form segments of their own
    xl = np.take(x.reshape(n, c, h * w), geo.gather_index, axis=2)
    if keys is None:
        assert rng is not None
        r32 = rng.bit_generator.random_raw((n * planes * size + 1) // 2).view(np.uint32)
        r32 = r32[: n * planes * size].reshape(n, planes, size)
    else:
        r32 = keys
    packed = np.empty((n, c, size), dtype=np.uint64)
    words = packed.view(np.uint32).reshape(n, c, size, 2)  # [..., _LO] low 32 bits, [..., _HI] high 32 bits
    shift = np.uint32(bits)
    shifted = np.right_shift(r32, shift) if keys is not None else np.right_shift(r32, shift, out=r32)
    np.bitwise_or((_segment_map(plan, geo, n) << np.uint32(32 - bits))[:, None, :], shifted, out=words[..., _HI])
    fused = keys is None and planes == c and not inverse
    words[..., _LO] = xl.view(np.uint32) if fused else geo.offsets
    rows = packed.reshape(-1, tile)
    rows.sort(axis=-1)
    if fused:
        yl = words[..., _LO].view(np.float32)  # strided view of the payloads
    else:
        perm = (rows & np.uint64(0xFFFFFFFF)).astype(np.intp)  # output slot t takes input slot perm[t]
        src = xl.reshape(-1, tile)
        if inverse:
            yl = np.empty_like(src)
            np.put_along_axis(yl, perm, src, axis=-1)
        else:
            yl = np.take_along_axis(src, perm, axis=-1)
        yl = yl.reshape(n, c, size)
    np.take(yl, geo.scatter_index, axis=2, out=out.reshape(n, c, h * w))  # back to raster order
    _shuffle_edges(x, out, geo, plan, planes=planes, keys=keys, rng=rng, inverse=inverse)


def _shuffle_edges(x: np.ndarray, out: np.ndarray, geo: _Geometry, plan: _ChunkPlan, *,
                   planes: int, keys: np.ndarray | None, rng: np.random.Generator | None,
                   inverse: bool) -> None:
    """Shuffle the final edge regions (merged remainders), one sorted row per region and plane."""
    n, c, h, w = x.shape
    hw = h * w
    xf, of = x.reshape(-1), out.reshape(-1)
    size = geo.canvas[0] * geo.canvas[1]
    for g in geo.groups:
        img, blk = np.nonzero(plan.finals[g.level][:, g.rows, g.cols])
        if img.size == 0:
            continue
        gpos = (img[:, None, None] * (c * hw) + np.arange(c)[None, :, None] * hw) + g.pix[blk][:, None, :]
        if keys is None:
            assert rng is not None
            raw = rng.bit_generator.random_raw((img.size * planes * g.k + 1) // 2).view(np.uint32)
            k32 = raw[: img.size * planes * g.k].reshape(img.size, planes, g.k)
        else:
            kpos = (img[:, None, None] * (planes * size) + np.arange(planes)[None, :, None] * size
                    + g.lay[blk][:, None, :])
            k32 = keys.reshape(-1)[kpos]
        packed = (k32.astype(np.uint64) << np.uint64(32)) | np.arange(g.k, dtype=np.uint64)
        packed.sort(axis=-1)
        perm = (packed & np.uint64(0xFFFFFFFF)).astype(np.intp)
        src = np.take_along_axis(gpos, np.broadcast_to(perm, gpos.shape), axis=-1)
        if inverse:
            of[src] = xf[gpos]
        else:
            of[gpos] = xf[src]


def _checked_array(images: Tensor) -> np.ndarray:
    """:func:`privis.data.checks.check_images` (one ``aminmax`` pass), then a C-contiguous float32 numpy copy
    on the CPU, where the shuffles run."""
    return np.ascontiguousarray(check_images(images).detach().to("cpu", torch.float32).numpy())


@dataclass
class ShuffleStats:
    """Figures of one :func:`shuffle_regions` call (pass an empty one as ``stats=`` and it is filled in).

    Attributes:
        region_counts: ``(N, R)`` number of final regions of each size class in each image.
        region_sizes: ``(R,)`` pixels of a region of each class (aligned ``s x s`` windows of every level,
            then the edge regions that absorb remainders).
        region_levels: ``(R,)`` index into ``levels`` of each class.
        vfe_before: ``(N,)`` image VFE (Eq. 3-4, ``[0, 1]`` pixels) before shuffling.
    """

    region_counts: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    region_sizes: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    region_levels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    vfe_before: np.ndarray = field(default_factory=lambda: np.empty(0))


def shuffle_regions(images: Tensor, levels: Sequence[int], *, statistic: str = "vfe",
                    low_vfe_window: str = "current", channel_shuffle: bool = True, secret: bytes | None = None,
                    ids: Sequence[Any] | Tensor | np.ndarray | None = None,
                    entropy: np.random.SeedSequence | None = None, inverse: bool = False, n_jobs: int | None = None,
                    stats: ShuffleStats | None = None, permutations: str = "table") -> Tensor:
    """Partition every image into regions (Algorithm 1 lines 8-24) and permute the pixels of each region.

    The functional core of :class:`~privis.methods.visualmixer.VisualMixer` (which derives ``levels``, the
    secret and the 8-bit quantisation of its keyed mode, then calls this); vectorised over the batch, run
    on the CPU on a thread pool over chunks of about a million values, or in torch on the images' device
    (counter scheme, images not on the CPU).

    Args:
        images: ``(N, C, H, W)`` float in ``[0, 1]``, any device (returned on the input's; worked on the CPU
            except by the counter scheme on another device, which works there).
        levels: windows from coarsest to finest, halving (:func:`window_levels`), or one window (uniform
            mode: every region of the :func:`privis.metrics.regions.grid_cuts` grid is shuffled); each
            ``<= min(H, W)``.
        statistic: the split test: ``"vfe"`` (VFE density against the median, the paper) or ``"variance"``
            (the shuffle-invariant pixel variance of ``round(255 x)``, needed to invert).
        low_vfe_window: ``"current"`` (a region at or below the median is shuffled whole) or ``"half"`` (its
            quadrants are shuffled separately).
        channel_shuffle: independent permutations per channel; False shares one across channels.
        secret: with a secret, each image's permutation is a function of the secret, its content id and its
            id in ``ids`` (independent of batching; :func:`~privis.methods.visualmixer.keys.seed_secret` turns
            a seed into one). None: fresh randomness from ``entropy``.
        ids: ``N`` ids (ints, strings or bytes) bound into the per-image streams (with a secret only).
        entropy: where fresh randomness comes from without a secret (None: OS entropy).
        inverse: undo a shuffle made with the same secret, ids and parameters (needs ``secret``).
        n_jobs: worker threads (None: ``torch.get_num_threads()``).
        stats: filled in with the partition's figures (:class:`ShuffleStats`).
        permutations: how random words become permutations: ``"table"`` (per-image ``PCG64`` streams, table
            lookups for windows of 2 and 4; numpy on the CPU, images on another device are moved there and
            back) or ``"counter"`` (keys from a keyed hash of each position,
            :mod:`~privis.methods.visualmixer.counter`: run on the images' device, the same output on every
            device). The two give different permutations for the same secret; the package notes describe both.

    Returns:
        ``(N, C, H, W)`` float32: every region holds the same pixel values per channel, rearranged.

    Raises:
        InvalidInputError: bad images, ids of the wrong length or type, ``inverse`` without a secret, or a
            window larger than the images.

    Examples:
        >>> import torch
        >>> from privis.methods.visualmixer import seed_secret, shuffle_regions
        >>> x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> y = shuffle_regions(x, (2,), secret=seed_secret(7))
        >>> y.shape, torch.equal(y.flatten(2).sort(2).values, x.flatten(2).sort(2).values)  # same values
        (torch.Size([2, 3, 8, 8]), True)
        >>> torch.equal(shuffle_regions(y, (2,), secret=seed_secret(7), inverse=True), x)
        True
    """
    if inverse and secret is None:
        raise InvalidInputError("inverse shuffling needs the secret the images were shuffled with")
    if permutations not in PERMUTATIONS:
        raise InvalidInputError(f"permutations must be one of {list(PERMUTATIONS)}, got {permutations!r}")
    device = images.device if isinstance(images, Tensor) else None
    if permutations == "counter" and device is not None and device.type != "cpu":
        return _shuffle_regions_torch(images, levels, statistic=statistic, low_vfe_window=low_vfe_window,
                                      channel_shuffle=channel_shuffle, secret=secret, ids=ids, entropy=entropy,
                                      inverse=inverse, stats=stats)
    x = _checked_array(images)
    n, c, h, w = x.shape
    geo, planes, id_list = _setup(x.shape, levels, channel_shuffle, secret, ids)
    out = np.empty_like(x)
    per_chunk = max(1, _CHUNK_VALUES // (c * h * w))
    starts = list(range(0, n, per_chunk))
    seeds = None if secret is not None else (entropy or np.random.SeedSequence()).spawn(len(starts))
    counts: list[np.ndarray] = [np.empty(0)] * len(starts)
    vfe_before = np.zeros(n)
    plans: list[_ChunkPlan] = []
    fast = _fast_tiles(geo) and permutations == "table"
    words_all = _counter_words(None, None, n, entropy) if permutations == "counter" and secret is None else None

    def work(j: int) -> None:
        a, b = starts[j], min(starts[j] + per_chunk, n)
        plan = _plan(x[a:b], geo, statistic, low_vfe_window)
        counts[j] = plan.counts
        if j == 0:
            plans.append(plan)
        vfe_before[a:b] = plan.vfe
        keys = chunk_ids = None
        size = geo.canvas[0] * geo.canvas[1]
        if secret is not None:
            chunk_ids = content_ids(x[a:b])
            if id_list is not None:  # the caller's id, bound to the content so equal ids never share a stream
                chunk_ids = [given + b"|" + cid for given, cid in zip(id_list[a:b], chunk_ids, strict=True)]
        rng = np.random.Generator(np.random.PCG64(seeds[j])) if seeds is not None else None
        if permutations == "counter":
            words = _counter_words(secret, chunk_ids, b - a, None) if words_all is None else words_all[a:b]
            keys = counter.counter_keys_numpy(words, planes, size)
            _shuffle_chunk(x[a:b], out[a:b], geo, plan, planes=planes, keys=keys, rng=None, inverse=inverse)
            return
        if not fast:
            if secret is not None and chunk_ids is not None:
                keys = _image_keys(secret, chunk_ids, planes, size)
            _shuffle_chunk(x[a:b], out[a:b], geo, plan, planes=planes, keys=keys, rng=rng, inverse=inverse)
            return
        # tiles: two words per tile and plane; edge regions (if any): one 32-bit key per position after them
        tw = _tile_words(geo, planes)
        if secret is not None and chunk_ids is not None:
            stream = _image_stream(secret, chunk_ids, tw + ((planes * size + 1) // 2 if geo.groups else 0))
            words = stream[:, :tw]
            if geo.groups:
                keys = np.ascontiguousarray(stream[:, tw:]).view(np.uint32)[:, : planes * size]
                keys = keys.reshape(b - a, planes, size)
        else:
            assert rng is not None
            words = rng.bit_generator.random_raw((b - a) * tw).reshape(b - a, tw)
        _shuffle_tiles(x[a:b], out[a:b], geo, plan, planes=planes, words=words, inverse=inverse)
        _shuffle_edges(x[a:b], out[a:b], geo, plan, planes=planes, keys=keys, rng=rng, inverse=inverse)

    jobs = n_jobs or max(1, torch.get_num_threads())
    if jobs == 1 or len(starts) == 1:
        for j in range(len(starts)):
            work(j)
    else:
        with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(work, range(len(starts))))
    if stats is not None:
        stats.region_counts = np.concatenate(counts)
        stats.region_sizes, stats.region_levels = plans[0].sizes, plans[0].levels
        stats.vfe_before = vfe_before
    return torch.from_numpy(out).to(device)


def _setup(shape: Sequence[int], levels: Sequence[int], channel_shuffle: bool, secret: bytes | None,
           ids: Sequence[Any] | Tensor | np.ndarray | None) -> tuple[_Geometry, int, list[bytes] | None]:
    """The geometry, the number of permutation planes and the typed caller ids (secret only) of a call."""
    n, c, h, w = shape
    levels = tuple(int(s) for s in levels)
    if not levels or min(levels) < 1 or max(levels) > min(h, w):
        raise InvalidInputError(f"windows {list(levels)} must lie in [1, {min(h, w)}] for {h}x{w} images")
    id_list = None
    if secret is not None and ids is not None:
        given = list(ids.tolist() if isinstance(ids, (Tensor, np.ndarray)) else ids)
        if len(given) != n:
            raise InvalidInputError(f"ids must have one entry per image ({n}), got {len(given)}")
        id_list = [id_bytes(v) for v in given]
    return _geometry(h, w, levels), c if channel_shuffle else 1, id_list


def _shuffle_regions_torch(images: Tensor, levels: Sequence[int], *, statistic: str, low_vfe_window: str,
                           channel_shuffle: bool, secret: bytes | None, ids: Sequence[Any] | Tensor | np.ndarray | None,
                           entropy: np.random.SeedSequence | None, inverse: bool,
                           stats: ShuffleStats | None) -> Tensor:
    """:func:`shuffle_regions` with ``permutations="counter"`` in torch on the images' device (any device; the
    same output as the numpy counter path on the CPU)."""
    x = check_images(images).detach().to(torch.float32).contiguous()
    n = x.shape[0]
    geo, planes, id_list = _setup(x.shape, levels, channel_shuffle, secret, ids)
    dg = counter._on_device(geo, x.device)
    finals, counts, vfe = counter._plan(x, geo, dg, statistic, low_vfe_window)
    chunk_ids = None
    if secret is not None:
        chunk_ids = counter.content_ids(x)
        if id_list is not None:
            chunk_ids = [given + b"|" + cid for given, cid in zip(id_list, chunk_ids, strict=True)]
    words = torch.from_numpy(_counter_words(secret, chunk_ids, n, entropy)).to(x.device)
    keys = counter.counter_keys(words, planes, geo.canvas[0] * geo.canvas[1])
    out = counter.shuffle(x, geo, finals, keys, inverse=inverse)
    if stats is not None:
        stats.region_counts = counts.cpu().numpy()
        stats.region_sizes, stats.region_levels = _region_classes(geo)
        stats.vfe_before = vfe.cpu().numpy()
    return out
