"""`prepare` end to end on a dozen real UTKFace chips plus broken files."""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from .conftest import utk_chip_bytes

from agecli.data.prepare import prepare
from agecli.data.records import resolve_image_root

CHIPS = ["100_0_0_20170112213500903.jpg.chip.jpg", "1_0_2_20161219203724580.jpg.chip.jpg",
         "23_0_2_20170116221009406.jpg.chip.jpg", "25_1_4_20161223214751864.jpg.chip.jpg",
         "26_1_3_20170104232333226.jpg.chip.jpg", "29_0_0_20170116192401102.jpg.chip.jpg",
         "31_0_4_20170116193338756.jpg.chip.jpg", "35_0_3_20170119212039049.jpg.chip.jpg",
         "3_1_0_20170109193047806.jpg.chip.jpg",
         # the release's odd names: a space, race missing, dot missing
         "24_0_1_20170116220224657 .jpg.chip.jpg", "39_1_20170116174525125.jpg.chip.jpg",
         "55_0_0_20170116232725357jpg.chip.jpg"]
NESTED = "sub dir é/46_1_1_20170117155904640.jpg.chip.jpg"  # a chip in an odd sub-folder
BAD = {"40_0_0_corrupt.jpg": "unreadable", "41_1_0_empty.jpg": "unreadable",
       "42_0_1_gray.jpg": "no_face", "unknown_0_0_20170116000000000.jpg.chip.jpg": "bad_label"}
LANDMARKS = [f"lm{i}" for i in range(1, 11)]  # the five landmarks, x and y (template crops are cut from them)
COLUMNS = ["photo", "age", "deg", "box1", "box2", "box3", "box4", "gender", "race", *LANDMARKS]
SPLITS = ("train", "valid", "test")


def rule(path: str) -> str:
    fold = int(hashlib.md5(Path(path).name.encode()).hexdigest(), 16) % 10
    return "train" if fold <= 5 else "valid" if fold <= 7 else "test"


@pytest.fixture
def utk_root(tmp_path) -> Path:
    root = tmp_path / "utk"
    root.mkdir()
    for n in CHIPS:
        (root / n).write_bytes(utk_chip_bytes(n))
    (root / NESTED).parent.mkdir()
    (root / NESTED).write_bytes(utk_chip_bytes(Path(NESTED).name))
    good = utk_chip_bytes(CHIPS[0])
    (root / "40_0_0_corrupt.jpg").write_bytes(good[:200])  # a JPEG cut short
    (root / "41_1_0_empty.jpg").write_bytes(b"")
    (root / "42_0_1_gray.jpg").write_bytes(cv2.imencode(".jpg", np.full((200, 200, 3), 128, np.uint8))[1].tobytes())
    (root / "unknown_0_0_20170116000000000.jpg.chip.jpg").write_bytes(good)
    return root


def outputs(out: Path, name: str = "utkface") -> dict[str, bytes]:
    files = [f"{name}_{s}_align.csv" for s in SPLITS] + [f"{name}_rejected.csv"]
    return {f: (out / f).read_bytes() for f in files}


def check_outputs(out: Path, name: str = "utkface") -> None:
    accepted = CHIPS + [NESTED]
    seen = []
    for split in SPLITS:
        df = pd.read_csv(out / f"{name}_{split}_align.csv", dtype={"photo": str}, keep_default_na=False)
        assert list(df.columns) == COLUMNS
        for row in df.itertuples():
            assert rule(row.photo) == split, row.photo
            assert row.box1 < row.box3 and row.box2 < row.box4
            assert abs(row.deg) < 45
            seen.append(row.photo)
    assert sorted(seen) == sorted(accepted)
    labels = pd.concat(pd.read_csv(out / f"{name}_{s}_align.csv") for s in SPLITS).set_index("photo")
    assert labels.loc["24_0_1_20170116220224657 .jpg.chip.jpg", ["age", "gender", "race"]].tolist() == [24, 0, 1]
    assert pd.isna(labels.loc["39_1_20170116174525125.jpg.chip.jpg", "race"])  # race unknown
    rejected = pd.read_csv(out / f"{name}_rejected.csv")
    assert list(rejected.columns) == ["photo", "age", "reason"]
    reasons = dict(zip(rejected["photo"], rejected["reason"]))
    assert set(reasons) == set(BAD)
    for photo, why in BAD.items():
        assert reasons[photo].startswith(why), (photo, reasons[photo])
    assert not list(out.glob("*_partial.csv")) and not list(out.glob("*.tmp"))


