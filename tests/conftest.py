from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
PHOTOS = SHARED / "photos"
UTKFACE = SHARED / "data" / "utkface" / "UTKFace"

_JPEG = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()


def touch_jpeg(path: Path) -> Path:
    """A tiny real JPEG at `path` (any name: written as bytes, not through cv2's path API)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_JPEG)
    return path


@pytest.fixture
def jpeg():
    return touch_jpeg
