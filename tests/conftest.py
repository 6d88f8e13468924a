"""Shared fixtures: real UTKFace chips and photos from ../shared when present, else a
labelled set and group photos built from a licence-clean sample (tests/synth.py), so
every pipeline runs anywhere; a tiny aligned set, a briefly trained model.

AGECLI_TEST_SHARED=DIR reads the shared data from DIR instead of ../shared; point it at
an empty folder to run the suite as a fresh machine would.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from . import synth

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AGECLI_TEST_SHARED") or REPO.parent / "shared")
UTK_DIR = SHARED / "data" / "utkface" / "UTKFace"
PHOTOS_DIR = SHARED / "photos"
# names the reader tests use
PHOTOS, UTKFACE = PHOTOS_DIR, UTK_DIR


def utk_dir() -> Path:
    """The real UTKFace chips, else the synthetic labelled set (same file naming)."""
    return UTK_DIR if UTK_DIR.is_dir() else synth.faces_dir()


def photos_path() -> Path:
    """The real group photos, else synthetic ones (group_1.jpg holds 8 faces)."""
    return PHOTOS_DIR if PHOTOS_DIR.is_dir() else synth.photos_dir()


def utk_chip_bytes(name: str) -> bytes:
    """A chip under a given UTKFace file name: the real file, else a synthetic face."""
    real = UTK_DIR / name
    return real.read_bytes() if real.is_file() else synth.chip_bytes_for(name)

_JPEG = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))[1].tobytes()


def touch_jpeg(path: Path) -> Path:
    """A tiny real JPEG at `path` (any name: written as bytes, not through cv2's path API)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_JPEG)
    return path


@pytest.fixture
def jpeg():
    return touch_jpeg


def utk_files(n: int, offset: int = 0) -> list[Path]:
    """n labelled chips spread over the ages (real UTKFace when present, else synthetic)."""
    files = sorted(p for p in utk_dir().iterdir() if p.name.endswith(".jpg") and " " not in p.name)
    # spread over ages: take every k-th file of the sorted listing
    step = max(1, len(files) // (n + offset))
    return files[offset * step::step][:n]


def real_utk_files(n: int) -> list[Path]:
    """Real UTKFace chips, for the tests that measure accuracy (skip without them)."""
    if not UTK_DIR.is_dir():
        pytest.skip(f"UTKFace not present at {UTK_DIR}: accuracy needs real faces")
    return utk_files(n)


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    return photos_path()


@pytest.fixture(scope="session")
def tiny_aligned(tmp_path_factory) -> Path:
    """~90 labelled chips (real UTKFace, else synthetic), prepared (detected + aligned)
    into train/valid/test CSVs."""
    from agecli.data.prepare import prepare

    root = tmp_path_factory.mktemp("utk_tiny")
    for f in utk_files(90):
        shutil.copy(f, root / f.name)
    prepare("utkface", root, workers=1)
    return root


def train_tiny(data_dir: Path, ckdir: Path, loss: str = "ldl", epochs: int = 2, steps: int = 3, extra: list[str] | None = None,
               resume: Path | None = None) -> dict:
    """A few real optimisation steps on the tiny set (64 px keeps it quick)."""
    from agecli.config import apply_overrides, default_config
    from agecli.train.trainer import TrainJob, train

    cfg = apply_overrides(default_config(), ["MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", str(epochs), "TRAIN.MAX_STEPS",
                                             str(steps), "TRAIN.BATCH_SIZE", "16", "TRAIN.LOSS", loss,
                                             "TRAIN.WARMUP_EPOCHS", "0", *(extra or [])])
    return train(TrainJob(cfg, data_dir, "utkface", ckdir, aug=True, resume=resume, log=lambda m: None))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_aligned, tmp_path_factory) -> Path:
    """A real checkpoint (LDL head, 64 px) trained for a few steps on the tiny set."""
    ckdir = tmp_path_factory.mktemp("ckpt")
    train_tiny(tiny_aligned, ckdir)
    return ckdir / "best.pth"


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    """tiny_checkpoint exported to ONNX: what `demo` runs on CPU, without re-exporting per run."""
    from agecli.atomic import write_bytes
    from agecli.infer.onnx_build import onnx_bytes_for_checkpoint

    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    write_bytes(path, onnx_bytes_for_checkpoint(tiny_checkpoint))
    return path


def chip_video(path: Path, frames: int) -> Path:
    """An MJPG video of `frames` copies of a face chip (skips the test where OpenCV has
    no MJPG writer)."""
    chip = cv2.imread(str(utk_files(1)[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (chip.shape[1], chip.shape[0]))
    if not writer.isOpened():
        pytest.skip("no MJPG video writer in this OpenCV build")
    for _ in range(frames):
        writer.write(chip)
    writer.release()
    return path
