"""VisualMixer (VIM): VFE-guided pixel shuffling (Sections III-IV, Algorithm 1 of Q. Li, Y. Zhang, J. Ren,
Q. Li and Y. Zhang, "You Can Use But Cannot Recognize: Preserving Visual Privacy in Deep Neural Networks",
NDSS 2024, arXiv:2404.04098).

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
  text says "shuffled using the next level of WS, i.e. Size(R_i)/2"; we use the region's
  current size, which lets the coarsest window (bounded by ``WS_u``) actually occur.
  ``low_vfe_window="current"`` (default) shuffles the whole region; ``"half"`` shuffles its four quadrants
  separately (the literal line 16-18).
* The median test compares VFE densities (Eq. 2 divided by the region's pixel count, i.e. Eq. 3 restricted
  to the region) so that regions of different levels compare with one ``VFE_m``; ``VFE_m`` is the median
  over the image's initial regions ("median VFE of the initial segmented set", Sec. IV-D). Multi-channel
  images use the channel mean (Eq. 4).
* Edges. Regions tile from the top-left on the grid of :mod:`privis.metrics.regions` (``remainder="absorb"``):
  along an axis whose size is not a multiple of the window ``s``, the last region absorbs the remainder (it
  is ``s + (H mod s)`` tall), so no region is ever smaller than the smallest window; a right/bottom edge
  region can reach ``2s - 1`` pixels along that axis, i.e. exceed ``WS_u`` by less than the window. Finer
  levels refine coarser ones (the cut points are nested). An image smaller than the smallest window along
  either axis is an :class:`~privis.errors.InvalidInputError`.
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

  - the *counter scheme* (``permutations="counter"``, :mod:`~privis.methods.visualmixer.counter`), for any
    window: the stream is replaced by two 32-bit words of ``HMAC-SHA256(secret, "privis/visualmixer/counter/v1"
    || image id)``, and the sort key of every position is a keyed integer hash of (plane, position), so keys
    can be made anywhere and in any order: on a GPU, in int64 arithmetic that never overflows, with the same
    bits as on the CPU. The regions are then permuted by the sort path above.

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

Modules: :mod:`~privis.methods.visualmixer.keys` (key files, key check value, item tags, per-image
streams), :mod:`~privis.methods.visualmixer.partition` (region grids of every level, statistics, the split
test), :mod:`~privis.methods.visualmixer.permute` (permutation tables, shuffles and the functional core
:func:`shuffle_regions`), :mod:`~privis.methods.visualmixer.counter` (the counter scheme in torch, on any
device), :mod:`~privis.methods.visualmixer.service` (:class:`WindowSort`) and
:mod:`~privis.methods.visualmixer.protector` (:class:`VisualMixer`, which calls :func:`shuffle_regions`).

Implementation on the CPU: numpy. A batch is cut into chunks of about a million values, processed by a
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

Which scheme runs where (``permutations``). The table scheme is numpy on the CPU: images on another device
are moved to the CPU and back. The counter scheme runs where the images are: on a GPU, the partition (the
same float32 operations in the same order as the numpy partition, so the same decisions), the keys, the sort
of every tile row and the gathers are torch operations on the device, with two host transfers per batch (the
content ids for the per-image HMAC, and the region counts of the diagnostics); on the CPU it runs through the
numpy sort path with the counter keys (faster there than torch's sort), giving the same output bit for bit.
On the CPU the table scheme is about twice as fast as the counter scheme (CPU time per image), so
``"auto"`` (the default) keeps unkeyed images there and takes the counter scheme for images on a GPU. The
schemes give different outputs for the same seed or key, and keyed outputs restore only with their own
scheme: keyed mode therefore takes the counter scheme under ``"auto"`` on every device (a keyed output is the
same bit for bit wherever it was made, and restores anywhere) and records it next to the outputs, from which
:func:`privis.engine.restore.unprotect_folder` rebuilds the protector; keyed outputs of earlier versions
(table scheme, no such record) restore with the table scheme. Seeded unkeyed outputs under ``"auto"``
therefore differ between a CPU and a GPU; pass ``permutations="counter"`` for the same output on both.

Examples:
    >>> import torch
    >>> from privis.methods.visualmixer import VisualMixer
    >>> x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> vm = VisualMixer(random_state=0).fit(x)
    >>> vm.levels_
    (4, 2)
    >>> y = vm.transform(x)
    >>> torch.equal(y, vm.transform(x))  # seeded: a function of the image and the seed
    True
"""

from privis.methods.visualmixer.keys import (
    KEY_BYTES,
    content_ids,
    generate_key,
    id_bytes,
    item_tag,
    key_check_value,
    read_key,
    seed_secret,
    stored_pixels,
)
from privis.methods.visualmixer.partition import Statistic, window_levels
from privis.methods.visualmixer.permute import ShuffleStats, shuffle_regions
from privis.methods.visualmixer.protector import VisualMixer
from privis.methods.visualmixer.service import WindowSort, sort_within_windows

__all__ = [
    "KEY_BYTES",
    "ShuffleStats",
    "Statistic",
    "VisualMixer",
    "WindowSort",
    "content_ids",
    "generate_key",
    "id_bytes",
    "item_tag",
    "key_check_value",
    "read_key",
    "seed_secret",
    "shuffle_regions",
    "sort_within_windows",
    "stored_pixels",
    "window_levels",
]
