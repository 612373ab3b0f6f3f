"""The in-memory dataset every privis layer passes around: images, labels and what travels with them.

Images are kept in the canonical form of ``docs/architecture.md`` -- ``torch.Tensor`` ``(N, C, H, W)`` ``float32`` in
``[0, 1]`` -- and labels as ``torch.long`` ``(N,)``. Class names, the spec the data came from, the source
paths (for folder data, so writers can keep relative paths and file stems) and the list of skipped
files travel with the tensors here, not inside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from privis.data.checks import check_images
from privis.errors import InvalidInputError

__all__ = ["Dataset", "images_from_numpy"]


@dataclass(eq=False)
class Dataset:
    """Images with labels, class names and provenance.

    Attributes:
        images: ``(N, C, H, W)`` ``float32`` tensor with values in ``[0, 1]``.
        labels: ``(N,)`` ``torch.long`` tensor of indices into ``class_names``.
        class_names: the name of each class, indexed by label.
        name: the spec the data came from (e.g. ``"fashion-mnist:train[:2000]"``, ``"folder:data/x"``).
        paths: for folder data, each image's path relative to the folder root (POSIX style), else None.
        skipped: bad files left out while loading, each ``{"path": str, "reason": str}`` (plus
            ``"path_b64"``, the raw bytes, for a name that is not valid UTF-8).
        ignored: entries a folder's walk does not read by rule (hidden files and folders, link loops),
            in the same form; ``len(dataset) + len(skipped) + len(ignored)`` is everything found.
        oriented: relative path -> EXIF orientation (2-8) applied on read, for the images turned upright.

    Construction checks shapes, dtypes, label range and that the images are finite and within
    ``[0, 1]``, so a ``Dataset`` that exists is always in canonical form. Equality is identity (comparing
    tensors element-wise has no single truth value); compare ``images``/``labels`` explicitly.

    Examples:
        >>> from privis import data
        >>> digits = data.load("digits:test[:10]")
        >>> len(digits), digits.shape, digits.num_classes
        (10, (1, 8, 8), 10)
        >>> part = digits.subset([0, 2, 4])
        >>> len(part), bool((part.labels == digits.labels[[0, 2, 4]]).all())
        (3, True)
    """

    images: Tensor
    labels: Tensor
    class_names: list[str]
    name: str
    paths: list[str] | None = None
    skipped: list[dict] = field(default_factory=list)
    ignored: list[dict] = field(default_factory=list)
    oriented: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        check_images(images, name=f"dataset {self.name!r}: images", channels=None, allow_empty=True, float32=True,
                     tolerance=0.0)
        if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.dtype != torch.long:
            if isinstance(labels, Tensor):
                desc = f"{tuple(labels.shape)} {labels.dtype}"
            else:
                desc = type(labels).__name__
            raise InvalidInputError(
                f"dataset {self.name!r}: labels must be a (N,) torch.long tensor, got {desc}"
            )
        if labels.shape[0] != images.shape[0]:
            raise InvalidInputError(
                f"dataset {self.name!r}: {images.shape[0]} images but {labels.shape[0]} labels"
            )
        self.class_names = [str(c) for c in self.class_names]
        if not self.class_names:
            raise InvalidInputError(f"dataset {self.name!r}: class_names is empty")
        if len(set(self.class_names)) != len(self.class_names):
            raise InvalidInputError(f"dataset {self.name!r}: duplicate class names {self.class_names}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(self.class_names)):
            raise InvalidInputError(
                f"dataset {self.name!r}: labels span {int(labels.min())}..{int(labels.max())} but there are "
                f"{len(self.class_names)} classes"
            )
        if self.paths is not None:
            self.paths = [str(p) for p in self.paths]
            if len(self.paths) != images.shape[0]:
                raise InvalidInputError(
                    f"dataset {self.name!r}: {len(self.paths)} paths for {images.shape[0]} images"
                )

    def __repr__(self) -> str:
        """A one-line summary (the default would print every path of a large folder)."""
        return (
            f"Dataset(name={self.name!r}, n={len(self)}, shape={self.shape}, classes={self.num_classes}, "
            f"paths={'yes' if self.paths is not None else 'no'}, skipped={len(self.skipped)}, "
            f"ignored={len(self.ignored)})"
        )

    def __len__(self) -> int:
        """Number of images N."""
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(class_names)``), which may exceed the labels actually present."""
        return len(self.class_names)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one image."""
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    def subset(self, index: slice | int | Sequence[int] | Tensor | np.ndarray) -> Dataset:
        """A new dataset holding the selected items, with the same class names, name and skipped list.

        Args:
            index: a ``slice``, an int, a sequence / array / tensor of integer indices, or a boolean
                mask of length N.

        Returns:
            A ``Dataset`` whose images, labels, paths (and their ``oriented`` entries) are those at
            ``index`` (tensors are views for a slice, copies otherwise).
        """
        if isinstance(index, slice):
            idx: slice | Tensor = index
        elif isinstance(index, int | np.integer):
            idx = torch.tensor([int(index)], dtype=torch.long)
        else:
            t = index if isinstance(index, Tensor) else torch.as_tensor(np.asarray(index))
            if t.dtype == torch.bool:
                if t.shape != (len(self),):
                    raise InvalidInputError(f"boolean mask of shape {tuple(t.shape)} for {len(self)} items")
                t = torch.nonzero(t, as_tuple=False).flatten()
            elif t.numel() == 0:
                t = torch.zeros(0, dtype=torch.long)
            elif t.dtype.is_floating_point or t.dtype.is_complex:
                raise InvalidInputError(f"subset index must hold integers, got {t.dtype}")
            idx = t.to(torch.long).flatten()
            if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
                raise InvalidInputError(f"subset index out of range for {len(self)} items")
        if isinstance(idx, slice):
            paths = None if self.paths is None else self.paths[idx]
        else:
            paths = None if self.paths is None else [self.paths[i] for i in idx.tolist()]
        return Dataset(
            images=self.images[idx],
            labels=self.labels[idx],
            class_names=list(self.class_names),
            name=self.name,
            paths=paths,
            skipped=[dict(s) for s in self.skipped],
            ignored=[dict(s) for s in self.ignored],
            oriented=({p: self.oriented[p] for p in paths if p in self.oriented} if paths is not None
                      else dict(self.oriented)),
        )


def images_from_numpy(array: np.ndarray, *, layout: str = "NHWC", source: str = "array") -> Tensor:
    """Convert integer or float image arrays to the canonical ``(N, C, H, W)`` float32 tensor in [0, 1].

    Args:
        array: ``(N, H, W)`` or 4-D array in ``layout`` order; ``uint8`` (divided by 255), ``uint16``
            (divided by 65535), ``bool`` (0/1) or floating point already in ``[0, 1]``.
        layout: ``"NHWC"`` or ``"NCHW"`` for 4-D input (ignored for 3-D input, which gets C = 1).
        source: named in error messages.

    Raises:
        InvalidInputError: unsupported dtype or rank, NaN/infinity, or float values outside [0, 1].
    """
    original = array
    if array.ndim == 3:
        array = array[:, None, :, :]
    elif array.ndim == 4:
        if layout == "NHWC":
            array = np.moveaxis(array, -1, 1)
        elif layout != "NCHW":
            raise InvalidInputError(f"{source}: unknown layout {layout!r} (use NHWC or NCHW)")
    else:
        raise InvalidInputError(f"{source}: images must be (N, H, W) or 4-D, got shape {array.shape}")

    if array.dtype == np.uint8:
        scale = 255.0
    elif array.dtype == np.uint16:
        scale = 65535.0
    elif array.dtype == np.bool_:
        scale = 1.0
    elif np.issubdtype(array.dtype, np.floating):
        scale = None
        if array.size:
            if not np.isfinite(array).all():
                raise InvalidInputError(f"{source}: images contain NaN or infinity")
            lo, hi = float(array.min()), float(array.max())
            if lo < 0.0 or hi > 1.0:
                raise InvalidInputError(
                    f"{source}: float images must lie in [0, 1], values span [{lo}, {hi}]"
                )
    else:
        raise InvalidInputError(
            f"{source}: unsupported image dtype {array.dtype} (use uint8, uint16, bool or float in [0, 1])"
        )
    if scale is None:
        converted = np.ascontiguousarray(array, dtype=np.float32)
        if np.may_share_memory(converted, original) or not converted.flags.writeable:
            converted = converted.copy()  # never alias the caller's array; torch needs a writeable buffer
        return torch.from_numpy(converted)
    source_array = np.ascontiguousarray(array)
    if not source_array.flags.writeable:
        source_array = source_array.copy()
    out = torch.from_numpy(source_array).to(torch.float32)  # a copy; torch converts faster than numpy
    if scale != 1.0:
        out.div_(scale)
    return out
