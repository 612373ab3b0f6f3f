"""VisualMixer's secrets: key files, the key check value, item tags and the per-image random streams.

Nothing here shuffles. A key file holds 32 random bytes (:func:`generate_key`); the seeded mode's secret is
``SHA-256("privis/visualmixer/seed" || random_state)`` (:func:`seed_secret`). Every image gets its own
stream, ``HMAC-SHA256(secret, "privis/visualmixer/v1" || id)`` setting a ``PCG64`` generator, where ``id`` is
the caller's id (typed, :func:`id_bytes`) and/or the shuffle-invariant :func:`content_ids`. What the owner
may publish next to keyed outputs, and which helps no one undo the protection: :func:`key_check_value`
(a MAC of a constant) and :func:`item_tag` (a MAC of each stored original bound to its item id).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from privis.errors import InvalidInputError
from privis.fsutil import atomic_write_bytes
from privis.random import resolve_seed

__all__ = ["KEY_BYTES", "content_ids", "generate_key", "id_bytes", "item_tag", "key_check_value", "read_key",
           "seed_secret", "stored_pixels"]

KEY_BYTES = 32
_DOMAIN = b"privis/visualmixer/v1"
_COUNTER_DOMAIN = b"privis/visualmixer/counter/v1"
_SEED_DOMAIN = b"privis/visualmixer/seed"
_KEY_CHECK_DOMAIN = b"privis/visualmixer/key-check/v1"
_TAG_DOMAIN = b"privis/visualmixer/item-tag/v1"
_CHECK_BYTES = 16  # key check values and item tags: HMAC-SHA256 truncated to 128 bits
_QUANT_ID = 4095  # quantisation of the content id


def generate_key(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a new 32-byte key from OS entropy to ``path`` (atomic, permissions 0600) and return the path.

    Raises:
        InvalidInputError: ``path`` exists and ``overwrite`` is False, or it exists and is no key file (not a
            regular file of exactly 32 bytes): ``overwrite`` replaces a key, never another file.

    Examples:
        >>> import tempfile, pathlib
        >>> path = generate_key(pathlib.Path(tempfile.mkdtemp()) / "vm.key")
        >>> len(read_key(path)), oct(path.stat().st_mode & 0o777)
        (32, '0o600')
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidInputError(f"key file {path} already exists; pass overwrite=True to replace it (data "
                                "protected with the old key can then no longer be restored)")
    if path.exists() and (not path.is_file() or path.stat().st_size != KEY_BYTES):
        size = f"{path.stat().st_size} bytes" if path.is_file() else "not a regular file"
        raise InvalidInputError(f"{path} is not a key file ({size}; a key holds exactly {KEY_BYTES} bytes): "
                                "overwrite=True replaces only a key file, refusing to overwrite it")
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
    about the key itself.

    Examples:
        >>> len(key_check_value(bytes(32))), key_check_value(bytes(32)) == key_check_value(bytes(31) + b"x")
        (32, False)
    """
    return hmac.digest(key, _KEY_CHECK_DOMAIN, "sha256")[:_CHECK_BYTES].hex()


def item_tag(key: bytes, item_id: str | int | bytes, pixels: np.ndarray) -> str:
    """Keyed MAC of one stored original, bound to its item id (hex, 32 characters).

    ``HMAC-SHA256(key, domain || len(id) || id || C, H, W || pixels)`` truncated to 16 bytes, where ``id`` is
    the typed encoding of ``item_id`` and ``pixels`` the original's ``(C, H, W)`` uint8 values
    ``round(255 x)`` in C order. A restored image is the original exactly when its tag matches.

    Raises:
        InvalidInputError: ``pixels`` is not a ``(C, H, W)`` uint8 array, or a bad id type.

    Examples:
        >>> import numpy as np
        >>> pixels = np.zeros((1, 2, 2), dtype=np.uint8)
        >>> item_tag(bytes(32), "a.png", pixels) == item_tag(bytes(32), "b.png", pixels)  # bound to the id
        False
    """
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise InvalidInputError(f"item_tag needs (C, H, W) uint8 pixels, got {getattr(pixels, 'shape', pixels)!r}")
    ident = id_bytes(item_id)
    head = len(ident).to_bytes(4, "big") + ident + b"".join(int(v).to_bytes(4, "big") for v in pixels.shape)
    mac = hmac.new(key, _TAG_DOMAIN + head, "sha256")
    mac.update(np.ascontiguousarray(pixels).data)
    return mac.digest()[:_CHECK_BYTES].hex()


def stored_pixels(images: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` float in ``[0, 1]`` -> uint8 ``round(255 x)``: the values an 8-bit PNG stores."""
    return np.rint(np.clip(images, 0.0, 1.0) * np.float32(255)).astype(np.uint8)


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

    Examples:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).random((1, 3, 4, 4))
        >>> content_ids(x) == content_ids(x[..., ::-1, :])  # any rearrangement of a channel keeps its id
        True
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


def id_bytes(value: Any) -> bytes:
    """Typed encoding of an image or item id: ``b"b" + bytes``, ``b"i" + decimal int`` or ``b"s" + UTF-8 str``.

    Raises:
        InvalidInputError: anything else (bools, floats, ...).
    """
    if isinstance(value, bytes):
        return b"b" + value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return b"i" + str(int(value)).encode()
    if isinstance(value, str):
        return b"s" + value.encode("utf-8")
    raise InvalidInputError(f"image ids must be ints, strings or bytes, got {type(value).__name__}")


def seed_secret(random_state: int) -> bytes:
    """The seeded mode's secret: ``SHA-256("privis/visualmixer/seed" || decimal seed)``, 32 bytes."""
    return hashlib.sha256(_SEED_DOMAIN + str(resolve_seed(random_state)).encode()).digest()


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



def _counter_words(secret: bytes | None, ids: Sequence[bytes] | None, n: int,
                   entropy: np.random.SeedSequence | None) -> np.ndarray:
    """Per-image keys ``(n, 2)`` int64 (each in ``[0, 2^32)``) of the counter scheme.

    With a secret: the first 8 bytes of ``HMAC-SHA256(secret, "privis/visualmixer/counter/v1" || id)`` as two
    little-endian 32-bit words (one HMAC per image, the only per-image Python work). Without: 64 bits per image
    drawn from ``entropy`` (None: OS entropy).
    """
    if secret is None:
        rng = np.random.Generator(np.random.PCG64(entropy or np.random.SeedSequence()))
        return rng.integers(0, 1 << 32, size=(n, 2), dtype=np.int64)
    assert ids is not None and len(ids) == n
    raw = b"".join(hmac.digest(secret, _COUNTER_DOMAIN + ident, "sha256")[:8] for ident in ids)
    return np.frombuffer(raw, dtype="<u4").reshape(n, 2).astype(np.int64)
