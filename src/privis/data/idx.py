"""IDX files and the Fashion-MNIST dataset built on them.

IDX is the plain array format of MNIST and Fashion-MNIST: two zero bytes, a dtype code, the number of
dimensions, each dimension as a big-endian uint32, then the data in C order, big-endian. Files may be
gzip-compressed (recognised by the gzip magic bytes, not by the file name).

Fashion-MNIST is looked for, in order, in an explicit ``root``; else in ``$PRIVIS_DATA`` (the folder
itself or its ``fashion-mnist/`` subfolder), Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``) and the privis cache (``$XDG_CACHE_HOME/privis/fashion-mnist``,
default ``~/.cache/privis/fashion-mnist``). When none holds it, the files are downloaded from the official
mirrors into the cache, each checked against the MD5 published in the Fashion-MNIST README before it is
written (atomically), so the cache never holds a partial or unverified file.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from privis.data.dataset import Dataset, images_from_numpy
from privis.errors import DatasetError, ImageFileError
from privis.fsutil import atomic_write_bytes

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_MD5",
    "FASHION_MNIST_URLS",
    "Fetch",
    "download_fashion_mnist",
    "fashion_mnist",
    "fashion_mnist_cache_dir",
    "fashion_mnist_search_dirs",
    "find_fashion_mnist",
    "read_idx",
    "urllib_fetch",
]

#: IDX dtype code -> NumPy dtype (big-endian, as stored).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

#: split -> (images file, labels file).
FASHION_MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: MD5 of each official .gz file, as published in the Fashion-MNIST README. Downloads are checked
#: against these. Locally installed copies are not: Debian's package recompresses the files (different
#: .gz bytes, same arrays), so those are checked structurally instead.
FASHION_MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

#: Official mirrors, tried in order; a file name is appended to each.
FASHION_MNIST_URLS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

#: Where Debian's ``dataset-fashion-mnist`` package installs the files (module-level so tests can swap it).
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)

_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_INSTALL_HINT = (
    "install it with `apt-get install dataset-fashion-mnist`, or set $PRIVIS_DATA to a folder holding the "
    "four files (or a fashion-mnist/ subfolder with them)"
)

#: A download function: ``fetch(url, timeout_seconds) -> bytes``; raises on any failure.
Fetch = Callable[[str, float], bytes]


# --------------------------------------------------------------------------------------------- IDX


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array.

    Args:
        path: the file.

    Returns:
        An array of the file's shape (all dimensions, e.g. ``(N, 28, 28)`` for images, ``(N,)`` for
        labels) in native byte order; dtype from the IDX code (0x08 uint8, 0x09 int8, 0x0B int16,
        0x0C int32, 0x0D float32, 0x0E float64).

    Raises:
        DatasetError: the file does not exist.
        ImageFileError: unreadable file, corrupt gzip data, bad magic number, or data shorter or longer
            than the header promises; the error names the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such IDX file") from None
    except OSError as exc:
        raise ImageFileError(path, f"cannot read IDX file ({exc})") from exc

    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ImageFileError(path, f"corrupt or truncated gzip data ({exc})") from exc

    if len(raw) < 4:
        raise ImageFileError(path, f"truncated: {len(raw)} bytes, shorter than the 4-byte IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ImageFileError(path, f"not an IDX file: bad magic number 0x{raw[:4].hex()}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ImageFileError(path, f"truncated: the header of {ndim} dimensions needs {header} bytes")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[raw[2]]
    count = math.prod(dims)
    expected = count * dtype.itemsize
    actual = len(raw) - header
    if actual < expected:
        raise ImageFileError(
            path, f"truncated: header promises shape {dims} ({expected} bytes of data), file holds {actual}"
        )
    if actual > expected:
        raise ImageFileError(path, f"{actual - expected} unexpected bytes after the data of shape {dims}")
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------------------------- where it lives


def fashion_mnist_cache_dir() -> Path:
    """The download cache: ``$XDG_CACHE_HOME/privis/fashion-mnist`` or ``~/.cache/privis/fashion-mnist``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "privis" / "fashion-mnist"


def fashion_mnist_search_dirs(root: str | Path | None = None) -> list[Path]:
    """The folders searched for Fashion-MNIST, in order.

    With an explicit ``root`` only ``root`` and ``root/fashion-mnist`` are searched (a named location
    that lacks the files is an error, not a reason to quietly use other data). Otherwise:
    ``$PRIVIS_DATA`` and ``$PRIVIS_DATA/fashion-mnist``, the Debian package folder, then the cache.
    """
    if root is not None:
        root = Path(root).expanduser()
        return [root, root / "fashion-mnist"]
    dirs: list[Path] = []
    env = os.environ.get("PRIVIS_DATA")
    if env:
        base = Path(env).expanduser()
        dirs += [base, base / "fashion-mnist"]
    dirs += list(SYSTEM_DIRS)
    dirs.append(fashion_mnist_cache_dir())
    return dirs


