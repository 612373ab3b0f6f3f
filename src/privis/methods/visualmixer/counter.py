"""VisualMixer's counter scheme in torch: the partition, the sort keys and the shuffles on the images' device.

The *counter scheme* (``permutations="counter"``) draws every sort key from a keyed integer hash of its position
instead of from a sequential generator, so keys can be made anywhere, in any order, on any device:

* per image, two 32-bit words ``k`` (:func:`~privis.methods.visualmixer.keys._counter_words`: an HMAC of the
  image id under the secret, or 64 bits of fresh entropy);
* the key of layout position ``j`` of plane ``p`` (planes: channels, or one shared plane) is
  ``h = p * P + j`` (``P`` layout positions) passed through two rounds ``h <- mix(h ^ k_r)`` of a 32-bit
  avalanche mix (``x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x31848bab; x ^= x >> 16`` modulo 2^32,
  the multipliers of C. Wellons' hash-prospector "lowbias32" and "triple32"). Every product is a 32-bit
  value times a 31-bit constant held in int64, so nothing overflows and CPU and CUDA give the same bits;
* the permutation of every region is the stable sort of its keys -- exactly the sort path of
  :func:`~privis.methods.visualmixer.permute.shuffle_regions` (aligned regions: rows of the tile layout sorted
  by ``segment << (32 - b) | key >> b``; edge regions: by the full key, ties by position), fed with these keys.

The partition (:func:`_plan`) is the numpy one of :mod:`~privis.methods.visualmixer.partition` written with the
same float32 element-wise operations in the same order (region sums as fixed sequences of additions, never a
device reduction of floats), so its decisions are bit-identical to the numpy ones on the CPU and on CUDA. Content
ids are int64 sums that wrap modulo 2^64, the same bits as the numpy uint64 ones.

Everything here is vectorised over the batch, the regions of one shape and the windows; the only host
transfers of a call are the content ids (for the per-image HMAC, when a secret is used) and, when asked for,
the region counts of :class:`~privis.methods.visualmixer.permute.ShuffleStats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from privis.methods.visualmixer.keys import _QUANT_ID, _id_tables
from privis.methods.visualmixer.partition import _QUANT_STAT, _Geometry

_M32 = 0xFFFFFFFF
_MULS = (0x7FEB352D, 0x31848BAB)  # odd, below 2^31: a 32-bit value times one fits in int64


_Words = TypeVar("_Words", Tensor, np.ndarray)


def _mix32(x: _Words) -> _Words:
    """32-bit avalanche mix (a bijection of 32-bit words) of int64 tensors holding values in ``[0, 2^32)``, or of
    uint32 arrays (where the multiplications wrap by themselves and the masks change nothing): the same bits."""
    x = x ^ (x >> 16)
    x = (x * _MULS[0]) & _M32
    x = x ^ (x >> 15)
    x = (x * _MULS[1]) & _M32
    return x ^ (x >> 16)


def counter_keys(words: Tensor, planes: int, size: int) -> Tensor:
    """Sort keys ``(n, planes, size)`` int64 in ``[0, 2^32)`` from per-image keys ``words`` ``(n, 2)`` int64.

    Key ``[i, p, j]`` is ``mix(mix((p * size + j) ^ k0) ^ k1)`` with ``k = words[i]`` (a bijection of the
    counter: no two positions of an image share a key); computed on ``words``' device.
    """
    h = torch.arange(planes * size, dtype=torch.int64, device=words.device).expand(words.shape[0], -1)
    for r in range(words.shape[1]):
        h = _mix32(h ^ words[:, r : r + 1])
    return h.reshape(-1, planes, size)


def counter_keys_numpy(words: np.ndarray, planes: int, size: int) -> np.ndarray:
    """:func:`counter_keys` as ``(n, planes, size)`` uint32 from ``words`` ``(n, 2)`` in numpy on the CPU (native
    32-bit arithmetic: about twice as fast there as int64 tensors); the same keys."""
    w = words.astype(np.uint32)
    h = np.arange(planes * size, dtype=np.uint32)[None, :]
    for r in range(w.shape[1]):
        h = _mix32(h ^ w[:, r : r + 1])
    return h.reshape(-1, planes, size)


def content_ids(x: Tensor) -> list[bytes]:
    """:func:`privis.methods.visualmixer.keys.content_ids` of ``(n, C, H, W)`` float32 images on their device
    (the same bytes: int64 sums wrap modulo 2^64 like the numpy uint64 ones); one transfer of ``(n, C, 2)``."""
    n, c = x.shape[:2]
    q = torch.round(x.clamp(0.0, 1.0) * _QUANT_ID).to(torch.int64).reshape(n * c, -1)
    tables = _tables_on(str(x.device))
    h = torch.stack([tables[0][q].sum(-1), tables[1][q].sum(-1)], -1)
    rows = h.cpu().numpy().view(np.uint64).astype("<u8").reshape(n, c, 2)
    return [row.tobytes() for row in rows]


@lru_cache(maxsize=8)
def _tables_on(device: str) -> Tensor:
    """The content-id tables as int64 on ``device`` (uploaded once)."""
    return torch.from_numpy(_id_tables().view(np.int64)).to(device)


@dataclass(frozen=True)
class _DeviceGeometry:
    """The index arrays of a :class:`~privis.methods.visualmixer.partition._Geometry` as tensors on one device."""

    gather: Tensor
    scatter: Tensor
    offsets: Tensor
    tile_grid: tuple[Tensor, ...]
    parent_rows: tuple[Tensor, ...]
    parent_cols: tuple[Tensor, ...]
    aligned: tuple[Tensor, ...]
    area: tuple[Tensor, ...]
    group_rows: tuple[Tensor, ...]
    group_cols: tuple[Tensor, ...]
    group_pix: tuple[Tensor, ...]
    group_lay: tuple[Tensor, ...]


_DEVICE_GEOMETRY: dict[tuple[int, int, tuple[int, ...], str], _DeviceGeometry] = {}


def _on_device(geo: _Geometry, device: torch.device) -> _DeviceGeometry:
    key = (geo.height, geo.width, geo.levels, str(device))
    found = _DEVICE_GEOMETRY.get(key)
    if found is None:
        def t(a: np.ndarray) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device)

        found = _DeviceGeometry(
            t(geo.gather_index), t(geo.scatter_index), t(geo.offsets.astype(np.int64)),
            tuple(t(g) for g in geo.tile_grid), tuple(t(r) for r in geo.parent_rows),
            tuple(t(c) for c in geo.parent_cols), tuple(t(a) for a in geo.aligned), tuple(t(a) for a in geo.area),
            tuple(t(g.rows) for g in geo.groups), tuple(t(g.cols) for g in geo.groups),
            tuple(t(g.pix) for g in geo.groups), tuple(t(g.lay) for g in geo.groups))
        if len(_DEVICE_GEOMETRY) > 64:
            _DEVICE_GEOMETRY.clear()
        _DEVICE_GEOMETRY[key] = found
    return found


# ------------------------------------------------------------------------------------------------ partition
def _vfe_density_map(x: Tensor) -> Tensor:
    """:func:`privis.methods.visualmixer.partition._vfe_density_map` in torch, the same float32 operations in the
    same order: ``(n, C, H, W) -> (n, H, W)``."""
    n, c, h, w = x.shape
    xf = x.reshape(n, c, h * w)
    dh = torch.zeros_like(xf)
    dh[..., :-1] = torch.square(xf[..., 1:] - xf[..., :-1])
    dh[..., w - 1 :: w] = 0
    dv = torch.zeros_like(xf)
    dv[..., :-w] = torch.square(xf[..., w:] - xf[..., :-w])
    m = dh[:, 0] + dv[:, 0]
    for ch in range(1, c):
        m = m + dh[:, ch]
        m = m + dv[:, ch]
    if c > 1:
        m = m * torch.tensor(np.float32(1.0 / c), device=x.device)
    return m.reshape(n, h, w)


def _block_sum(a: Tensor, f: int) -> Tensor:
    """:func:`privis.methods.visualmixer.partition._block_sum` as a fixed sequence of element-wise additions
    (bit-identical to it for float32 whenever a remainder holds fewer than 8 rows or columns, where numpy's
    reduction is sequential too; always for exact integers)."""
    r, c = a.shape[-2:]
    nr, nc = r // f, c // f
    cols = a[..., : nc * f : f].clone()
    for j in range(1, f):
        cols += a[..., j : nc * f : f]
    if c > nc * f:
        extra = a[..., nc * f]
        for j in range(nc * f + 1, c):
            extra = extra + a[..., j]
        cols[..., -1] += extra
    out = cols[..., : nr * f : f, :].clone()
    for i in range(1, f):
        out += cols[..., i : nr * f : f, :]
    if r > nr * f:
        extra = cols[..., nr * f, :]
        for i in range(nr * f + 1, r):
            extra = extra + cols[..., i, :]
        out[..., -1, :] += extra
    return out


def _region_sums(maps: Tensor, geo: _Geometry) -> list[Tensor]:
    last = len(geo.levels) - 1
    sums: list[Tensor] = [maps] * len(geo.levels)
    sums[last] = _block_sum(maps, geo.levels[last])
    for li in range(last - 1, -1, -1):
        sums[li] = _block_sum(sums[li + 1], geo.levels[li] // geo.levels[li + 1])
    return sums


def _channel_mean(a: Tensor) -> Tensor:
    """Mean over dim 1 as numpy's ``mean(1)``: sequential sum, then one division."""
    total = a[:, 0]
    for ch in range(1, a.shape[1]):
        total = total + a[:, ch]
    return total / a.shape[1]


