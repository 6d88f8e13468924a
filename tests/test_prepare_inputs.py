"""`prepare` and image reading on the inputs a careful user tries (issue 10): labels
validated where they enter, a resumed run that never mixes old settings in, FIFOs,
decompression bombs, JPEGs without an end marker, subject-disjoint splits."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agecli.cli import app
from agecli.data.images import ImageError, load_rgb

from .conftest import REPO, utk_files


def prepare_cli(*args):
    return CliRunner().invoke(app, ["prepare", *map(str, args)])


@pytest.fixture
def faces(tmp_path) -> Path:
    """Eight real UTKFace chips named f0.jpg ... f7.jpg."""
    d = tmp_path / "faces"
    d.mkdir()
    for i, f in enumerate(utk_files(8)):
        shutil.copy(f, d / f"f{i}.jpg")
    return d


def labels(d: Path, rows: list[tuple], header: str = "path,age", encoding: str = "utf-8") -> None:
    text = "\n".join([header] + [",".join(map(str, r)) for r in rows]) + "\n"
    (d / "labels.csv").write_bytes(text.encode(encoding))


def aligned_ages(out: Path, name: str = "csv") -> dict[str, float]:
    frames = [pd.read_csv(out / f"{name}_{s}_align.csv") for s in ("train", "valid", "test")]
    df = pd.concat(frames)
    return dict(zip(df["photo"], df["age"]))


@pytest.mark.parametrize("args, words", [
    (["--threshold", "2"], "--threshold"),
    (["--workers", "0"], "--workers"),
    (["--split", "subject", "--folds", "1"], "--folds"),
])
def test_bad_numbers_are_refused_before_work(faces, tmp_path, args, words):
    labels(faces, [(f"f{i}.jpg", 20 + i) for i in range(8)])
    res = prepare_cli("--dataset", "csv", "--data-dir", faces, "--out", tmp_path / "out", *args)
    assert res.exit_code == 2 and words in res.stderr, res.output


def test_duplicate_paths_with_different_ages_are_rejected(faces, tmp_path):
    labels(faces, [("f0.jpg", 30), ("f1.jpg", 40), ("f0.jpg", 31), ("f2.jpg", 50), ("f2.jpg", 50)])
    out = tmp_path / "out"
    res = prepare_cli("--dataset", "csv", "--data-dir", faces, "--out", out, "--workers", "1")
    assert res.exit_code == 1, res.output  # a bad label is a failed input
    rejected = pd.read_csv(out / "csv_rejected.csv")
    assert list(rejected["photo"]) == ["f0.jpg"]
    assert "listed twice with different labels (age 30 and 31)" in rejected["reason"][0]
    assert aligned_ages(out) == {"f1.jpg": 40, "f2.jpg": 50}  # the identical repeat is kept once


def test_duplicate_age_column_is_refused(faces, tmp_path):
    labels(faces, [("f0.jpg", 30, 31)], header="path,age,age")
    res = prepare_cli("--dataset", "csv", "--data-dir", faces, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "labels.csv" in res.stderr and "'age' appears 2 times" in res.stderr, res.output


def test_latin1_labels_name_the_file(faces, tmp_path):
    labels(faces, [("f0.jpg", 30, "José")], header="path,age,subject", encoding="latin-1")
    res = prepare_cli("--dataset", "csv", "--data-dir", faces, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "labels.csv" in res.stderr and "UTF-8" in res.stderr, res.output


def interrupted_prepare(faces: Path, out: Path) -> Path:
    """Eight labelled faces (ages 20-27), prepared into `out` and interrupted after the
    first chunk: a partial file for the next run to resume or discard."""
    from agecli.data.prepare import prepare

    labels(faces, [(f"f{i}.jpg", 20 + i) for i in range(8)])

    def interrupt(done: int, total: int) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare("csv", faces, out, workers=1, progress=interrupt)
    return out


def test_resumed_prepare_with_changed_labels_starts_over(faces, tmp_path):
    """An interrupted run leaves csv_partial.csv; the labels change; the re-run must not
    keep the old ages."""
    out = interrupted_prepare(faces, tmp_path / "out")
    assert (out / "csv_partial.csv").is_file()
    labels(faces, [(f"f{i}.jpg", 60 + i) for i in range(8)])
    res = prepare_cli("--dataset", "csv", "--data-dir", faces, "--out", out, "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "starting over" in res.stderr
    assert sorted(aligned_ages(out).values()) == [60 + i for i in range(8)]


def test_resumed_prepare_with_the_same_settings_keeps_its_work(faces, tmp_path):
    from agecli.data.prepare import prepare

    out = interrupted_prepare(faces, tmp_path / "out")
    seen = []
    prepare("csv", faces, out, workers=1, progress=lambda d, t: seen.append(d))
    assert seen[0] == 8  # every row came from the partial file


def test_unwritable_out_is_an_output_failure(faces, tmp_path):
    labels(faces, [("f0.jpg", 30)])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = prepare_cli("--dataset", "csv", "--data-dir", faces, "--out", blocker / "out")
    assert res.exit_code == 3 and "cannot write" in res.stderr, res.output


def test_fifo_among_the_images_does_not_hang_prepare(faces, tmp_path):
    os.mkfifo(faces / "9_0_0_20170101000000000.jpg")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    shutil.copy(utk_files(1)[0], faces / "30_0_0_20170101000000001.jpg")
    proc = subprocess.run([sys.executable, "-m", "agecli", "prepare", "--dataset", "utkface", "--data-dir",
                           str(faces), "--out", str(tmp_path / "out"), "--workers", "1"],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 1, proc.stderr
    rejected = pd.read_csv(tmp_path / "out" / "utkface_rejected.csv")
    reasons = dict(zip(rejected["photo"], rejected["reason"]))
    assert reasons["9_0_0_20170101000000000.jpg"] == "unreadable: not a regular file"


def test_subject_known_means_subject_disjoint_splits(faces, tmp_path):
    """--split auto with a subject column: every person lands in one split."""
    rows = [(f"f{i}.jpg", 20 + i, f"person{i % 3}") for i in range(8)]
    labels(faces, rows, header="path,age,subject")
    out = tmp_path / "out"
    res = prepare_cli("--dataset", "csv", "--data-dir", faces, "--out", out, "--workers", "1")
    assert res.exit_code == 0, res.output
    where: dict[str, set[str]] = {}
    for split in ("train", "valid", "test"):
        df = pd.read_csv(out / f"csv_{split}_align.csv", dtype={"subject": str})
        for s in df.get("subject", []):
            where.setdefault(s, set()).add(split)
    assert len(where) == 3 and all(len(v) == 1 for v in where.values()), where


def make_bomb(path: Path) -> None:
    """A real 64x64 JPEG whose header declares 20000x20000 pixels."""
    data = bytearray(cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))[1].tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (20000).to_bytes(2, "big") * 2
    path.write_bytes(bytes(data))


def make_float_bomb(path: Path, kind: str) -> None:
    """A Radiance HDR or PFM file (formats Pillow cannot read) declaring 20000x20000:
    OpenCV decodes it to 4.8 GB of floats."""
    if kind == "hdr":
        head = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n"
    else:
        head = b"PF\n20000 20000\n-1\n"
    path.write_bytes(head + bytes(range(256)) * 4096)


@pytest.mark.parametrize("kind", ["jpeg", "hdr", "pfm"])
def test_decompression_bomb_is_refused_from_its_header(tmp_path, kind):
    bomb = tmp_path / "bomb.jpg"  # named .jpg whatever it holds: the bytes decide
    make_bomb(bomb) if kind == "jpeg" else make_float_bomb(bomb, kind)
    # VmHWM, the peak of this process's own memory: ru_maxrss would also count the
    # parent's size at fork (a big pytest process), which exec does not reset
    code = ("from agecli.data.images import load_rgb, ImageError\n"
            f"try:\n    load_rgb({str(bomb)!r})\nexcept ImageError as e:\n    print(e)\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    message, peak_kb = proc.stdout.splitlines()
    assert "pixels" in message, proc.stdout + proc.stderr
    assert int(peak_kb) < 600_000  # decoding 20000x20000 would take 1.2 GB


def test_jpeg_missing_only_its_end_marker_is_read(tmp_path):
    chip = utk_files(1)[0].read_bytes()
    assert chip.endswith(b"\xff\xd9")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(chip[:-2])
    full = load_rgb(utk_files(1)[0])
    assert np.array_equal(load_rgb(cut), full)


def test_not_a_regular_file_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "p.jpg")
    with pytest.raises(ImageError, match="not a regular file"):
        load_rgb(tmp_path / "p.jpg")
    with pytest.raises(ImageError, match="not a regular file"):
        load_rgb(tmp_path)


def test_a_set_with_no_face_says_so_and_writes_no_split(tmp_path):
    """Every image faceless: it ended with pandas' "No objects to concatenate", exit 2,
    after writing empty split CSVs and leaving its partial files."""
    import cv2
    import numpy as np

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        cv2.imwrite(str(imgs / f"{20 + i}_0_0_2017010{i}.jpg.chip.jpg"), np.full((100, 100, 3), 128, np.uint8))
    res = prepare_cli("--dataset", "utkface", "--data-dir", imgs, "--out", tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert "no image of 3" in res.stderr and "3 no_face" in res.stderr and "concatenate" not in res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".agecli-prepare-files", "utkface_rejected.csv"]


def test_prepare_never_replaces_a_users_file_in_its_out_folder(tiny_aligned, tmp_path):
    """A user's utkface_report.md (or any file under one of prepare's names) in --out was
    replaced; now the run is refused before any work and the file is kept. A folder an
    earlier prepare made (ledger or not) is prepared again as before."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for f in sorted(tiny_aligned.glob("*.jpg"))[:6]:
        shutil.copy(f, imgs / f.name)
    out = tmp_path / "out"
    out.mkdir()
    (out / "utkface_report.md").write_text("my notes\n")
    res = prepare_cli("--dataset", "utkface", "--data-dir", imgs, "--out", out)
    assert res.exit_code == 2 and "utkface_report.md" in res.stderr, res.output
    assert sorted(p.name for p in out.iterdir()) == ["utkface_report.md"]
    assert (out / "utkface_report.md").read_text() == "my notes\n"
    (out / "utkface_report.md").unlink()
    for _ in range(2):  # its own files it may replace
        res = prepare_cli("--dataset", "utkface", "--data-dir", imgs, "--out", out)
        assert res.exit_code == 0, res.output
    (out / ".agecli-prepare-files").unlink()  # as an older agecli left it
    assert prepare_cli("--dataset", "utkface", "--data-dir", imgs, "--out", out).exit_code == 0