def _file_in(folder: Path, name: str) -> Path | None:
    """``folder/name``, or its uncompressed twin (``name`` without ``.gz``), whichever exists."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def find_fashion_mnist(split: str = "train", root: str | Path | None = None) -> tuple[Path, Path] | None:
    """Locate the (images, labels) files of a split without downloading; ``None`` when absent."""
    images_name, labels_name = _split_files(split)
    for folder in fashion_mnist_search_dirs(root):
        images, labels = _file_in(folder, images_name), _file_in(folder, labels_name)
        if images is not None and labels is not None:
            return images, labels
    return None


def fashion_mnist_available(root: str | Path | None = None) -> bool:
    """True when both Fashion-MNIST splits are on this machine (no download is attempted)."""
    return find_fashion_mnist("train", root) is not None and find_fashion_mnist("test", root) is not None


def _split_files(split: str) -> tuple[str, str]:
    if split not in FASHION_MNIST_FILES:
        raise DatasetError(f"Fashion-MNIST has no split {split!r} (splits: train, test)")
    return FASHION_MNIST_FILES[split]


# ----------------------------------------------------------------------------------------- download


def urllib_fetch(url: str, timeout: float) -> bytes:
    """Download ``url`` with urllib (the default :data:`Fetch`); refuses bodies over 64 MiB."""
    request = urllib.request.Request(url, headers={"User-Agent": "privis"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = response.read(_MAX_DOWNLOAD_BYTES + 1)
    if len(data) > _MAX_DOWNLOAD_BYTES:
        raise OSError(f"response larger than {_MAX_DOWNLOAD_BYTES} bytes")
    return data


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def download_fashion_mnist(
    dest: str | Path | None = None,
    *,
    splits: Sequence[str] = ("train", "test"),
    fetch: Fetch | None = None,
    urls: Sequence[str] = FASHION_MNIST_URLS,
    timeout: float = 60.0,
) -> Path:
    """Download the Fashion-MNIST files of ``splits`` into ``dest``, each verified by its official MD5.

    A file already in ``dest`` with the right MD5 is kept. Each mirror in ``urls`` is tried in turn;
    a body whose MD5 differs is refused and never written. Verified files are written atomically.

    Args:
        dest: target folder (default: :func:`fashion_mnist_cache_dir`).
        splits: which splits to fetch (``"train"``, ``"test"``).
        fetch: ``fetch(url, timeout) -> bytes`` (default :func:`urllib_fetch`); pass a fake in tests.
        urls: mirror base URLs, each ending in ``/``.
        timeout: seconds per request.

    Returns:
        ``dest``.

    Raises:
        DatasetError: some file could not be fetched with the right checksum from any mirror; the
            message lists each attempt.
    """
    dest = Path(dest) if dest is not None else fashion_mnist_cache_dir()
    fetch = fetch or urllib_fetch
    for split in splits:
        for name in _split_files(split):
            expected = FASHION_MNIST_MD5[name]
            target = dest / name
            if target.is_file() and _md5(target.read_bytes()) == expected:
                continue
            attempts: list[str] = []
            for base in urls:
                url = base + name
                try:
                    data = fetch(url, timeout)
                except Exception as exc:  # any network/IO failure: record it, try the next mirror
                    attempts.append(f"{url}: {type(exc).__name__}: {exc}")
                    continue
                digest = _md5(data)
                if digest != expected:
                    attempts.append(f"{url}: MD5 {digest} differs from the official {expected}, refused")
                    continue
                atomic_write_bytes(target, data)
                break
            else:
                raise DatasetError(f"could not download {name} into {dest}: " + "; ".join(attempts))
    return dest


# ------------------------------------------------------------------------------------------ dataset


def _fashion_arrays(
    split: str,
    root: str | Path | None,
    *,
    download: bool,
    fetch: Fetch | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Find (or download) and read one split: ``(images (N, 28, 28) uint8, labels (N,) uint8)``."""
    found = find_fashion_mnist(split, root)
    if found is None:
        looked = ", ".join(str(d) for d in fashion_mnist_search_dirs(root))
        if root is not None or not download:
            raise DatasetError(
                f"Fashion-MNIST {split} files not found (looked in: {looked}); {_INSTALL_HINT}"
            )
        cache = fashion_mnist_cache_dir()
        try:
            download_fashion_mnist(cache, splits=(split,), fetch=fetch)
        except DatasetError as exc:
            raise DatasetError(
                f"Fashion-MNIST {split} files not found (looked in: {looked}) and the download "
                f"failed ({exc}); {_INSTALL_HINT}"
            ) from exc
        found = find_fashion_mnist(split, cache)
        assert found is not None  # download_fashion_mnist wrote both files or raised
    images_path, labels_path = found
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.shape != (images.shape[0],):
        raise DatasetError(
            f"{labels_path}: expected {images.shape[0]} uint8 labels to match {images_path.name}, "
            f"got {labels.dtype} {labels.shape}"
        )
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise DatasetError(f"{labels_path}: label {int(labels.max())} outside 0..9")
    return images, labels


def fashion_mnist(
    split: str = "train",
    root: str | Path | None = None,
    *,
    download: bool = True,
    fetch: Fetch | None = None,
    index: slice = slice(None),
) -> Dataset:
    """Load Fashion-MNIST (Zalando): 28x28 grey clothing images, 10 classes.

    Args:
        split: ``"train"`` (60000 images) or ``"test"`` (the 10000 ``t10k`` images).
        root: an explicit folder holding the files (or a ``fashion-mnist/`` subfolder with them);
            when given, only it is searched and nothing is downloaded.
        download: when the files are nowhere local, fetch them into the cache (MD5-verified).
        fetch: the download function (see :func:`download_fashion_mnist`).
        index: which items to keep, applied before conversion to float (cheap for small slices).

    Returns:
        ``Dataset`` with images ``(N, 1, 28, 28)`` float32 in [0, 1] (pixel / 255), labels ``(N,)``,
        class names :data:`FASHION_MNIST_CLASSES`, name ``"fashion-mnist:<split>"``.

    Raises:
        DatasetError: not found locally and not downloadable, saying where it looked and how to install.
        ImageFileError: a file is truncated or not IDX.
    """
    images, labels = _fashion_arrays(split, root, download=download, fetch=fetch)
    images, labels = images[index], labels[index]
    return Dataset(
        images=images_from_numpy(images, source=f"fashion-mnist:{split}"),
        labels=torch.from_numpy(labels.astype(np.int64)),
        class_names=list(FASHION_MNIST_CLASSES),
        name=f"fashion-mnist:{split}",
    )

