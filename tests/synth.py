"""A small labelled face set built from one licence-clean photo, so prepare -> train ->
val -> export -> demo run end to end where the real data (../shared) is absent.

The photo is matplotlib's public-domain portrait of Grace Hopper (its sample data).
Each chip is that face rotated, scaled, shifted and cropped onto a plain or noisy
canvas, with colour changes (brightness, contrast, tint, gray, gamma) and sometimes
mirrored. The age label follows the brightness, so a model has something to learn; the
set checks the plumbing, never accuracy. Files are named like UTKFace chips
(`AGE_GENDER_RACE_DATE.jpg.chip.jpg`), so the utkface reader takes them as they are.
"""
from __future__ import annotations

import atexit
import hashlib
import math
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

CHIP = 200  # UTKFace chips are 200 x 200


@lru_cache(maxsize=1)
def sample_rgb() -> np.ndarray:
    from agecli.data.images import load_rgb
    from agecli.infer.sources import sample_image

    return load_rgb(sample_image())


@lru_cache(maxsize=1)
def sample_face() -> tuple[np.ndarray, float]:
    """Centre (x, y) and width of the sample's face, found by the real detector."""
    from agecli.face.detector import FaceDetector

    face = FaceDetector(threads=1).detect(sample_rgb())[0]
    x1, y1, x2, y2 = face.box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2]), float(x2 - x1)


def face_variant(rng: np.random.Generator, out_w: int, out_h: int, face_px: float, centre: tuple[float, float],
                 brightness: float, mild: bool = False, canvas: np.ndarray | None = None) -> np.ndarray:
    """The sample face, `face_px` wide, rotated and placed at `centre` on a canvas of
    out_w x out_h (random colour or noise unless one is given), colours changed."""
    rgb = sample_rgb()
    src_centre, src_width = sample_face()
    angle = rng.uniform(-8, 8) if mild else rng.uniform(-25, 25)
    scale = face_px / src_width
    m = cv2.getRotationMatrix2D((float(src_centre[0]), float(src_centre[1])), angle, scale)
    m[:, 2] += np.asarray(centre) - src_centre
    if canvas is None:
        canvas = np.empty((out_h, out_w, 3), np.uint8)
        canvas[:] = rng.integers(0, 256, 3)
        if rng.random() < 0.4:
            noise = rng.normal(0, 25, canvas.shape)
            canvas = np.clip(canvas + noise, 0, 255).astype(np.uint8)
    out = cv2.warpAffine(rgb, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT,
                         dst=canvas.copy())
    x = out.astype(np.float32) * brightness
    contrast = 1.0 if mild else rng.uniform(0.8, 1.2)
    x = (x - x.mean()) * contrast + x.mean()
    x *= rng.uniform(0.9, 1.1, 3) if not mild else 1.0  # a colour tint
    if not mild and rng.random() < 0.15:
        x[:] = x.mean(2, keepdims=True)  # a gray photo
    gamma = 1.0 if mild else rng.uniform(0.85, 1.2)
    x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** gamma
    out = x.astype(np.uint8)
    if not mild and rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def chip(rng: np.random.Generator, age: int, mild: bool = False) -> np.ndarray:
    """One 200 x 200 chip of a face whose brightness encodes `age` (0-100)."""
    brightness = 0.55 + 0.9 * age / 100
    face_px = rng.uniform(95, 125) if mild else rng.uniform(80, 135)
    jitter = 6 if mild else 18
    centre = (CHIP / 2 + rng.uniform(-jitter, jitter), CHIP / 2 + rng.uniform(-jitter, jitter))
    return face_variant(rng, CHIP, CHIP, face_px, centre, brightness, mild)


def write_jpeg(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes())
    return path


def chip_bytes_for(name: str) -> bytes:
    """A mild chip for a UTKFace-style file name (its leading age sets the brightness)."""
    seed = int(hashlib.md5(name.encode()).hexdigest(), 16) % 2**32
    head = name.split("_")[0]
    age = int(head) if head.isdigit() else 30
    rgb = chip(np.random.default_rng(seed), min(age, 100), mild=True)
    return cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def group_photo(rng: np.random.Generator, n_faces: int, width: int = 1280, height: int = 800) -> np.ndarray:
    """Several copies of the face, different sizes and brightness, on one wide canvas."""
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = rng.integers(40, 220, 3)
    cols = math.ceil(n_faces / 2)
    cell_w, cell_h = width / cols, height / 2
    for k in range(n_faces):
        r, c = divmod(k, cols)
        face_px = rng.uniform(0.45, 0.6) * min(cell_w, cell_h)
        centre = ((c + 0.5) * cell_w + rng.uniform(-10, 10), (r + 0.5) * cell_h + rng.uniform(-10, 10))
        canvas = face_variant(rng, width, height, face_px, centre, rng.uniform(0.8, 1.2), mild=True, canvas=canvas)
    return canvas


_ROOT: Path | None = None


def _root() -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="agecli-synth-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


@lru_cache(maxsize=1)
def faces_dir(n: int = 120) -> Path:
    """n UTKFace-style labelled chips (ages 1-90, both genders, five race codes)."""
    out = _root() / "faces"
    rng = np.random.default_rng(11)
    for i in range(n):
        age = int(rng.integers(1, 91))
        gender, race = i % 2, (i // 2) % 5
        write_jpeg(out / f"{age}_{gender}_{race}_2017{i:010d}.jpg.chip.jpg", chip(rng, age))
    return out


@lru_cache(maxsize=1)
def photos_dir() -> Path:
    """A few group photos: group_1.jpg holds 8 faces, the others 3 to 6."""
    out = _root() / "photos"
    rng = np.random.default_rng(12)
    for i, n in enumerate((8, 3, 6), start=1):
        write_jpeg(out / f"group_{i}.jpg", group_photo(rng, n))
    return out
