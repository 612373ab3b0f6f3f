"""Streaming item sources: enumerate a dataset item by item without holding it in memory.

``privis.engine`` protects datasets of any size: it must never hold more than a few batches of images.
:func:`open_source` turns a dataset spec into a :class:`StreamSource` whose :meth:`~StreamSource.items`
yields :class:`StreamItem` records lazily:

- ``folder:PATH``: walked lazily by the one folder walker (:mod:`privis.data.walk`: classes, root files,
  hidden files, links, odd names, one size and channel count decided from every header) and decoded
  later, by the caller, with :func:`decode_item` (which uses :func:`privis.data.imagefile.decode_image`), so
  a folder streams exactly as :func:`privis.data.load_folder` reads it. A folder written by privis (with
  a ``manifest.json``) keeps its class names and folder mapping, and every file it lists is checked
  against its SHA-256 (the manifest itself is read whole).
- ``npz:PATH``: the ``images`` array is read row block by row block straight from the archive member
  (compressed or stored), never as a whole; ``labels`` and ``paths`` (small, one value per item) are read
  whole.
- built-in datasets (``digits``, ``fashion-mnist``, ...): loaded whole (the largest has 60,000 28x28
  images) and handed out one item at a time.
- an in-memory :class:`~privis.data.Dataset`: handed out one item at a time.

Each item has a stable ``id`` (the relative path for files, else the index within the split), its
``position`` in the full enumeration (used to align batches, so a resumed run batches like a fresh one),
its label, and either a file to decode or an already decoded array. Sharding (``shard=k,
num_shards=m``) keeps the items whose position is ``k`` modulo ``m``; every shard enumerates the same
order, so the union of the shards is the whole source, each item once.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from privis.data.dataset import Dataset
from privis.data.folder import MANIFEST_NAME
from privis.data.imagefile import decode_image
from privis.data.spec import parse_spec
from privis.data.walk import FolderTree, item_id, name_text, printable_name
from privis.errors import DatasetError, ImageFileError

__all__ = [
    "ArraySource",
    "FolderSource",
    "NpzSource",
    "StreamItem",
    "StreamSource",
    "decode_item",
    "open_source",
    "to_chw",
]


@dataclass
class StreamItem:
    """One item of a streamed dataset.

    Attributes:
        id: stable identifier across runs: the POSIX path relative to the folder root for files, the
            archive's ``paths`` entry or the index within the split for arrays.
        position: 0-based position in the full (unsharded) enumeration.
        label: class index into the source's ``class_names``.
        rel: relative POSIX path the output keeps (its stem and folders), or ``None`` (arrays without paths).
        source: what a manifest records as the item's origin (the relative path, or ``SPEC#index``).
        file: the file to decode, or ``None`` when ``array`` holds the pixels.
        array: decoded pixels ``(H, W)`` or ``(H, W, 3)`` (``array / scale`` in [0, 1]), or ``None``.
        scale: divisor bringing ``array`` to [0, 1].
        sha256: expected SHA-256 of ``file`` (folders written by privis), or ``None``.
        error: why the item is unusable, known at enumeration (e.g. an output name collision), or ``None``.
        orientation: the EXIF orientation :func:`decode_item` applied to the file (1 = none, 2-8 = the
            tag: the output is the image as it displays, not as stored), or ``None`` before decoding and
            for arrays.
    """

    id: str
    position: int
    label: int
    rel: str | None
    source: str
    file: Path | None = None
    array: np.ndarray | None = None
    scale: float = 1.0
    sha256: str | None = None
    error: str | None = None
    orientation: int | None = None


def to_chw(array: np.ndarray, scale: float, path: str | Path = "<array>") -> np.ndarray:
    """Pixels ``(H, W)`` or ``(H, W, 3)`` (``array / scale`` in [0, 1]) as a float32 ``(C, H, W)`` array.

    Raises:
        ImageFileError: wrong rank, NaN/infinity, or values outside [0, 1] after scaling.
    """
    values = np.asarray(array)
    if values.ndim == 2:
        values = values[None]
    elif values.ndim == 3 and values.shape[-1] in (1, 3):
        values = np.moveaxis(values, -1, 0)
    else:
        raise ImageFileError(path, f"pixels of shape {values.shape} are neither (H, W) nor (H, W, 1 or 3)")
    out = values.astype(np.float32)
    if scale != 1.0:
        out /= np.float32(scale)
    if out.size:
        lo, hi = float(out.min()), float(out.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ImageFileError(path, "pixels contain NaN or infinity")
        if lo < 0.0 or hi > 1.0:
            raise ImageFileError(path, f"pixel values span [{lo}, {hi}], not within [0, 1]")
    return np.ascontiguousarray(out)


def decode_item(item: StreamItem) -> np.ndarray:
    """Decode one item to a float32 ``(C, H, W)`` array in [0, 1] (thread-safe; meant for reader pools).

    A file is turned upright by its EXIF orientation, and ``item.orientation`` is set to the tag applied
    (1 = none), for the run's records. Errors name the file by :func:`~privis.data.walk.printable_name`.

    Raises:
        ImageFileError: the item is bad (known at enumeration, unreadable, truncated, a SHA-256 that
            differs from the folder's manifest, unsupported mode ...); the error names the file.
    """
    where: str | Path = printable_name(str(item.file)) if item.file is not None else item.source
    if item.error is not None:
        raise ImageFileError(where, item.error)
    if item.file is not None:
        try:
            data = item.file.read_bytes()
        except OSError as exc:
            raise ImageFileError(where, f"cannot read file ({exc.strerror or exc})") from exc
        if item.sha256 is not None and hashlib.sha256(data).hexdigest() != item.sha256:
            raise ImageFileError(where, f"SHA-256 differs from {MANIFEST_NAME}: the file changed after writing")
        array, scale, item.orientation = decode_image(where, data)
        return to_chw(array, scale, where)
    if item.array is None:
        raise ImageFileError(where, "item has neither a file nor pixels")
    return to_chw(item.array, item.scale, where)


class StreamSource:
    """A dataset enumerated lazily (see the module docstring).

    Attributes:
        name: the spec (``folder:PATH``, ``npz:PATH``, ``digits:train``, ...).
        class_names: class of each label.
        class_dirs: output folder name of each class (the input's own folder names for folders), or
            ``None`` to let the writer derive them from ``class_names``.
        inputs: files or folders the output must never overlap.
        ignored: entries found but never items by rule (a folder's hidden files, link loops), each
            ``{"path", "reason"}``; ``count() + len(ignored)`` is everything found.
    """

    name: str = ""
    class_names: list[str]
    class_dirs: list[str] | None = None
    inputs: list[Path]
    ignored: list[dict[str, str]] = []

    def items(self, shard: int = 0, num_shards: int = 1) -> Iterator[StreamItem]:
        """Yield the items whose position is ``shard`` modulo ``num_shards``, in enumeration order."""
        raise NotImplementedError

    def count(self) -> int:
        """Number of items (one enumeration pass without decoding; cheap next to protecting)."""
        return sum(1 for _ in self.items())

    def run_shape(self) -> tuple[tuple[int, int, int], str]:
        """The run's image shape ``(C, H, W)`` decided over the whole source, and what fixed it (the
        first item of that shape, named in size errors).

        Raises:
            ImageFileError: (folders) no item has a usable header: the first bad one.
            DatasetError: the source holds no items.
        """
        raise NotImplementedError


def _check_shard(shard: int, num_shards: int) -> None:
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise DatasetError(f"shard {shard} of {num_shards} does not exist")


# ------------------------------------------------------------------------------------------- folders


class FolderSource(StreamSource):
    """A folder of images, walked by the rules of :mod:`privis.data.walk` (as :func:`privis.data.load_folder`).

    Items are enumerated lazily (one listing per folder level held; a privis folder's manifest is read
    whole). Ids are :func:`~privis.data.walk.item_id`, ``rel`` and ``source`` the
    :func:`~privis.data.walk.name_text` of the relative path (valid UTF-8 whatever the OS's bytes), and
    ``file`` the file itself. Bad items known without reading pixels (broken links, output name
    collisions, ...) carry their ``error``; ignored entries (hidden, link loops) are no items but are
    listed in :attr:`ignored`. The size and channels of a run are decided over the whole folder's
    headers (:meth:`run_shape`, one pass, cached).
    """

    def __init__(self, path: str | Path) -> None:
        self.tree = FolderTree(path)
        self.root = self.tree.root
        self.name = f"folder:{name_text(str(path))}"
        self.inputs = [self.root]
        self.class_names = list(self.tree.class_names)
        self.class_dirs = list(self.tree.class_dirs)

    @property
    def ignored(self) -> list[dict[str, str]]:  # type: ignore[override]
        return self.tree.plan().ignored

    def count(self) -> int:
        return self.tree.plan().items

    def run_shape(self) -> tuple[tuple[int, int, int], str]:
        plan = self.tree.plan()
        if plan.size is None:
            raise self.tree.no_image()
        return (plan.channels, plan.size[1], plan.size[0]), plan.first

    def items(self, shard: int = 0, num_shards: int = 1) -> Iterator[StreamItem]:
        _check_shard(shard, num_shards)
        position = 0
        for entry in self.tree.entries():
            if entry.ignored:
                continue
            if position % num_shards == shard:
                text = entry.text
                yield StreamItem(id=item_id(entry.rel), position=position, label=entry.label, rel=text,
                                 source=text, file=self.root / entry.rel, sha256=entry.sha256, error=entry.error)
            position += 1


# ---------------------------------------------------------------------------------------------- npz


def _open_npy_member(archive: zipfile.ZipFile, key: str) -> tuple[object, tuple[int, ...], np.dtype, bool]:
    """Open ``key.npy`` of an archive as a stream positioned at the data: ``(stream, shape, dtype, fortran)``."""
    fh = archive.open(f"{key}.npy")
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:  # pragma: no cover - numpy writes 1.0-3.0
        raise DatasetError(f"unsupported .npy format version {version}")
    return fh, tuple(shape), np.dtype(dtype), bool(fortran)


class NpzSource(StreamSource):
    """A NumPy ``.npz`` archive (keys as :func:`privis.data.load_npz` reads them), images streamed.

    The ``images`` member is decompressed sequentially, ``block`` rows at a time; a Fortran-ordered or
    object array cannot be streamed and is refused. Ids are the archive's ``paths`` when present, else
    the row index.
    """

    def __init__(self, path: str | Path, *, block: int = 1024) -> None:
        from privis.data.npz import _layout

        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DatasetError(f"{self.path}: no such .npz file")
        self.name = f"npz:{path}"
        self.inputs = [self.path]
        self.block = max(1, int(block))
        try:
            with zipfile.ZipFile(self.path) as archive:
                names = {Path(n).stem for n in archive.namelist() if n.endswith(".npy")}
                if "images" not in names:
                    raise DatasetError(f"{self.path}: no 'images' array (keys: {', '.join(sorted(names)) or 'none'})")
                fh, shape, dtype, fortran = _open_npy_member(archive, "images")
                fh.close()  # type: ignore[attr-defined]
                small = {k: np.load(archive.open(f"{k}.npy"), allow_pickle=False)
                         for k in ("labels", "class_names", "layout", "paths") if k in names}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{self.path}: not a readable .npz archive ({exc})") from exc
        if fortran or dtype.hasobject:
            raise DatasetError(f"{self.path}: images are Fortran-ordered or object arrays; cannot stream them")
        if len(shape) not in (3, 4) or shape[0] == 0:
            raise DatasetError(f"{self.path}: images must be a non-empty (N, H, W) or 4-D array, got {shape}")
        self.shape, self.dtype = shape, dtype
        n = shape[0]
        self.layout = "NCHW"
        if len(shape) == 4:
            given = small.get("layout")
            self.layout = _layout(self.path, shape, None if given is None else str(given))
        labels = small.get("labels")
        labels = np.zeros(n, dtype=np.int64) if labels is None else labels
        if labels.shape != (n,) or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
            raise DatasetError(f"{self.path}: labels must be {n} integers, got {labels.dtype} {labels.shape}")
        self.labels = labels.astype(np.int64)
        if n and int(self.labels.min()) < 0:
            raise DatasetError(f"{self.path}: negative label {int(self.labels.min())}")
        if "class_names" in small:
            self.class_names = [x.decode() if isinstance(x, bytes) else str(x) for x in small["class_names"].tolist()]
            if int(self.labels.max()) >= len(self.class_names):
                raise DatasetError(f"{self.path}: label {int(self.labels.max())} but only "
                                   f"{len(self.class_names)} class names")
        else:
            self.class_names = [str(i) for i in range(int(self.labels.max()) + 1)]
        self.class_dirs = None
        self.paths: list[str] | None = None
        if "paths" in small:
            self.paths = [x.decode() if isinstance(x, bytes) else str(x) for x in small["paths"].tolist()]
            if len(self.paths) != n:
                raise DatasetError(f"{self.path}: {len(self.paths)} paths for {n} images")
        if dtype == np.uint8:
            self.scale = 255.0
        elif dtype == np.uint16:
            self.scale = 65535.0
        elif dtype == np.bool_ or np.issubdtype(dtype, np.floating):
            self.scale = 1.0
        else:
            raise DatasetError(f"{self.path}: unsupported image dtype {dtype} (use uint8, uint16, bool or float)")

    def count(self) -> int:
        return int(self.shape[0])

    def run_shape(self) -> tuple[tuple[int, int, int], str]:
        if len(self.shape) == 3:
            return (1, self.shape[1], self.shape[2]), f"{self.name}#0"
        _, a, b, c = self.shape
        return ((c, a, b) if self.layout == "NHWC" else (a, b, c)), f"{self.name}#0"

    def items(self, shard: int = 0, num_shards: int = 1) -> Iterator[StreamItem]:
        _check_shard(shard, num_shards)
        n, row_shape = self.shape[0], self.shape[1:]
        row_bytes = int(np.prod(row_shape)) * self.dtype.itemsize
        with zipfile.ZipFile(self.path) as archive:
            fh, _, _, _ = _open_npy_member(archive, "images")
            try:
                for start in range(0, n, self.block):
                    rows = min(self.block, n - start)
                    raw = fh.read(rows * row_bytes)  # type: ignore[attr-defined]
                    if len(raw) != rows * row_bytes:
                        raise DatasetError(f"{self.path}: images member ends early at row {start}")
                    block = np.frombuffer(raw, dtype=self.dtype).reshape((rows, *row_shape))
                    for j in range(rows):
                        i = start + j
                        if i % num_shards != shard:
                            continue
                        pixels = block[j]
                        if len(row_shape) == 3:
                            pixels = pixels if self.layout == "NHWC" else np.moveaxis(pixels, 0, -1)
                        rel = self.paths[i] if self.paths is not None else None
                        yield StreamItem(id=rel if rel is not None else str(i), position=i,
                                         label=int(self.labels[i]), rel=rel, source=f"{self.name}#{i}",
                                         array=np.array(pixels), scale=self.scale)
            finally:
                fh.close()  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------ in-memory data


class ArraySource(StreamSource):
    """An in-memory :class:`~privis.data.Dataset` (built-in datasets are loaded whole, then streamed out).

    Args:
        dataset: the data.
        offset: index of the dataset's first item within its split (``digits:train[100:]`` -> 100), so
            ids are stable whatever range a spec selects.
    """

    def __init__(self, dataset: Dataset, *, offset: int = 0) -> None:
        self.dataset = dataset
        self.name = dataset.name
        self.class_names = list(dataset.class_names)
        self.class_dirs = None
        self.offset = int(offset)
        self.inputs = []
        try:
            spec = parse_spec(dataset.name)
            if spec.path is not None:
                self.inputs = [Path(spec.path).expanduser()]
        except DatasetError:
            pass

    def count(self) -> int:
        return len(self.dataset)

    def run_shape(self) -> tuple[tuple[int, int, int], str]:
        return self.dataset.shape, self.name

    def items(self, shard: int = 0, num_shards: int = 1) -> Iterator[StreamItem]:
        _check_shard(shard, num_shards)
        ds = self.dataset
        for i in range(shard, len(ds), num_shards):
            rel = ds.paths[i] if ds.paths is not None else None
            index = self.offset + i
            # (C, H, W) -> (H, W) or (H, W, 3): the same form a decoded file has
            chw = ds.images[i].numpy()
            pixels = chw[0] if chw.shape[0] == 1 else np.moveaxis(chw, 0, -1)
            yield StreamItem(id=rel if rel is not None else str(index), position=i, label=int(ds.labels[i]),
                             rel=rel, source=rel if rel is not None else f"{ds.name}#{index}",
                             array=pixels, scale=1.0)


def open_source(spec: str | Dataset | StreamSource) -> StreamSource:
    """The :class:`StreamSource` of a dataset spec, an in-memory dataset, or a source (returned as is).

    Raises:
        DatasetError: bad spec, missing folder or archive, unreadable archive.
    """
    if isinstance(spec, StreamSource):
        return spec
    if isinstance(spec, Dataset):
        return ArraySource(spec)
    parsed = parse_spec(spec)
    if parsed.kind == "folder":
        source: StreamSource = FolderSource(parsed.path or "")
    elif parsed.kind == "npz":
        source = NpzSource(parsed.path or "")
    else:
        from privis.data.registry import load

        source = ArraySource(load(spec), offset=parsed.start or 0)
    source.name = name_text(spec.strip())  # recorded in journals: valid UTF-8 whatever the path's bytes
    return source