def test_a_file_name_that_is_not_utf8_is_rejected_by_name_and_the_set_goes_on(tmp_path):
    """`caf\\xe9.jpg` (Latin-1 bytes) aborted the whole prepare with a UnicodeEncodeError
    naming no file: the aligned CSVs are UTF-8 text and cannot hold that name."""
    src = tmp_path / "in"
    src.mkdir()
    chips = utk_files(6)
    for f in chips[1:]:
        shutil.copy(f, src / f.name)
    odd = os.fsencode(src / chips[0].name[:-len(".jpg")]) + b"caf\xe9.jpg"
    shutil.copy(chips[0], odd)
    res = prepare_cli("--dataset", "utkface", "--data-dir", src, "--out", tmp_path / "out", "--workers", 1)
    assert res.exit_code == 1, res.output  # an image left out: exit 1, the rest prepared
    assert "caf\\xe9.jpg" in res.stderr and "not UTF-8" in res.stderr
    rejected = pd.read_csv(tmp_path / "out" / "utkface_rejected.csv")
    assert rejected["photo"].str.endswith("caf\\xe9.jpg").sum() == 1
    assert rejected["reason"].str.startswith("bad_name").sum() == 1
    aligned = pd.concat(pd.read_csv(tmp_path / "out" / f"utkface_{s}_align.csv") for s in ("train", "valid", "test"))
    assert len(aligned) + len(rejected) == 6
    assert f"{len(aligned)}/6 faces aligned" in res.stderr


