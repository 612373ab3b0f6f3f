"""VisualMixer (VIM): VFE-guided pixel shuffling (visualmixer.md, Sections III-IV, Algorithm 1).

Each image is cut into regions whose sizes follow its Visual Feature Entropy (VFE, Eq. 1-4); inside every
region the pixels are shuffled in space and, independently, in every channel. Nothing is added, so a
model trained on shuffled images still sees every pixel value of the region it came from.

Steps (Algorithm 1):

1. ``WS_u`` (line 1) from the output-bias analysis of Section IV-C and ``WS_l`` (line 2) from the
   chi-square law of the shuffled VFE (Section IV-B); both in :mod:`privis.privacy.visualmixer_bounds`,
   computed in :meth:`VisualMixer.fit`.
2. Lines 3-7: the coarsest window is the largest power of two ``<= WS_u`` (the text of Section IV-D: "the
   nearest power of two that is less than or equal to WS_u") and no larger than the image; the image is
   tiled by it.
3. Lines 8-24, vectorised over the batch and over all regions of a level instead of popping one region at
   a time (the outcome does not depend on the order regions are taken): a region no larger than
   ``2^floor(log2 WS_l)`` is shuffled whole (lines 11-14); otherwise its VFE is compared with the median
   VFE ``VFE_m`` of the image's initial regions: above the median it is split into its four quadrants,
   which are examined at the next level (line 21); at or below, it is shuffled (line 18).
4. Shuffle (lines 13 and 18): a uniformly random permutation of the region's pixels per channel. The
   spatial shuffle (one permutation shared by the channels) followed by independent per-channel shuffles
   is again an independent uniform permutation per channel, so that composite is drawn directly (from
   lookup tables for windows of 2 and 4, by sorting random keys for larger ones; see below).

Choices the paper leaves open, and ours:

* Which window a region at or below the median gets. Line 16-18 reads ``WS = ceil(Size(R_i)/2)`` and the
  text says "shuffled using the next level of WS, i.e. Size(R_i)/2"; the issue asks for the region's
  current size, which lets the coarsest window (bounded by ``WS_u``) actually occur.
  ``low_vfe_window="current"`` (default) shuffles the whole region; ``"half"`` shuffles its four quadrants
  separately (the literal line 16-18).
* The median test compares VFE densities (Eq. 2 divided by the region's pixel count, i.e. Eq. 3 restricted
  to the region) so that regions of different levels compare with one ``VFE_m``; ``VFE_m`` is the median
  over the image's initial regions ("median VFE of the initial segmented set", Sec. IV-D). Multi-channel
  images use the channel mean (Eq. 4).
* Edges. Regions tile from the top-left; along an axis whose size is not a multiple of the window ``s``,
  the last region absorbs the remainder (it is ``s + (H mod s)`` tall), so no region is ever smaller than
  the smallest window; a right/bottom edge region can reach ``2s - 1`` pixels along that axis, i.e. exceed
  ``WS_u`` by less than the window. Finer levels refine coarser ones (the cut points are nested). An
  image smaller than the smallest window along either axis is an :class:`InvalidInputError`.
* Tiny images. An image no larger than the coarsest window is one initial region (line 3:
  ``WS <- Size(I)``); its VFE is its own median, so line 17 shuffles the whole image at once.
* Image size. ``WS_u`` (Sec. IV-C) bounds a 3x3 kernel's output bias and is the same for every image
  size; on the paper's smallest images (28x28) its default 7 is a quarter of the side. Beyond the paper,
  the derived ``WS_u`` is capped at ``max_window_fraction`` (0.25) of the shorter side, which changes none of
  the paper's sizes and keeps 8x8 digits at 2x2 windows instead of quarter-image 4x4 ones.
* The server's input layer (beyond the paper). :meth:`VisualMixer.service_input_layer` is a
  :class:`WindowSort`: a model serving VisualMixer images sees every smallest-window cell sorted, which is
  computed from the protected image alone and makes the model blind to the random order inside a cell.
  ``privis evaluate`` uses it unless ``--no-service-layer``.
* Power-of-two windows. Algorithm 1 halves windows and floors ``WS_l`` to a power of two (line 11-12), so
  the windows used are ``s0, s0/2, ..., 2^floor(log2 WS_l)``. ``window=`` (uniform mode) bypasses this
  for the fixed-window baselines of Fig. 3 (``WS in {2, 4, 7, 8, whole image}``).

Randomness and the keyed mode (beyond the paper)
------------------------------------------------
* ``random_state=None`` and no key: permutations come from OS entropy (numpy ``PCG64`` seeded from
  :mod:`secrets`), different on every call, and cannot be inverted.
* ``random_state=int`` (no key) or a key file: every image gets its own stream,
  ``HMAC-SHA256(secret, "privis/visualmixer/v1" || image id)`` whose 256 bits set the state and increment
  of a ``PCG64`` generator. How its 64-bit outputs become permutations depends on the coarsest window
  ``s0``:

  - ``s0`` = 2 or 4 (the defaults, levels ``(4, 2)``; the *table path*): two outputs per ``s0 x s0`` tile
    and channel (channel by channel, tiles in raster order over the image padded to a multiple of ``s0``),
    then -- only when some
    region absorbs a remainder -- one 32-bit sort key per position for those edge regions, as below. The
    outputs are turned into uniform integers by exact 64-bit multiply-shift (``floor(u * m / 2^64)``, bias
    below ``m / 2^64``) and those pick rows of fixed tables (:class:`_PermTables`): a final ``4 x 4`` region
    gets ``split[a][s8[e0], 8 + s8[e1]]`` -- a uniform coset representative of ``S_8 x S_8`` in ``S_16``
    times uniform permutations of its two halves, i.e. a uniform permutation of its 16 pixels; a final
    ``2 x 2`` region gets a uniform row of the 24 permutations of 4.
  - other windows (8 and up, or a non-power-of-two uniform window; the *sort path*): its 32-bit outputs,
    one per pixel and channel, are sort keys whose order is the permutation of each region (ties are
    broken by the pixel's position inside the region).

  So the output depends only on the image, its id and the secret -- not on the batch it came in or how
  the batch is cut into chunks. ``secret`` is the 32-byte key, or
  ``SHA-256("privis/visualmixer/seed" || random_state)``. (Keyed outputs of the table path differ from
  those of privis versions that sorted every window; key files are unchanged and still work.)
* Image ids: the stream's id is a 128-bit hash of the image's per-channel multiset of pixel values
  (12-bit quantised), prefixed by the caller's id when ``transform(images, ids=...)`` gives one (ints,
  strings or bytes; the engine passes item ids). Shuffling keeps that multiset, so the owner recomputes
  it from the protected image itself; with caller ids, equal ids (say item 0 of two datasets) still get
  different streams. Without ids, two images with equal multisets (e.g. duplicates) share a stream.
* Keyed inversion needs the partition too, but the VFE of the original regions is not visible in the
  protected image. In keyed mode (``statistic="auto"``) the split test therefore uses a statistic the
  shuffle keeps: each region's pixel variance (Eq. 5, mean over channels, on the 8-bit values with
  exact integer sums so that it is bit-identical before and after shuffling). High-variance regions are
  those that hold edges and texture, the ones the VFE test also splits. :meth:`inverse_transform` then
  rebuilds the same partition and the same permutations and scatters every pixel back: bit-exact.
* The keyed mode works on exactly what an 8-bit file stores. Before anything else (content ids, the
  variance statistic, the permutations) it quantises the images to ``round(255 x) / 255``, so its output is
  a permutation of 8-bit values, which a PNG stores exactly, and ``inverse_transform`` of the stored output
  gives ``round(255 x) / 255`` of the original back, bit for bit. Images with finer values (16-bit PNGs,
  float data such as scikit-learn's digits) are therefore stored and restored at 8 bits; the first batch
  that holds such values raises a ``UserWarning`` saying so. The seeded mode (``random_state`` without a
  key) does not quantise: it has no inverse, its output is a function of the input values, the id and the
  seed whatever they are, and it keeps the paper's property that the output holds exactly the input's
  values (an in-memory evaluation of float data sees them unrounded).
* Verification (beyond the paper). What the owner restores must be checkably right, so the keyed mode
  publishes two values that help no one undo the protection: :meth:`VisualMixer.public_record` gives the
  key check value (:func:`key_check_value`, a MAC of a fixed constant under the key) and
  :meth:`VisualMixer.item_tags` a MAC of each stored original bound to its item id (:func:`item_tag`). The
  engine records both in ``OUT/manifest.json``; :func:`privis.engine.restore.unprotect_folder` refuses a
  wrong key, a folder protected without one, and any item whose restored pixels do not match its tag (an
  edited or lossily re-encoded file). Keyed mode refuses the VFE split test, and the engine refuses lossy
  output formats for it (:meth:`VisualMixer.needs_exact_output`), since neither could be inverted.
* Key files hold 32 random bytes, written atomically with permissions 0600 (:func:`generate_key`). A
  pickled keyed protector holds no key: it reads ``key_file`` again when it needs the key.

Implementation: numpy on the CPU. A batch is cut into chunks of about a million values, processed by a
thread pool (numpy releases the GIL); no loop over regions or images on the hot path.

* Statistics: the VFE map (Eq. 1-2) with 1-d contiguous passes per channel, region sums of the finest level
  by strided block sums and every coarser level as ``2 x 2`` sums of the next finer one, the median by
  one sort/partition per image.
* Table path: every tile's permutation (a row of ``s0^2`` bytes, handled as uint64 words) comes from a few
  table lookups per tile, all tiles of the chunk at once; the rows are transposed into raster order (one
  tile row of bytes as one word), turned into int32 raster source indices by arithmetic, and the pixels
  are moved by one gather per channel (``torch.index_select``, on pieces below torch's parallel grain so it
  stays on the pool thread). Edge regions (remainders) then go through the sort path.
* Sort path: all regions of one shape are permuted at once by one sort of packed
  ``(random key << 32 | payload)`` 64-bit words, rows of one region and channel each (numpy's AVX2/AVX-512
  sort is about ten times faster than torch's CPU sort on short rows).

Images on another device are moved to the CPU and back.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import hmac
import math
import secrets
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from privis.errors import InvalidInputError
from privis.fsutil import atomic_write_bytes
from privis.methods import register
from privis.methods.base import (
    CHANNELS,
    NotFittedError,
    Protector,
    bool_param,
    check_images,
    check_labels,
    choice_param,
    float_param,
    int_param,
    path_param,
    seed_param,
)
from privis.privacy import keyspace_bits_from_counts
from privis.privacy.visualmixer_bounds import (
    alpha0,
    window_lower_bound,
    window_upper_bound,
    window_variances,
)
from privis.random import resolve_seed

KEY_BYTES = 32
_DOMAIN = b"privis/visualmixer/v1"
_KEY_CHECK_DOMAIN = b"privis/visualmixer/key-check/v1"
_TAG_DOMAIN = b"privis/visualmixer/item-tag/v1"
_CHECK_BYTES = 16  # key check values and item tags: HMAC-SHA256 truncated to 128 bits
_CHUNK_VALUES = 1 << 20
_GATHER_PIECE = 32768  # torch's parallel grain size: smaller index_select calls stay single-threaded
_QUANT_ID = 4095  # quantisation of the content id
_QUANT_STAT = 255  # quantisation of the keyed-mode split statistic (exact integer sums)

Statistic = Literal["auto", "vfe", "variance"]
_LO, _HI = (0, 1) if sys.byteorder == "little" else (1, 0)  # 32-bit halves of a uint64 viewed as 2 x uint32


# ------------------------------------------------------------------------------------------ key files
def generate_key(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a new 32-byte key from OS entropy to ``path`` (atomic, permissions 0600) and return the path.

    Raises:
        InvalidInputError: ``path`` exists and ``overwrite`` is False, or it exists and is no key file (not a
            regular file of exactly 32 bytes): ``overwrite`` replaces a key, never another file.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidInputError(f"key file {path} already exists; refusing to overwrite it")
    if path.exists() and (not path.is_file() or path.stat().st_size != KEY_BYTES):
        size = f"{path.stat().st_size} bytes" if path.is_file() else "not a regular file"
        raise InvalidInputError(f"{path} is not a key file ({size}; a key holds exactly {KEY_BYTES} bytes): "
                                "--overwrite replaces only a key file, refusing to overwrite it")
    atomic_write_bytes(path, secrets.token_bytes(KEY_BYTES), private=True)  # 0600 before any byte lands
    return path


def read_key(path: str | Path) -> bytes:
    """Read a key file written by :func:`generate_key` (exactly 32 bytes).

    Raises:
        InvalidInputError: the file is missing, a folder, or does not hold exactly 32 bytes.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"key file {path} is a folder; give the key file itself")
    if not path.is_file():
        raise InvalidInputError(f"key file not found: {path}")
    data = path.read_bytes()
    if len(data) != KEY_BYTES:
        raise InvalidInputError(f"key file {path} must hold exactly {KEY_BYTES} bytes, found {len(data)}")
    return data


