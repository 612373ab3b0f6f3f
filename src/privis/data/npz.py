"""NumPy ``.npz`` archives: a simple array-level exchange format for datasets.

Keys read:

- ``images`` (required): ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` with C in {1, 3};
  ``uint8`` (/255), ``uint16`` (/65535), ``bool``, or float already in [0, 1].
- ``labels`` (optional, default all 0): ``(N,)`` non-negative integers.
- ``class_names`` (optional, default ``"0"``.. up to the largest label): strings.
- ``layout`` (optional): ``"NCHW"`` or ``"NHWC"``, needed only when the 4-D shape is ambiguous.
- ``paths`` (optional): ``(N,)`` strings, kept as ``Dataset.paths``.

:func:`write_npz` stores float32 ``NCHW`` images (lossless for any canonical tensor), int64 labels, the
class names, the layout and the paths, compressed, written atomically. Archives are opened with
``allow_pickle=False``: loading an ``.npz`` never runs code.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from privis.data.dataset import Dataset, images_from_numpy
from privis.errors import DatasetError, InvalidInputError
from privis.fsutil import atomic_write_bytes

__all__ = ["load_npz", "write_npz"]


def _layout(path: Path, shape: tuple[int, ...], given: str | None) -> str:
    """``"NCHW"`` or ``"NHWC"`` for a 4-D images array: the ``layout`` key, else whichever axis is 1 or 3."""
    if given is not None:
        if given not in ("NCHW", "NHWC"):
            raise DatasetError(f"{path}: layout must be 'NCHW' or 'NHWC', got {given!r}")
        channels = shape[1] if given == "NCHW" else shape[3]
        if channels not in (1, 3):
            raise DatasetError(
                f"{path}: images {shape} with layout {given} have {channels} channels, not 1 or 3"
            )
        return given
    first, last = shape[1] in (1, 3), shape[3] in (1, 3)
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    if first and last:
        raise DatasetError(f"{path}: images of shape {shape} could be NCHW or NHWC; add a 'layout' key")
    raise DatasetError(f"{path}: images of shape {shape} have no channel axis of size 1 or 3")


def load_npz(path: str | Path) -> Dataset:
    """Load a dataset from an ``.npz`` archive (keys described in the module docstring).

    Returns:
        ``Dataset`` with images ``(N, C, H, W)`` float32 in [0, 1], labels ``(N,)``, class names, name
        ``"npz:<path>"``, and ``paths`` when the archive has them.

    Raises:
        DatasetError: missing or unreadable file, no ``images`` key, empty data, NaN or out-of-range
            values, a shape or dtype that does not fit, or labels and class names that disagree; each
            message names the file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: no such .npz file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):  # a bare .npy array, not an archive of named arrays
            raise DatasetError(f"{path}: a single .npy array, not an .npz archive with an 'images' key")
        with loaded as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: not a readable .npz archive ({exc})") from exc

    if "images" not in arrays:
        raise DatasetError(f"{path}: no 'images' array (keys: {', '.join(sorted(arrays)) or 'none'})")
    images = arrays["images"]
    if images.ndim not in (3, 4):
        raise DatasetError(f"{path}: images must be (N, H, W) or 4-D, got shape {images.shape}")
    n = images.shape[0]
    if n == 0 or images.size == 0:
        raise DatasetError(f"{path}: images array {images.shape} is empty")

    layout = "NCHW"
    if images.ndim == 4:
        given = arrays.get("layout")
        layout = _layout(path, images.shape, None if given is None else str(given))
    try:
        tensor = images_from_numpy(images, layout=layout, source=str(path))
    except InvalidInputError as exc:
        raise DatasetError(str(exc)) from exc

    labels = arrays.get("labels")
    if labels is None:
        labels = np.zeros(n, dtype=np.int64)
    if labels.shape != (n,):
        raise DatasetError(f"{path}: labels of shape {labels.shape} do not match {n} images")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise DatasetError(f"{path}: labels must be integers, got {labels.dtype}")
    labels = labels.astype(np.int64)
    if int(labels.min()) < 0:
        raise DatasetError(f"{path}: negative label {int(labels.min())}")

    if "class_names" in arrays:
        names_array = arrays["class_names"]
        if names_array.ndim != 1 or names_array.dtype.kind not in ("U", "S"):
            raise DatasetError(
                f"{path}: class_names must be a 1-D array of strings, "
                f"got {names_array.dtype} {names_array.shape}"
            )
        class_names = [x.decode() if isinstance(x, bytes) else str(x) for x in names_array.tolist()]
        if int(labels.max()) >= len(class_names):
            raise DatasetError(f"{path}: label {int(labels.max())} but only {len(class_names)} class names")
        if len(set(class_names)) != len(class_names):
            raise DatasetError(f"{path}: duplicate class names {class_names}")
    else:
        class_names = [str(i) for i in range(int(labels.max()) + 1)]

    paths = None
    if "paths" in arrays:
        paths_array = arrays["paths"]
        if paths_array.shape != (n,) or paths_array.dtype.kind not in ("U", "S"):
            raise DatasetError(
                f"{path}: paths must be {n} strings, got {paths_array.dtype} {paths_array.shape}"
            )
        paths = [x.decode() if isinstance(x, bytes) else str(x) for x in paths_array.tolist()]

    return Dataset(
        images=tensor,
        labels=torch.from_numpy(labels),
        class_names=class_names,
        name=f"npz:{path}",
        paths=paths,
    )


def write_npz(dataset: Dataset, path: str | Path) -> Path:
    """Write ``dataset`` losslessly to ``path`` (float32 NCHW images, int64 labels), atomically.

    Returns:
        ``path``. :func:`load_npz` reads back identical tensors, class names and paths.
    """
    arrays: dict[str, np.ndarray] = {
        "images": dataset.images.detach().to("cpu", torch.float32).contiguous().numpy(),
        "labels": dataset.labels.detach().to("cpu", torch.int64).numpy(),
        "class_names": np.array(dataset.class_names, dtype=np.str_),
        "layout": np.array("NCHW"),
    }
    if dataset.paths is not None:
        arrays["paths"] = np.array(dataset.paths, dtype=np.str_)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub matches **arrays to allow_pickle
    return atomic_write_bytes(Path(path).expanduser(), buffer.getvalue())
