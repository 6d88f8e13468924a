"""bench/gpu_pack.py: the crops a GPU run trains on are the crops agecli cuts, packed
small, and agecli's trainer runs on the unpacked set as on any prepared one."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from .conftest import REPO


def run_pack(*args: str):
    return subprocess.run([sys.executable, str(REPO / "bench" / "gpu_pack.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("align", ["box", "template"])
def test_pack_unpack_gives_back_the_crops_and_trains(tiny_aligned, tmp_path, align):
    from agecli.data.dataset import AlignedFaces
    from agecli.data.records import resolve_image_root
    from agecli.face.align import FACE_TEMPLATE
    from agecli.model.checkpoint import load_checkpoint

    template = [list(p) for p in FACE_TEMPLATE] if align == "template" else None
    pack = tmp_path / "pack.npz"
    res = run_pack("pack", "--data-dir", tiny_aligned, "--out", pack, "--size", 64, "--quality", 90, "--align", align)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout.splitlines()[-1])
    res = run_pack("unpack", "--pack", pack, "--out", tmp_path / "sets")
    assert res.returncode == 0, res.stderr
    folder = tmp_path / "sets" / "utkface"
    for split in ("train", "valid"):
        original = AlignedFaces.load(tiny_aligned / f"utkface_{split}_align.csv",
                                     resolve_image_root(tiny_aligned, "utkface"), 64, 0.25, template=template)
        again = AlignedFaces.load(folder / f"utkface_{split}_align.csv", folder, 64, 0.25, template=template)
        assert len(again) == len(original) and np.array_equal(again.ages, original.ages)
        assert np.array_equal(again.genders, original.genders) and np.array_equal(again.races, original.races)
        # the crop of an unpacked image is that image: the box is made for it
        photos = pd.read_csv(folder / f"utkface_{split}_align.csv")["photo"]
        decoded = np.stack([cv2.imread(str(folder / p))[:, :, ::-1] for p in photos])
        assert np.abs(again.images.astype(int) - decoded).max() <= 1
        # and only the WebP encoding stands between it and agecli's own crop
        err = np.abs(again.images.astype(float) - original.images).mean()
        assert err < 6, err
    assert not (folder / "utkface_test_align.csv").exists() and info["faces"] > 0
    res = run_pack("train", "--pack", pack, "--out", tmp_path / "run", "--work", tmp_path / "work", "--",
                   "MODEL.ARCH", "tiny_age", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "2", "TRAIN.BATCH_SIZE", "8")
    assert res.returncode == 0, res.stderr[-2000:]
    assert load_checkpoint(tmp_path / "run" / "best.pth")["meta"].get("template") == template
