"""Shared fixtures: real UTKFace chips and photos from ../shared when present (tests
that need them skip cleanly otherwise), a tiny aligned set, a briefly trained model."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
UTK_DIR = SHARED / "data" / "utkface" / "UTKFace"
PHOTOS_DIR = SHARED / "photos"
# names the reader tests use
PHOTOS, UTKFACE = PHOTOS_DIR, UTK_DIR

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
    if not UTK_DIR.is_dir():
        pytest.skip("UTKFace not present at ../shared/data/utkface/UTKFace")
    files = sorted(p for p in UTK_DIR.iterdir() if p.name.endswith(".jpg") and " " not in p.name)
    # spread over ages: take every k-th file of the sorted listing
    step = max(1, len(files) // (n + offset))
    return files[offset * step::step][:n]


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    if not PHOTOS_DIR.is_dir():
        pytest.skip("group photos not present at ../shared/photos")
    return PHOTOS_DIR


@pytest.fixture(scope="session")
def tiny_aligned(tmp_path_factory) -> Path:
    """~90 real UTKFace chips, prepared (detected + aligned) into train/valid/test CSVs."""
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