def _region_statistics(x: Tensor, geo: _Geometry, dg: _DeviceGeometry,
                       statistic: str) -> tuple[list[Tensor], Tensor]:
    n, _, h, w = x.shape
    dens = _vfe_density_map(x)
    if statistic == "vfe":
        sums = _region_sums(dens, geo)
        image_vfe = sums[0].reshape(n, -1).sum(1, dtype=torch.float64) / (h * w)
        return [s.double() / a for s, a in zip(sums, dg.area, strict=True)], image_vfe
    image_vfe = dens.reshape(n, -1).sum(1, dtype=torch.float64) / (h * w)
    # round(255 x) in the dtype the numpy partition uses (it rounds the same), then exact sums in float64
    dtype = torch.float32 if (2 * geo.levels[0] - 1) ** 2 * _QUANT_STAT**2 < 2**24 else torch.float64
    q = torch.round(x.to(dtype) * _QUANT_STAT).double()
    s1, s2 = _region_sums(q, geo), _region_sums(q * q, geo)
    return [_channel_mean((b * a - s * s) / (a * a)) for s, b, a in zip(s1, s2, dg.area, strict=True)], image_vfe


def _row_median(a: Tensor) -> Tensor:
    k = a.shape[1]
    s = torch.sort(a, dim=1).values
    if k % 2:
        return s[:, k // 2]
    return (s[:, k // 2 - 1] + s[:, k // 2]) / 2


def _partition(stats: list[Tensor], dg: _DeviceGeometry, low_vfe_window: str) -> list[Tensor]:
    """:func:`privis.methods.visualmixer.partition._partition` in torch: final-region masks per level."""
    n_levels = len(stats)
    median = _row_median(stats[0].reshape(stats[0].shape[0], -1))[:, None, None]
    tested = torch.ones(stats[0].shape, dtype=torch.bool, device=stats[0].device)
    forced = torch.zeros_like(tested)
    finals = []
    for li in range(n_levels):
        if li == n_levels - 1:
            finals.append(tested | forced)
            break
        high = stats[li] > median
        low = tested & ~high
        if low_vfe_window == "current":
            finals.append(low)
            child_forced = torch.zeros_like(low)
        else:
            finals.append(forced)
            child_forced = low
        pr, pc = dg.parent_rows[li], dg.parent_cols[li]
        tested = (tested & high).index_select(1, pr).index_select(2, pc)
        forced = child_forced.index_select(1, pr).index_select(2, pc)
    return finals


def _plan(x: Tensor, geo: _Geometry, dg: _DeviceGeometry, statistic: str,
          low_vfe_window: str) -> tuple[list[Tensor], Tensor, Tensor]:
    """Final-region masks per level, region counts ``(n, R)`` (aligned per level, then edge groups) and the
    image VFE ``(n,)``, all on ``x``'s device."""
    stats, vfe = _region_statistics(x, geo, dg, statistic)
    finals = _partition(stats, dg, low_vfe_window)
    counts = [(f & a).sum(dim=(1, 2)) for f, a in zip(finals, dg.aligned, strict=True)]
    counts += [finals[g.level][:, r, c].sum(1) for g, r, c in zip(geo.groups, dg.group_rows, dg.group_cols,
                                                                  strict=True)]
    return finals, torch.stack(counts, 1), vfe


# ------------------------------------------------------------------------------------------------- shuffles
def _segment_map(finals: Sequence[Tensor], geo: _Geometry, dg: _DeviceGeometry) -> Tensor:
    """:func:`privis.methods.visualmixer.permute._segment_map` in torch: ``(n, P)`` int64."""
    hp, wp = geo.canvas
    n = finals[0].shape[0]
    low = torch.zeros((n, hp * wp), dtype=torch.int64, device=finals[0].device)
    for li, s in enumerate(geo.levels):
        mask = finals[li] & dg.aligned[li]
        grid = torch.zeros((n, hp // s, wp // s), dtype=torch.int64, device=low.device)
        grid[:, : mask.shape[1], : mask.shape[2]] = mask.to(torch.int64)
        value = s * s - 1 if geo.power_of_two else s * s
        low += (grid.reshape(n, -1).index_select(1, dg.tile_grid[li]) * value).repeat_interleave(s * s, dim=1)
    if geo.power_of_two:
        return dg.offsets & ~low
    return torch.where(low > 0, torch.zeros_like(low), dg.offsets)


def _permute(values: Tensor, perm: Tensor, inverse: bool) -> Tensor:
    """``values[..., perm]`` along the last dim (forward), or its inverse (``out[..., perm] = values``)."""
    perm = perm.expand(values.shape)
    if inverse:
        return torch.empty_like(values).scatter_(-1, perm, values)
    return values.gather(-1, perm)


def shuffle(x: Tensor, geo: _Geometry, finals: Sequence[Tensor], keys: Tensor, *, inverse: bool) -> Tensor:
    """Permute every final region of ``x`` ``(n, C, H, W)`` float32 by the stable sort of its ``keys``
    ``(n, planes, P)`` int64 in ``[0, 2^32)`` (planes ``C``, or 1 shared by the channels); on ``x``'s device."""
    n, c, h, w = x.shape
    dg = _on_device(geo, x.device)
    tile, bits = geo.tile, geo.seg_bits
    planes = keys.shape[1]
    seg = _segment_map(finals, geo, dg)
    sort_key = (seg << (32 - bits))[:, None, :] | (keys >> bits)  # (n, planes, P), below 2^32
    perm = torch.sort(sort_key.reshape(n, planes, -1, tile), dim=-1, stable=True).indices
    xv = x.reshape(n, c, h * w)
    rows = xv.index_select(2, dg.gather).reshape(n, c, -1, tile)
    out = _permute(rows, perm, inverse).reshape(n, c, -1).index_select(2, dg.scatter)
    for g, rr, cc, pix, lay in zip(geo.groups, dg.group_rows, dg.group_cols, dg.group_pix, dg.group_lay,
                                   strict=True):
        final = finals[g.level][:, rr, cc][:, None, :, None]  # (n, 1, nb, 1)
        order = torch.sort(keys[:, :, lay], dim=-1, stable=True).indices  # (n, planes, nb, k)
        moved = torch.where(final, _permute(xv[:, :, pix], order, inverse), out[:, :, pix])  # others: as they are
        out[:, :, pix.reshape(-1)] = moved.reshape(n, c, -1)
    return out.reshape(n, c, h, w)
