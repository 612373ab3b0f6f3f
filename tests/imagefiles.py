"""Image files as cameras and phones write them, shared by the data and engine tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import ExifTags, Image


def phone_jpeg(stored: np.ndarray, orientation: int = 6) -> bytes:
    """JPEG bytes as a phone writes them: ``stored`` ``(H, W, 3)`` uint8 pixels kept sideways, an EXIF
    orientation tag, a maker and a GPS position."""
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PhoneMaker"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", exif=exif, quality=95)
    return buffer.getvalue()