def key_check_value(key: bytes) -> str:
    """The key check value recorded next to keyed outputs: ``HMAC-SHA256(key, domain constant)``, first 16
    bytes, hex (32 characters). It tells a restore whether it holds the right key and reveals nothing
    about the key itself."""
    return hmac.digest(key, _KEY_CHECK_DOMAIN, "sha256")[:_CHECK_BYTES].hex()


def item_tag(key: bytes, item_id: str | int | bytes, pixels: np.ndarray) -> str:
    """Keyed MAC of one stored original, bound to its item id (hex, 32 characters).

    ``HMAC-SHA256(key, domain || len(id) || id || C, H, W || pixels)`` truncated to 16 bytes, where ``id`` is
    the typed encoding of ``item_id`` and ``pixels`` the original's ``(C, H, W)`` uint8 values
    ``round(255 x)`` in C order. A restored image is the original exactly when its tag matches.

    Raises:
        InvalidInputError: ``pixels`` is not a ``(C, H, W)`` uint8 array, or a bad id type.
    """
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise InvalidInputError(f"item_tag needs (C, H, W) uint8 pixels, got {getattr(pixels, 'shape', pixels)!r}")
    ident = _id_bytes(item_id)
    head = len(ident).to_bytes(4, "big") + ident + b"".join(int(v).to_bytes(4, "big") for v in pixels.shape)
    mac = hmac.new(key, _TAG_DOMAIN + head, "sha256")
    mac.update(np.ascontiguousarray(pixels).data)
    return mac.digest()[:_CHECK_BYTES].hex()


