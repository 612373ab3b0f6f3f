"""One image file: decode it fully, as it displays, in a mode whose meaning is unambiguous.

Every image is decoded fully (``img.load()``); a truncated file is an error, never a partial image.
Pixels are returned as the image displays: an EXIF orientation tag is applied (a phone portrait stored
24x16 with orientation 6 reads 16x24), and no metadata (EXIF, GPS, ICC) is kept. Only modes whose
meaning is unambiguous are accepted (``1``, ``L``, ``P`` without transparency, ``RGB``, and 16-bit /
32-bit integer and float grey); anything with alpha is refused rather than flattened, so no information
is dropped silently. A bad file raises :class:`~privis.errors.ImageFileError` naming it.

:func:`probe_image` reads a file's displayed size and channels from its header alone, so a folder's one
size can be decided without decoding (:mod:`privis.data.walk`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from privis.errors import ImageFileError

__all__ = ["decode_image", "probe_image", "read_image"]

_SUPPORTED_MODES = "1, L, P (no transparency), RGB, I;16, I, F"


def read_image(path: str | Path, data: bytes | None = None) -> tuple[np.ndarray, float]:
    """Decode one image file fully, turned upright by its EXIF orientation, and check its mode.

    Args:
        path: the file (named in errors; read unless ``data`` is given).
        data: the file's bytes, when the caller already has them.

    Returns:
        ``(array, scale)``: ``array`` is ``(H, W)`` for grey or ``(H, W, 3)`` for colour, in the file's
        own dtype (bool, uint8, uint16, int32 or float32), as the image displays (an EXIF orientation
        tag 2-8 is applied, see :func:`decode_image`); ``array / scale`` lies in [0, 1]. Scales: 1 for
        mode ``1`` and ``F``, 255 for 8-bit, 65535 for 16-bit and ``I``. A palette image becomes grey
        when its colours are all grey, else RGB.

    Raises:
        ImageFileError: unreadable, truncated, multi-frame, transparent or unsupported mode, or out-of
            range values; the error names the file.
    """
    array, scale, _ = decode_image(path, data)
    return array, scale


def decode_image(path: str | Path, data: bytes | None = None) -> tuple[np.ndarray, float, int]:
    """:func:`read_image`, also returning the EXIF orientation applied (1 = none, 2-8 = the tag's value).

    The orientation is read from the header before decoding (as :func:`probe_image` reads it) and applied
    to the pixels exactly as :func:`PIL.ImageOps.exif_transpose` does (tag 6, a phone held upright:
    stored 24x16, returned 16x24). Only the pixels are returned, so no metadata (EXIF, GPS, ICC) ever
    reaches an output.
    """
    path = Path(path)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ImageFileError(path, f"cannot read file ({exc.strerror or exc})") from exc
    try:
        with Image.open(io.BytesIO(data)) as img:
            orientation = _orientation(img)
            img.load()
            # Pillow turns some formats upright itself while loading (TIFF, Pillow >= 11) and then drops the
            # tag: applying it again would turn the image a second time
            turned = orientation != 1 and _orientation(img) == 1
            array, scale = _to_array(path, img)
    except ImageFileError:
        raise
    except Exception as exc:
        raise _pillow_error(path, exc) from exc
    return (array if turned else _orient(array, orientation)), scale, orientation


def probe_image(path: str | Path) -> tuple[tuple[int, int], int, int]:
    """What an image file's header says, without decoding its pixels (palette images excepted).

    Returns:
        ``((width, height), channels, orientation)``: the size as displayed (EXIF orientation 5-8 swaps
        width and height), 1 for grey or 3 for colour (as :func:`read_image` would return it; a palette
        image is decoded to tell), and the EXIF orientation (1-8).

    Raises:
        ImageFileError: the header shows a file :func:`read_image` refuses (not an image, multi-frame,
            alpha, unsupported mode); a file whose pixels are bad (truncated data, out-of-range values)
            passes here and fails in :func:`read_image`.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            orientation = _orientation(img)
            channels = _header_channels(path, img)
            if channels is None:  # a palette: grey or colour depends on the colours used
                img.load()
                channels = 3 if _to_array(path, img)[0].ndim == 3 else 1
            width, height = img.size
    except ImageFileError:
        raise
    except OSError as exc:
        if isinstance(exc, UnidentifiedImageError) or exc.errno is None:
            raise _pillow_error(path, exc) from exc
        raise ImageFileError(path, f"cannot read file ({exc.strerror or exc})") from exc
    except Exception as exc:
        raise _pillow_error(path, exc) from exc
    if orientation >= 5 and (width, height) == _stored_size(img, (width, height)):
        width, height = height, width  # not yet swapped by Pillow (it swaps a TIFF's size itself, Pillow >= 11)
    return (width, height), channels, orientation


def _stored_size(img: Image.Image, size: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` as the file stores the pixels: a TIFF's own tags (Pillow may report the upright
    size instead), else ``size``."""
    tags = getattr(img, "tag_v2", None)
    try:
        return (int(tags[256]), int(tags[257])) if tags is not None else size
    except (KeyError, TypeError, ValueError):
        return size


def _pillow_error(path: Path, exc: BaseException) -> ImageFileError:
    """The one-line :class:`ImageFileError` for an exception Pillow raised on ``path``."""
    if isinstance(exc, UnidentifiedImageError):
        return ImageFileError(path, "not an image file Pillow can read")
    if isinstance(exc, Image.DecompressionBombError):
        return ImageFileError(path, f"too large to decode safely ({exc})")
    # every decoder failure (truncated data, bad chunk, bomb) means a bad file
    return ImageFileError(path, f"unreadable or truncated image ({exc})")


#: EXIF orientation -> the array operation :func:`PIL.ImageOps.exif_transpose` applies for it.
_ORIENT = {
    2: lambda a: a[:, ::-1],  # FLIP_LEFT_RIGHT
    3: lambda a: a[::-1, ::-1],  # ROTATE_180
    4: lambda a: a[::-1],  # FLIP_TOP_BOTTOM
    5: lambda a: a.swapaxes(0, 1),  # TRANSPOSE
    6: lambda a: np.rot90(a, -1),  # ROTATE_270 (counter-clockwise)
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # TRANSVERSE
    8: lambda a: np.rot90(a, 1),  # ROTATE_90
}


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1-8) as the header gives it; 1 when absent or out of range.

    Read with the base class's ``getexif`` so that no format decodes its pixels to find it (PNG's own
    ``getexif`` loads the image when the eXIf chunk follows the pixel data): the header pass and the
    decoding pass always agree.
    """
    try:
        value = Image.Image.getexif(img).get(0x0112, 1)
    except Exception:  # a malformed EXIF block: the pixels are still the image as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    op = _ORIENT.get(orientation)
    return array if op is None else np.ascontiguousarray(op(array))


def _header_channels(path: Path, img: Image.Image) -> int | None:
    """1 or 3 channels from the mode alone, ``None`` for a palette (decided by its pixels).

    Raises:
        ImageFileError: multi-frame, alpha, a transparency key, an alpha palette or an unsupported mode.
    """
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        raise ImageFileError(path, f"has {frames} frames; only single-frame images are supported")
    mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        raise ImageFileError(
            path, f"image mode {mode} has an alpha channel; privis does not drop alpha silently, "
            "convert the file to L or RGB first"
        )
    if "transparency" in img.info:
        raise ImageFileError(
            path, f"image mode {mode} with a transparency key (alpha); privis does not drop alpha "
            "silently, remove the transparency first"
        )
    if mode in ("1", "L", "I", "F") or (mode.startswith("I;16") and mode[4:] in ("", "L", "B", "N")):
        return 1
    if mode == "RGB":
        return 3
    if mode == "P":
        palette_mode = img.palette.mode if img.palette is not None else "RGB"
        if palette_mode not in ("RGB", "L"):
            raise ImageFileError(
                path, f"palette image with a {palette_mode} palette (alpha) is not supported"
            )
        return None
    raise ImageFileError(path, f"unsupported image mode {mode} (supported: {_SUPPORTED_MODES})")


def _to_array(path: Path, img: Image.Image) -> tuple[np.ndarray, float]:
    """Convert a loaded Pillow image per the rules of :func:`read_image` (before orientation)."""
    _header_channels(path, img)
    mode = img.mode
    if mode == "1":
        return np.asarray(img, dtype=bool), 1.0
    if mode in ("L", "RGB"):
        return np.asarray(img, dtype=np.uint8), 255.0
    if mode == "P":
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return np.ascontiguousarray(rgb[..., 0]), 255.0
        return rgb, 255.0
    if mode.startswith("I;16"):
        return np.asarray(img).astype(np.uint16), 65535.0
    if mode == "I":
        array = np.asarray(img, dtype=np.int32)
        if array.size and (int(array.min()) < 0 or int(array.max()) > 65535):
            raise ImageFileError(
                path, f"32-bit integer image with values {int(array.min())}..{int(array.max())}: "
                "bit depth unknown (only values within 0..65535, read as 16-bit, are supported)"
            )
        return array, 65535.0
    array = np.asarray(img, dtype=np.float32)  # mode F (_header_channels refused every other mode)
    if not np.isfinite(array).all():
        raise ImageFileError(path, "float image contains NaN or infinity")
    lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if lo < 0.0 or hi > 1.0:
        raise ImageFileError(path, f"float image values span [{lo}, {hi}], not within [0, 1]")
    return array, 1.0