def test_prepare_in_place_and_rerun(utk_root):
    summary = prepare("utkface", utk_root, workers=1)
    assert (summary["total"], summary["accepted"], summary["rejected"]) == (17, 13, 4)
    check_outputs(utk_root)
    assert Path(summary["report"]).is_file()
    first = outputs(utk_root)
    again = prepare("utkface", utk_root, workers=1)  # the outputs now sit among the images
    assert (again["total"], again["accepted"], again["rejected"]) == (17, 13, 4)
    assert outputs(utk_root) == first


def test_prepare_resumes_from_partial(utk_root, tmp_path):
    out = tmp_path / "out"
    prepare("utkface", utk_root, out, workers=1)
    fresh = outputs(out)
    for f in out.iterdir():
        f.unlink()

    class Stop(Exception):
        pass

    def stop_after_work(done: int, total: int) -> None:
        if done:
            raise Stop

    with pytest.raises(Stop):
        prepare("utkface", utk_root, out, workers=1, progress=stop_after_work)
    partial = out / "utkface_partial.csv"
    assert partial.is_file() and not (out / "utkface_train_align.csv").exists()
    partial.write_bytes(partial.read_bytes()[:-8])  # as if killed in the middle of the last row
    summary = prepare("utkface", utk_root, out, workers=1, progress=lambda d, t: None)
    assert summary["total"] == 17
    assert outputs(out) == fresh


def test_prepare_subject_split_needs_subjects(utk_root, tmp_path):
    with pytest.raises(ValueError, match="subject"):
        prepare("utkface", utk_root, tmp_path / "out", split="subject", workers=1)


def test_cli_prepare_with_out(utk_root, tmp_path):
    from typer.testing import CliRunner

    from agecli.cli import app

    out = tmp_path / "aligned"
    result = CliRunner().invoke(app, ["prepare", "--dataset", "utkface", "--data-dir", str(utk_root),
                                      "--out", str(out), "--workers", "1", "--name", "utk"])
    assert result.exit_code == 1, result.output  # two unreadable files and a bad label: listed, exit 1
    assert "3 images unreadable or with bad labels" in result.stderr
    check_outputs(out, "utk")
    assert (out / "utk_image_root.txt").is_file()
    assert resolve_image_root(out, "utk") == utk_root.resolve()
    assert not list(utk_root.glob("*.csv"))  # nothing written into the data dir
    df = pd.read_csv(out / "utk_train_align.csv")
    assert all((resolve_image_root(out, "utk") / p).is_file() for p in df["photo"])


def test_cli_prepare_bad_dataset(tmp_path):
    from typer.testing import CliRunner

    from agecli.cli import app

    result = CliRunner().invoke(app, ["prepare", "--dataset", "nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["prepare", "--dataset", "utkface", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2  # no images: one clear line, not a traceback


def test_prepare_csv_dataset_official_split_in_place(utk_root):
    # a user's own CSV (not named labels.csv), with an official split and subjects
    rows = [(n, n.split("_")[0], s, f"p{i % 3}") for i, (n, s) in enumerate(zip(CHIPS[:6], SPLITS * 2))]
    pd.DataFrame(rows, columns=["file", "age", "split", "subject"]).to_csv(utk_root / "my faces.csv", index=False)
    first = None
    for _ in range(2):  # the second run finds the first run's CSVs next to "my faces.csv"
        summary = prepare("csv", utk_root, workers=1, name="mine")
        assert (summary["total"], summary["accepted"], summary["rejected"]) == (6, 6, 0)
        files = outputs(utk_root, "mine")
        assert first is None or files == first
        first = files
    for split in SPLITS:
        df = pd.read_csv(utk_root / f"mine_{split}_align.csv", dtype={"subject": str})
        assert list(df.columns) == ["photo", "age", "deg", "box1", "box2", "box3", "box4", "subject", *LANDMARKS]
        assert sorted(df["photo"]) == sorted(n for n, _, s, _ in rows if s == split)
    parts = prepare("csv", utk_root, workers=1, name="mine", split="subject", folds=3)["splits"]
    assert parts == {"fold0": 2, "fold1": 2, "fold2": 2}