def stored_pixels(images: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` float in ``[0, 1]`` -> uint8 ``round(255 x)``: the values an 8-bit PNG stores."""
    return np.rint(np.clip(images, 0.0, 1.0) * np.float32(255)).astype(np.uint8)


# ------------------------------------------------------------------------------------------ geometry
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


def _cuts(size: int, s: int) -> np.ndarray:
    """Region boundaries along an axis: multiples of ``s``, the last region absorbing the remainder."""
    n = size // s
    return np.append(np.arange(n) * s, size)


def _region_of(cuts: np.ndarray) -> np.ndarray:
    """Index of the region (between consecutive ``cuts``) that holds each pixel along the axis."""
    return np.searchsorted(cuts, np.arange(cuts[-1]), side="right") - 1


@lru_cache(maxsize=64)
def _cell_order(height: int, width: int, window: int) -> tuple[Tensor, Tensor]:
    """Cell id of every raster pixel for the ``window`` grid of :func:`_cuts`, and the pixels grouped by cell."""
    rows, cols = _region_of(_cuts(height, window)), _region_of(_cuts(width, window))
    ids = torch.from_numpy((rows[:, None] * (width // window) + cols[None, :]).reshape(-1))
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
    VisualMixer images and the model is exactly invariant to the order of pixels inside each cell."""

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = int(window)

    def forward(self, images: Tensor) -> Tensor:
        return sort_within_windows(images, self.window)

    def extra_repr(self) -> str:
        return f"window={self.window}"


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
        ch, cw = _cuts(height, s), _cuts(width, s)
        row_of, col_of = _region_of(ch), _region_of(cw)
        hs, ws = np.diff(ch), np.diff(cw)
        area.append(np.outer(hs, ws).astype(np.float64))
        aligned.append((hs == s)[:, None] & (ws == s)[None, :])
        if row_of_prev is not None:
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


# ------------------------------------------------------------------------------------ statistics
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

    The rule of :func:`_cuts` (``R // f`` blocks), applied to pixels or to a finer grid of regions (the
    cut points are nested, so a level's sums are ``2 x 2`` block sums of the next finer level's).
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
    q = np.rint(x.astype(dtype, copy=False) * dtype(_QUANT_STAT))
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


# ------------------------------------------------------------------------------------- randomness
_ID_TABLES: np.ndarray | None = None


def _id_tables() -> np.ndarray:
    """Two fixed tables of 4096 pseudo-random 64-bit words for the multiset hash (public, not secret)."""
    global _ID_TABLES
    if _ID_TABLES is None:
        _ID_TABLES = np.random.default_rng(0x5649534D49584552).integers(
            0, np.iinfo(np.uint64).max, size=(2, _QUANT_ID + 1), dtype=np.uint64, endpoint=True)
    return _ID_TABLES


def content_ids(x: np.ndarray) -> list[bytes]:
    """Shuffle-invariant ids: a 128-bit additive hash of each channel's multiset of 12-bit pixel values.

    Args:
        x: ``(n, C, H, W)`` float array in ``[0, 1]``.

    Returns:
        ``n`` byte strings (16 bytes per channel).
    """
    n, c = x.shape[:2]
    q = np.rint(np.clip(x, 0.0, 1.0) * _QUANT_ID).astype(np.intp).reshape(n * c, -1)
    tables = _id_tables()
    bins = _QUANT_ID + 1
    with np.errstate(over="ignore"):
        if q.shape[1] >= bins:  # large images: histogram per plane, then counts x table (the same sums mod 2^64)
            q += (np.arange(n * c) * bins)[:, None]
            counts = np.bincount(q.reshape(-1), minlength=n * c * bins).reshape(n * c, bins).astype(np.uint64)
            h = counts @ tables.T
        else:
            h = np.stack([tables[0][q].sum(-1, dtype=np.uint64), tables[1][q].sum(-1, dtype=np.uint64)], -1)
    return [row.tobytes() for row in h.reshape(n, c, 2).astype("<u8")]


def _id_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return b"b" + value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return b"i" + str(int(value)).encode()
    if isinstance(value, str):
        return b"s" + value.encode("utf-8")
    raise InvalidInputError(f"image ids must be ints, strings or bytes, got {type(value).__name__}")


def _image_stream(secret: bytes, ids: Sequence[bytes], words: int) -> np.ndarray:
    """Per-image random words ``(n, words)`` uint64 from ``PCG64`` streams keyed by HMAC-SHA256.

    One HMAC per image (a few microseconds) is the only per-image Python work; the stream itself is
    generated in C.
    """
    out = np.empty((len(ids), words), dtype=np.uint64)
    bitgen = np.random.PCG64()
    state = bitgen.state
    for i, ident in enumerate(ids):
        digest = hmac.digest(secret, _DOMAIN + ident, "sha256")
        state["state"]["state"] = int.from_bytes(digest[:16], "little")
        state["state"]["inc"] = int.from_bytes(digest[16:], "little") | 1
        state["has_uint32"] = 0
        bitgen.state = state
        out[i] = bitgen.random_raw(words)
    return out


def _image_keys(secret: bytes, ids: Sequence[bytes], planes: int, size: int) -> np.ndarray:
    """Per-image sort keys ``(n, planes, size)`` uint32: the 32-bit halves of :func:`_image_stream`.

    Key ``[i, p, j]`` belongs to layout position ``j`` of plane ``p`` of image ``i``.
    """
    n = len(ids)
    out = _image_stream(secret, ids, (planes * size + 1) // 2).view(np.uint32)
    return out[:, : planes * size].reshape(n, planes, size)


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
    src = r >> (s0.bit_length() - 1)
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


# ---------------------------------------------------------------------------------- chunk worker
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
    sizes = [s * s for s in geo.levels] + [g.k for g in geo.groups]
    levels = list(range(len(geo.levels))) + [g.level for g in geo.groups]
    return _ChunkPlan(finals, np.stack(counts, 1), np.array(sizes), np.array(levels), vfe)


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


# ------------------------------------------------------------------------------------------ protector
def _checked_array(images: Tensor) -> np.ndarray:
    """The checks of :func:`privis.methods.base.check_images`, on a C-contiguous float32 numpy view.

    Range and finiteness come from one ``aminmax`` pass (NaN propagates to both), which is several times
    cheaper than torch's ``isfinite`` pass on large batches.
    """
    if (not isinstance(images, Tensor) or images.ndim != 4 or images.shape[0] == 0 or images.shape[1] not in CHANNELS
            or not images.is_floating_point()):
        check_images(images)  # raises the precise error
    t = images.detach().to("cpu", torch.float32)
    lo_hi = torch.aminmax(t)  # one pass on torch's threads; NaN propagates to both
    lo, hi = float(lo_hi.min), float(lo_hi.max)
    x = np.ascontiguousarray(t.numpy())
    if not (lo >= -1e-6 and hi <= 1 + 1e-6):  # also false for NaN
        check_images(images)  # names the problem (NaN/inf or the range)
        raise InvalidInputError(f"images must lie in [0, 1], found values in [{lo:.4g}, {hi:.4g}]")
    return x


@register
class VisualMixer(Protector):
    """VisualMixer (visualmixer.md, Algorithm 1): VFE-guided spatial and per-channel pixel shuffling.

    Args:
        target_vfe: the VFE the shuffled image must reach, which sets ``WS_l`` (Sec. IV-B). Default 4.0 in
            ``"normalized"`` units, the mean VFE of a 2x2 shuffle (Eq. 12 at WS = 2); at 95% confidence
            this gives ``WS_l = 3``, which line 12 floors to the 2x2 window.
        vfe_units: ``"normalized"`` (Eq. 12's units) or ``"image"`` (Eq. 3 on ``[0, 1]`` pixels, the units of
            :func:`privis.metrics.vfe`; the window variances are then measured on the ``fit`` data).
        confidence: probability with which the target must be reached.
        bound_method: ``"chi2"`` (exact chi-square tail) or ``"normal"`` (Eq. 12 approximation).
        bias_d, alpha: the output bias ``d`` and confidence ``alpha`` of Sec. IV-C, in units of the kernel
            weights' standard deviation. The paper gives no values; 3.0 and 0.3 give ``alpha_0 = 0.81`` and
            ``WS_u = 3 + 2 * 2 = 7``, so the windows are 4 and 2 (``bias_d=3.5`` gives ``WS_u = 9`` and, with
            ``max_window_fraction=None``, windows 8, 4, 2, which on Fashion-MNIST cost LeNet-5 5.5 accuracy
            points instead of 0.6).
        kernel_mu, kernel_sigma: the normal law of kernel weights of the Monte Carlo.
        ws0: ``WS_0`` of Algorithm 1 line 1 (3, the base case).
        mc_samples: Monte Carlo draws for ``alpha_0`` (seeded: the bounds are deterministic).
        ws_lower, ws_upper: give ``WS_l`` / ``WS_u`` directly instead of deriving them.
        max_window_fraction: the derived ``WS_u`` is capped at this fraction of the image's shorter side (never
            below the smallest window). Beyond the paper: ``WS_u`` bounds a 3x3 kernel's output bias and does
            not depend on image size, but the paper's smallest images (28x28 MNIST) meet ``WS_u = 7`` at a
            quarter of their side, and 0.25 keeps every size the paper uses unchanged (28: 7, 32: 8, 224: 56).
            On 8x8 digits the uncapped ``WS_u = 7`` shuffles quarter-image 4x4 windows, which no model learns
            from (see docs/results.md); capped, the windows are 2x2. None: no cap. An explicit ``ws_upper`` is
            never capped.
        window: uniform mode: shuffle every region of this size (any size; edges absorb remainders) instead
            of Algorithm 1 -- the fixed-window baselines of Fig. 3. ``None``: Algorithm 1.
        statistic: the split test: ``"vfe"`` (the paper), ``"variance"`` (shuffle-invariant, needed to invert),
            ``"auto"`` (``"variance"`` with a key, else ``"vfe"``).
        low_vfe_window: ``"current"`` or ``"half"``, see the module notes.
        channel_shuffle: independent permutations per channel (the paper); False shares one permutation.
        key_file: path of a 32-byte key (:func:`generate_key`): keyed, invertible mode. Images are quantised
            to 8 bits first (``round(255 x) / 255``, see the module notes), so :meth:`inverse_transform` of a
            stored output gives those 8-bit values back exactly. The key is read from this file at ``fit``
            and again after unpickling; it is never pickled and never recorded next to the outputs (the
            path is not recorded either).
        n_jobs: worker threads (default: ``torch.get_num_threads()``).
        random_state: None draws permutations from OS entropy; an int makes every image's permutation a
            function of the image (or its id) and the seed.
    """

    name = "visualmixer"
    param_specs = {
        "target_vfe": float_param("VFE the shuffled image must reach (sets WS_l), in vfe_units", ge=0, le=1e6),
        "vfe_units": choice_param("normalized (Eq. 12) or image (Eq. 3 on [0, 1] pixels)", ("normalized", "image")),
        "confidence": float_param("probability with which the target VFE must be reached", gt=0, lt=1),
        "bound_method": choice_param("chi2 (exact tail) or normal (Eq. 12 approximation)", ("chi2", "normal")),
        "bias_d": float_param("output bias d of Sec. IV-C, in kernel-weight standard deviations", ge=0, le=1e3),
        "alpha": float_param("confidence alpha of Sec. IV-C", gt=0, lt=1),
        "kernel_mu": float_param("mean of the kernel weights of the Monte Carlo", ge=-1e6, le=1e6),
        "kernel_sigma": float_param("standard deviation of those weights", gt=0, le=1e6),
        "ws0": int_param("WS_0 of Algorithm 1 line 1, pixels", ge=2, le=65_536),
        "mc_samples": int_param("Monte Carlo draws for alpha_0 (memory grows with it)", ge=100, le=10_000_000),
        "ws_lower": int_param("WS_l given directly, pixels (none: derived)", ge=2, le=65_536, optional=True),
        "ws_upper": int_param("WS_u given directly, pixels (none: derived)", ge=1, le=65_536, optional=True),
        "max_window_fraction": float_param("cap of the derived WS_u, share of the shorter side (none: no cap)",
                                           gt=0, le=1, optional=True),
        "window": int_param("uniform mode: shuffle regions of this side, pixels (none: Algorithm 1)", ge=2,
                            le=65_536, optional=True),
        "statistic": choice_param("split test: vfe (the paper), variance (invertible) or auto",
                                  ("auto", "vfe", "variance")),
        "low_vfe_window": choice_param("window of low-VFE regions: current or half", ("current", "half")),
        "channel_shuffle": bool_param("independent permutations per channel (the paper)"),
        "key_file": path_param("32-byte key file of the keyed, invertible mode (none: not keyed)", optional=True),
        "n_jobs": int_param("worker threads (none: torch's thread count)", ge=1, le=1024, optional=True),
        "random_state": seed_param(),
    }
    private_params = frozenset({"key_file"})
    stochastic = True

    def __init__(
        self,
        target_vfe: float = 4.0,
        vfe_units: str = "normalized",
        confidence: float = 0.95,
        bound_method: str = "chi2",
        bias_d: float = 3.0,
        alpha: float = 0.3,
        kernel_mu: float = 0.0,
        kernel_sigma: float = 1.0,
        ws0: int = 3,
        mc_samples: int = 20000,
        ws_lower: int | None = None,
        ws_upper: int | None = None,
        max_window_fraction: float | None = 0.25,
        window: int | None = None,
        statistic: Statistic = "auto",
        low_vfe_window: str = "current",
        channel_shuffle: bool = True,
        key_file: str | None = None,
        n_jobs: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.target_vfe = target_vfe
        self.vfe_units = vfe_units
        self.confidence = confidence
        self.bound_method = bound_method
        self.bias_d = bias_d
        self.alpha = alpha
        self.kernel_mu = kernel_mu
        self.kernel_sigma = kernel_sigma
        self.ws0 = ws0
        self.mc_samples = mc_samples
        self.ws_lower = ws_lower
        self.ws_upper = ws_upper
        self.max_window_fraction = max_window_fraction
        self.window = window
        self.statistic = statistic
        self.low_vfe_window = low_vfe_window
        self.channel_shuffle = channel_shuffle
        self.key_file = key_file
        self.n_jobs = n_jobs
        self.random_state = random_state

    # -------------------------------------------------------------------------------- fitting
    def _check_params(self) -> None:
        if self.key_file is not None and self.statistic == "vfe":
            raise InvalidInputError("visualmixer: keyed mode needs statistic='variance' (or 'auto'): the VFE of "
                                    "the original regions cannot be recomputed from protected images, so the "
                                    "output could not be inverted")

    def fit(self, images: Tensor, labels: Tensor | None = None) -> VisualMixer:
        """Compute ``WS_u`` (Sec. IV-C) and ``WS_l`` for the images' size (Sec. IV-B); load the key.

        Fitted attributes: ``ws_upper_``, ``ws_lower_``, ``alpha0_`` (None when ``ws_upper`` was given),
        ``window_variances_`` (``units="image"`` only), ``image_size_``, ``statistic_``, ``keyed_``,
        ``key_check_`` (:func:`key_check_value` of the key, None without one).

        Raises:
            InvalidInputError: bad parameters or images, an unreadable key file.
        """
        self.validate_params()
        images = check_images(images)
        check_labels(labels, images.shape[0])
        h, w = images.shape[-2:]
        self.keyed_ = self.key_file is not None
        self._key = read_key(self.key_file) if self.keyed_ else None
        self.key_check_ = key_check_value(self._key) if self._key is not None else None
        self.statistic_ = ("variance" if self.keyed_ else "vfe") if self.statistic == "auto" else self.statistic
        if self.keyed_ and self.vfe_units == "image" and self.ws_lower is None and self.window is None:
            raise InvalidInputError("keyed mode with vfe_units='image' needs ws_lower: the window variances of the "
                                    "originals cannot be measured again on protected data when inverting")
        self.image_size_ = (int(h), int(w))
        self.window_variances_ = None
        if self.vfe_units == "image" and self.window is None and self.ws_lower is None:
            sample = images[: min(images.shape[0], 2000)].cpu().numpy()
            self.window_variances_ = window_variances(sample, range(2, min(h, w) + 1))
        if self.ws_upper is not None:
            self.alpha0_, self.ws_upper_ = None, int(self.ws_upper)
        else:
            self.alpha0_ = _cached_alpha0(float(self.bias_d), float(self.kernel_mu), float(self.kernel_sigma),
                                          int(self.mc_samples))
            self.ws_upper_ = window_upper_bound(self.alpha, self.alpha0_, ws0=self.ws0, max_ws=max(h, w))
        self.ws_lower_ = self._lower_bound(int(h), int(w))
        self.levels_ = self._levels(int(h), int(w))
        self._entropy = np.random.SeedSequence(resolve_seed(None))
        self._calls = 0
        self._diag: dict[str, float] = {}
        self._warned_depth = False
        return self

    def __getstate__(self) -> dict[str, Any]:
        """Pickled state without the raw key: it stays in ``key_file`` and is read again when needed."""
        state = self.__dict__.copy()
        if "_key" in state:
            state["_key"] = None
        return state

    def _lower_bound(self, h: int, w: int) -> int:
        if self.ws_lower is not None:
            return int(self.ws_lower)
        if self.window is not None:
            return int(self.window)
        return window_lower_bound(float(self.target_vfe), h, w, confidence=float(self.confidence),
                                  method=self.bound_method, units=self.vfe_units,
                                  sigma2=self.window_variances_)

    def _levels(self, h: int, w: int) -> tuple[int, ...]:
        if self.window is not None:  # uniform mode; a window at least the image size is the whole image
            return (min(self.window, h, w),)
        ws_lower = self.ws_lower_ if (h, w) == self.image_size_ else self._lower_bound(h, w)
        fraction = self.max_window_fraction if self.ws_upper is None else None  # an explicit WS_u is not capped
        return window_levels(h, w, ws_lower, self.ws_upper_, max_side_fraction=fraction)

    def _check_fitted(self) -> None:
        if not hasattr(self, "ws_upper_"):
            raise NotFittedError("VisualMixer must be fitted before transform; call fit(images) first")

    # ------------------------------------------------------------------------------- transform
    def _key_bytes(self) -> bytes:
        """The key: kept in memory after ``fit``, read again from ``key_file`` after unpickling."""
        key = getattr(self, "_key", None)
        if key is None:
            try:
                key = read_key(self.key_file)
            except InvalidInputError as exc:
                raise InvalidInputError(f"keyed VisualMixer cannot read its key again ({exc}); the key is kept "
                                        "only in its file, never in a pickled protector") from exc
            if getattr(self, "key_check_", None) not in (None, key_check_value(key)):
                raise InvalidInputError(f"key file {self.key_file} no longer holds the key this protector was "
                                        "fitted with")
            self._key = key
        return key

    def _secret(self) -> bytes | None:
        if self.keyed_:
            return self._key_bytes()
        if self.random_state is None:
            return None
        return hashlib.sha256(b"privis/visualmixer/seed" + str(resolve_seed(self.random_state)).encode()).digest()

    def _resolve_ids(self, x: np.ndarray, ids: Sequence[Any] | Tensor | np.ndarray) -> list[bytes]:
        if isinstance(ids, (Tensor, np.ndarray)):
            ids = ids.tolist()
        ids = list(ids)
        if len(ids) != x.shape[0]:
            raise InvalidInputError(f"ids must have one entry per image ({x.shape[0]}), got {len(ids)}")
        return [_id_bytes(v) for v in ids]

    def _run(self, images: Tensor, ids: Any, *, inverse: bool) -> Tensor:
        self._check_fitted()
        device = images.device if isinstance(images, Tensor) else None
        x = _checked_array(images)
        n, c, h, w = x.shape
        levels = self._levels(h, w)
        geo = _geometry(h, w, levels)
        planes = c if self.channel_shuffle else 1
        secret = self._secret()
        if inverse and not self.keyed_:
            raise InvalidInputError("inverse_transform needs the keyed mode (key_file=...); without a key the "
                                    "permutations are not recoverable")
        if self.keyed_:
            x = self._stored_values(x, note=not inverse)
        id_list = None
        if secret is not None and ids is not None:
            id_list = self._resolve_ids(x, ids)
        out = np.empty_like(x)
        per_chunk = max(1, _CHUNK_VALUES // (c * h * w))
        starts = list(range(0, n, per_chunk))
        self._calls += 1
        seeds = None if secret is not None else np.random.SeedSequence(
            self._entropy.entropy, spawn_key=(self._calls,)).spawn(len(starts))
        counts: list[np.ndarray] = [np.empty(0)] * len(starts)
        vfe_before = np.zeros(n)
        sizes: list[np.ndarray] = [np.empty(0)]

        fast = _fast_tiles(geo)

        def work(j: int) -> None:
            a, b = starts[j], min(starts[j] + per_chunk, n)
            plan = _plan(x[a:b], geo, self.statistic_, self.low_vfe_window)
            counts[j], sizes[0] = plan.counts, plan.sizes
            vfe_before[a:b] = plan.vfe
            keys = chunk_ids = None
            size = geo.canvas[0] * geo.canvas[1]
            if secret is not None:
                chunk_ids = content_ids(x[a:b])
                if id_list is not None:  # the caller's id, bound to the content so equal ids never share a stream
                    chunk_ids = [given + b"|" + cid for given, cid in zip(id_list[a:b], chunk_ids, strict=True)]
            rng = np.random.Generator(np.random.PCG64(seeds[j])) if seeds is not None else None
            if not fast:
                if chunk_ids is not None:
                    keys = _image_keys(secret, chunk_ids, planes, size)
                _shuffle_chunk(x[a:b], out[a:b], geo, plan, planes=planes, keys=keys, rng=rng, inverse=inverse)
                return
            # tiles: two words per tile and plane; edge regions (if any): one 32-bit key per position after them
            tw = _tile_words(geo, planes)
            if chunk_ids is not None:
                stream = _image_stream(secret, chunk_ids, tw + ((planes * size + 1) // 2 if geo.groups else 0))
                words = stream[:, :tw]
                if geo.groups:
                    keys = np.ascontiguousarray(stream[:, tw:]).view(np.uint32)[:, : planes * size]
                    keys = keys.reshape(b - a, planes, size)
            else:
                words = rng.bit_generator.random_raw((b - a) * tw).reshape(b - a, tw)
            _shuffle_tiles(x[a:b], out[a:b], geo, plan, planes=planes, words=words, inverse=inverse)
            _shuffle_edges(x[a:b], out[a:b], geo, plan, planes=planes, keys=keys, rng=rng, inverse=inverse)

        jobs = self.n_jobs or max(1, torch.get_num_threads())
        if jobs == 1 or len(starts) == 1:
            for j in range(len(starts)):
                work(j)
        else:
            with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
                list(pool.map(work, range(len(starts))))
        if not inverse:
            self._record(out, vfe_before, np.concatenate(counts), sizes[0], geo, planes)
        return torch.from_numpy(out).to(device)

    def _stored_values(self, x: np.ndarray, *, note: bool) -> np.ndarray:
        """``round(255 x) / 255`` as a new float32 array: the keyed mode shuffles what an 8-bit file stores.

        With ``note``, the first batch holding finer values (16-bit or float data) gets a warning that they
        are stored and restored at 8 bits.
        """
        q = x * np.float32(255)
        levels = np.rint(q)
        if note and not self._warned_depth and float(np.abs(q - levels, out=q).max(initial=0.0)) > 1e-3:
            self._warned_depth = True
            warnings.warn("keyed VisualMixer stores and restores images at 8 bits: these images hold finer values "
                          "(16-bit or float data), which are rounded to round(255 x)/255 before shuffling; "
                          "the restored images are those 8-bit values", UserWarning, stacklevel=4)
        np.clip(levels, 0.0, 255.0, out=levels)
        levels /= np.float32(255)
        return levels

    def _record(self, out: np.ndarray, vfe_before: np.ndarray, counts: np.ndarray, sizes: np.ndarray,
                geo: _Geometry, planes: int) -> None:
        """Keep the figures :meth:`diagnostics` reports (VFE after is measured on the first 16 images)."""
        bits, paper_bits = keyspace_bits_from_counts(counts, sizes, planes)
        pixels = counts * sizes  # (n, R) pixels per region class
        class_level = np.array(list(range(len(geo.levels))) + [g.level for g in geo.groups])
        diag = {
            "vfe_before_mean": float(vfe_before.mean()),
            "vfe_after_mean": float(_vfe_density_map(out[:16]).mean(dtype=np.float64)),
            "keyspace_bits_mean": float(bits.mean()),
            "keyspace_bits_paper_mean": float(paper_bits.mean()),
            "regions_mean": float(counts.sum(1).mean()),
            "ws_lower": float(self.ws_lower_),
            "ws_upper": float(self.ws_upper_),
            "window_largest": float(geo.levels[0]),
        }
        total = float(pixels.sum())
        for li, s in enumerate(geo.levels):
            diag[f"pixel_share_window_{s}"] = float(pixels[:, class_level == li].sum() / total)
        self._keyspace_bits = bits
        self._diag = diag

    def transform(self, images: Tensor, labels: Tensor | None = None, *,
                  ids: Sequence[Any] | Tensor | np.ndarray | None = None) -> Tensor:
        """Shuffle ``images`` ``(N, C, H, W)`` by Algorithm 1; returns the same shape, dtype float32.

        Args:
            images: canonical images in ``[0, 1]``.
            labels: ignored (the method is task-agnostic), but checked: ``(N,)`` integers or None.
            ids: optional per-image ids (ints, strings or bytes) for the seeded and keyed modes, combined with
                the shuffle-invariant content id (see the module notes). Ignored when drawing from OS entropy.
        """
        if labels is not None and isinstance(images, Tensor) and images.ndim == 4:  # else _run names the images
            check_labels(labels, images.shape[0])
        return self._run(images, ids, inverse=False)

    def inverse_transform(self, protected: Tensor, *, ids: Sequence[Any] | Tensor | np.ndarray | None = None,
                          ) -> Tensor:
        """Undo :meth:`transform` exactly with the key (keyed mode only); ``ids`` as given to ``transform``.

        Args:
            protected: ``(N, C, H, W)`` keyed outputs in ``[0, 1]`` (8-bit values, as stored in a PNG).

        Returns:
            ``(N, C, H, W)`` float32: ``round(255 x) / 255`` of the originals ``x`` when ``protected``, the key
            and the ids are the ones used; a wrong key, wrong ids or edited pixels give a wrong image, which
            only :func:`item_tag` detects.

        Raises:
            InvalidInputError: not fitted in keyed mode, or bad images/ids.
        """
        return self._run(protected, ids, inverse=True)

    def needs_exact_output(self) -> bool:
        """True in keyed mode: only losslessly stored outputs can be restored."""
        return self.key_file is not None

    def item_tags(self, images: Tensor, ids: Sequence[str]) -> list[str] | None:
        """Keyed mode: :func:`item_tag` of each image's 8-bit values ``round(255 x)`` under its id; else None.

        Args:
            images: ``(N, C, H, W)`` originals in ``[0, 1]`` (or restored images, to check them).
            ids: ``N`` item ids (strings, ints or bytes), the ones the engine records with each item.

        Raises:
            InvalidInputError: bad images, ids of another length or type, an unreadable key file.
        """
        if self.key_file is None:
            return None
        x = stored_pixels(_checked_array(images))
        if len(ids) != x.shape[0]:
            raise InvalidInputError(f"ids must have one entry per image ({x.shape[0]}), got {len(ids)}")
        key = self._key_bytes()
        return [item_tag(key, ident, pixels) for ident, pixels in zip(ids, x, strict=True)]

    def public_record(self) -> dict[str, Any]:
        """Keyed mode: ``{"key_check": key_check_value(key)}`` (never the key); else ``{}``."""
        if self.key_file is None:
            return {}
        return {"key_check": key_check_value(self._key_bytes())}

    def diagnostics(self) -> dict[str, float]:
        """Figures of the last ``transform``.

        Mean VFE before/after (Eq. 3-4 on ``[0, 1]`` pixels; before on all images, after on the first 16),
        mean keyspace bits per image (product and the paper's sum formula), mean number of regions, the
        bounds, and the share of pixels shuffled at each window size.
        """
        return dict(getattr(self, "_diag", {}))

    def keyspace_bits(self) -> np.ndarray:
        """Per-image keyspace of the last ``transform``, ``(N,)`` float64 bits: ``log2 prod_i (k_i!)^C`` over
        each image's actual regions (:func:`privis.privacy.keyspace_bits_from_counts`); empty before the
        first call. A figure of the call, like :meth:`diagnostics`, not fitted state."""
        return np.array(getattr(self, "_keyspace_bits", np.empty(0)), dtype=np.float64)

    def service_input_layer(self) -> nn.Module:
        """A :class:`WindowSort` on the smallest window: the server's model sees each cell sorted.

        Beyond the paper. The information a VisualMixer image keeps is each region's pixel multiset; the
        order inside a region is noise that a model otherwise has to learn to ignore from one random draw
        per image. Sorting the smallest-window cells (every region is a union of them) removes that noise
        inside each cell. It needs only the protected image and the public grid, so it reveals nothing
        more; where all regions are smallest-window cells (8x8 digits) the model sees a deterministic image.
        """
        self._check_fitted()
        return WindowSort(self.levels_[-1])


@lru_cache(maxsize=16)
def _cached_alpha0(d: float, mu: float, sigma: float, samples: int) -> float:
    return alpha0(d, mu_w=mu, sigma_w=sigma, samples=samples, seed=0)