@pytest.mark.parametrize("damage", [b'photo,"x\n1,2,3\n', b"\xff\xfe\x00bad\n", b"replace:a,b\n1,2\n"])
def test_a_damaged_partial_file_is_discarded_with_a_message_not_fatal_to_every_rerun(tmp_path, damage):
    """A partial file that no longer parses (a parser error, bytes that are not UTF-8,
    other columns) made every re-run fail with pandas' text; it is agecli's own working
    file: discarded with one line naming it, and the set is aligned afresh."""
    from agecli.data.prepare import prepare

    src = tmp_path / "in"
    src.mkdir()
    for f in utk_files(4):
        shutil.copy(f, src / f.name)
    out = tmp_path / "out"

    class Stop(Exception):
        pass

    def stop(done: int, total: int) -> None:
        if done:
            raise Stop

    with pytest.raises(Stop):
        prepare("utkface", src, out, workers=1, progress=stop)
    partial = out / "utkface_partial.csv"
    if damage.startswith(b"replace:"):
        partial.write_bytes(damage[len(b"replace:"):])
    else:
        partial.write_bytes(partial.read_bytes() + damage)
    res = prepare_cli("--dataset", "utkface", "--data-dir", src, "--out", out, "--workers", 1)
    assert res.exit_code in (0, 1), res.output  # 1 only when a synthetic chip has no face
    said = "".join(res.stderr.split())  # the console wraps long lines anywhere
    assert "utkface_partial.csv:thisrun'searlierprogresscannotberead" in said
    assert (out / "utkface_train_align.csv").is_file() and not partial.exists()
    assert "Traceback" not in res.output


def test_a_heic_photo_in_a_set_is_rejected_by_name_not_skipped(tmp_path):
    from .test_demo_safety import HEIC_HEAD

    src = tmp_path / "in"
    src.mkdir()
    for f in utk_files(3):
        shutil.copy(f, src / f.name)
    (src / "30_1_0_20170101000000000.heic").write_bytes(HEIC_HEAD + bytes(2000))
    res = prepare_cli("--dataset", "utkface", "--data-dir", src, "--out", tmp_path / "out", "--workers", 1)
    assert res.exit_code == 1, res.output
    rejected = pd.read_csv(tmp_path / "out" / "utkface_rejected.csv")
    row = rejected[rejected["photo"] == "30_1_0_20170101000000000.heic"]
    assert len(row) == 1 and "HEIC file, which agecli has no decoder for" in row["reason"].iloc[0]


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "a,b"])
def test_a_name_with_folder_parts_is_refused_before_anything_is_written(tmp_path, name):
    """`--name ../x` wrote x_train_align.csv and the rest beside --out, not in it."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(utk_files(1)[0], src / utk_files(1)[0].name)
    res = prepare_cli("--dataset", "utkface", "--data-dir", src, "--out", tmp_path / "out", "--name", name)
    assert res.exit_code == 2 and "--name" in res.stderr, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"] and len(list(src.iterdir())) == 1
