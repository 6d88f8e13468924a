"""What `demo` writes beside the rows: annotated copies under the inputs' relative
names and, when asked, the aligned crops; every file atomically."""
from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..atomic import write_bytes
from ..errors import UsageError
from .pipeline import ImageResult, StageTimer
from .sources import IMAGE_EXTENSIONS

CROPS_DIR = "crops"


def check_output_dir(path: Path) -> None:
    """Create the folder and prove it is writable, before any work starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".agecli-write-test-"):
            pass
    except OSError as e:
        raise UsageError(f"--output-dir {path}: cannot write there ({e.strerror or e})") from None


def annotated_path(out_dir: Path, name: str) -> Path:
    """Where the annotated copy of `name` goes: the same relative path and name
    (`.jpg` appended when the name has no writable image extension)."""
    return out_dir / (name if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name + ".jpg")


def write_image(rgb: np.ndarray, path: Path) -> None:
    """Encode by extension and write atomically."""
    ok, buf = cv2.imencode(path.suffix.lower(), np.ascontiguousarray(rgb[:, :, ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f"cannot encode {path.name}")
    write_bytes(path, buf.tobytes())


def write_outputs(res: ImageResult, out_dir: Path, save_crops: bool, timer: StageTimer) -> None:
    """The annotated copy of one image (and its crops); the image is released after."""
    from .drawing import annotate

    with timer("draw"):
        img = annotate(res.image, res.faces)
    with timer("write"):
        write_image(img, annotated_path(out_dir, res.name))
        if save_crops and res.crops is not None:
            stem = str(Path(res.name).with_suffix(""))
            for i, crop in enumerate(res.crops):
                write_image(crop, out_dir / CROPS_DIR / f"{stem}_face{i}.jpg")
    res.image = res.crops = None
