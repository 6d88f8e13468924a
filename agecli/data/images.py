"""Reading user images robustly: EXIF orientation, grayscale, alpha, 16-bit, odd names."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import AgecliError

MAX_PIXELS = 120_000_000  # refuse absurd images with a message instead of exhausting memory


class ImageError(AgecliError):
    """An image that cannot be used; the message says why in a few words."""


def load_rgb(path: str | Path) -> np.ndarray:
    """The image as RGB uint8 (H, W, 3), EXIF orientation applied.

    Raises ImageError for missing, empty, corrupt or non-image files.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)  # fromfile: any file name, any encoding
    except OSError as e:
        raise ImageError(f"unreadable: {e.strerror or e}") from None
    if data.size == 0:
        raise ImageError("unreadable: empty file")
    # IMREAD_COLOR applies EXIF orientation and turns gray/alpha/16-bit into 8-bit BGR.
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError("unreadable: not a decodable image")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageError(f"unreadable: {img.shape[1]}x{img.shape[0]} exceeds {MAX_PIXELS} pixels")
    return np.ascontiguousarray(img[:, :, ::-1])
