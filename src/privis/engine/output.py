"""Output files: names that keep the input's relative path and stem, 8-bit encoding, atomic writes.

PNG (the default) stores ``round(255 x)`` losslessly: reading an output back gives exactly the protected
8-bit pixels. JPEG changes them; it is written only when asked for explicitly, and the change it makes is
measured on every item (largest absolute change and squared error, in 8-bit levels).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from privis.data.stream import StreamItem
from privis.errors import InvalidInputError
from privis.fsutil import atomic_write_bytes

__all__ = ["FORMATS", "JPEG_QUALITY", "EncodedItem", "encode_frame", "jpeg_change", "output_rel", "quantize",
           "write_chunk"]

#: Output format -> file suffix.
FORMATS = {"png": ".png", "jpeg": ".jpg"}
JPEG_QUALITY = 95


def output_rel(item: StreamItem, class_dirs: list[str], fmt: str) -> str:
    """The output path of ``item`` relative to OUT: its own relative path and stem, with the format's suffix.

    ``cat/x/img01.jpg`` -> ``cat/x/img01.png``; a relative path that does not start with the label's class
    folder is put under it; items without a path become ``<class folder>/<id, 6 digits if numeric>``.

    Raises:
        InvalidInputError: an absolute path, or one with ``..`` or hidden parts.
    """
    class_dir = class_dirs[item.label]
    suffix = FORMATS[fmt]
    if item.rel is None:
        stem = f"{int(item.id):06d}" if item.id.isdigit() else item.id
        return f"{class_dir}/{stem}{suffix}"
    rel = PurePosixPath(item.rel.replace("\\", "/"))
    if rel.is_absolute() or not rel.parts or any(p in ("", ".", "..") or p.startswith(".") for p in rel.parts):
        raise InvalidInputError(f"path {item.rel!r} must be relative, without '..' or hidden parts")
    if len(rel.parts) < 2 or rel.parts[0] != class_dir:
        rel = PurePosixPath(class_dir, *rel.parts)
    return rel.with_name(rel.stem + suffix).as_posix()


def quantize(images: Tensor) -> np.ndarray:
    """``(B, C, H, W)`` float in [0, 1] -> ``(B, C, H, W)`` uint8 ``round(255 x)`` (the stored pixels)."""
    values = images.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(values).all()):
        raise InvalidInputError("protected images contain NaN or infinity")
    return values.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def _frame(pixels: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` uint8 -> ``(H, W)`` or ``(H, W, 3)`` for Pillow."""
    return pixels[0] if pixels.shape[0] == 1 else np.ascontiguousarray(pixels.transpose(1, 2, 0))


def encode_frame(pixels: np.ndarray, fmt: str) -> bytes:
    """Encode one ``(C, H, W)`` uint8 image as PNG (lossless) or JPEG (quality 95, no chroma subsampling)."""
    buffer = io.BytesIO()
    image = Image.fromarray(_frame(pixels))
    if fmt == "png":
        image.save(buffer, format="PNG")
    elif fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    else:
        raise InvalidInputError(f"unknown output format {fmt!r} (use one of {', '.join(FORMATS)})")
    return buffer.getvalue()


def jpeg_change(pixels: np.ndarray, data: bytes) -> tuple[int, float]:
    """Largest absolute change (8-bit levels) and sum of squared changes JPEG ``data`` makes to ``pixels``."""
    with Image.open(io.BytesIO(data)) as img:
        decoded = np.asarray(img, dtype=np.int16)
    diff = decoded - _frame(pixels).astype(np.int16)
    return int(np.abs(diff).max(initial=0)), float(np.square(diff, dtype=np.float64).sum())


@dataclass
class EncodedItem:
    """What the writer needs of one protected item: the item, its output path and its public tag (if any,
    see :func:`privis.engine.core.batch_tags`)."""

    item: StreamItem
    target: str
    tag: str | None = None


def write_chunk(out: Path, entries: list[EncodedItem], pixels: np.ndarray, fmt: str,
                class_names: list[str]) -> list[dict[str, Any]]:
    """Encode and write each item atomically (temp file, fsync, rename); return its journal records.

    Args:
        out: the output folder.
        entries: the items, in the order of ``pixels``.
        pixels: ``(B, C, H, W)`` uint8.
        fmt: ``"png"`` or ``"jpeg"``.

    Returns:
        One ``item`` record per entry (``id``, ``source``, ``path``, ``label``, ``sha256``; ``tag`` when the
        entry has one; ``orientation`` (2-8) when the input was turned upright by its EXIF orientation;
        JPEG also ``max_abs_change`` and ``sse`` in 8-bit levels).
    """
    records: list[dict[str, Any]] = []
    for entry, frame in zip(entries, pixels, strict=True):
        data = encode_frame(frame, fmt)
        atomic_write_bytes(out / entry.target, data)
        record: dict[str, Any] = {"kind": "item", "id": entry.item.id, "source": entry.item.source,
                                  "path": entry.target, "label": entry.item.label,
                                  "sha256": hashlib.sha256(data).hexdigest()}
        if entry.tag is not None:
            record["tag"] = entry.tag
        if entry.item.orientation not in (None, 1):
            record["orientation"] = int(entry.item.orientation)  # the EXIF orientation applied on reading
        if fmt == "jpeg":
            record["max_abs_change"], record["sse"] = jpeg_change(frame, data)
            record["pixels"] = int(frame.size)
        records.append(record)
    return records
