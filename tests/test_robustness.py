"""Bad and unusual inputs never kill a run: real files written here (corrupt, truncated,
empty, fake, grayscale, RGBA, 16-bit, 1x1, huge, EXIF-rotated, odd names), unwritable
output folders and files that are not checkpoints."""
from __future__ import annotations

import csv
import io
import os
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from agecli.cli import app
from agecli.data.images import ImageError, load_rgb
from agecli.face.detector import FaceDetector

from .conftest import utk_files

ODD_NAME = "ünï cödé 照片 (1).jpg"


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def rows_by_file(text: str) -> dict[str, list[dict]]:
    """Rows by file name (the `file` column holds the input path as given)."""
    out: dict[str, list[dict]] = {}
    for r in csv.DictReader(io.StringIO(text)):
        out.setdefault(Path(r["file"]).name, []).append(r)
    return out


def upright_portrait(chip: Path) -> np.ndarray:
    """A UTKFace chip cut to 200x150 (taller than wide), RGB."""
    rgb = np.asarray(Image.open(chip).convert("RGB"))
    return np.ascontiguousarray(rgb[:, 25:175])


@pytest.fixture(scope="module")
def odd_files(tmp_path_factory) -> Path:
    """One folder with every kind of awkward input, made from real UTKFace chips."""
    d = tmp_path_factory.mktemp("odd")
    chip = utk_files(1, offset=2)[0]
    data = chip.read_bytes()
    rgb = np.asarray(Image.open(chip).convert("RGB"))
    (d / "corrupt.jpg").write_bytes(data[:20] + os.urandom(len(data) - 20))
    (d / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("this is not an image\n")
    Image.fromarray(rgb).convert("L").save(d / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(d / "rgba.png")
    cv2.imwrite(str(d / "sixteen.png"), rgb[:, :, ::-1].astype(np.uint16) * 257)
    Image.new("RGB", (1, 1), (120, 80, 60)).save(d / "tiny.png")
    # stored rotated 90 degrees counter-clockwise; EXIF orientation 6 says "turn clockwise to view"
    stored = Image.fromarray(upright_portrait(chip)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(d / "exif_rotated.jpg", exif=exif.tobytes(), quality=95)
    shutil.copy(chip, d / ODD_NAME)
    return d


UNREADABLE = ["corrupt.jpg", "empty.jpg", "text.jpg", "truncated.jpg"]
FACES = ["gray.png", "rgba.png", "sixteen.png", "exif_rotated.jpg", ODD_NAME]


@pytest.mark.parametrize("name", UNREADABLE)
def test_load_rgb_rejects_non_images(odd_files, name):
    with pytest.raises(ImageError, match="unreadable"):
        load_rgb(odd_files / name)


def test_load_rgb_normalises_modes_and_orientation(odd_files):
    for name in ["gray.png", "rgba.png", "sixteen.png", ODD_NAME]:
        img = load_rgb(odd_files / name)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, name
    gray = load_rgb(odd_files / "gray.png")
    assert (gray[..., 0] == gray[..., 1]).all()
    assert load_rgb(odd_files / "sixteen.png").max() > 200  # scaled to 8 bits, not clipped/truncated
    assert load_rgb(odd_files / "tiny.png").shape == (1, 1, 3)
    upright = load_rgb(odd_files / "exif_rotated.jpg")
    assert upright.shape == (200, 150, 3)  # stored 150x200, shown (and decoded) upright
    assert FaceDetector().detect(upright)


def test_demo_over_awkward_files(odd_files, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    res = cli("demo", "--img-dir", odd_files, "--resume", tiny_onnx, "--output-dir", out)
    assert res.exit_code == 1, res.output  # some inputs unreadable, the rest processed
    rows = rows_by_file(res.stdout)
    assert len(rows) == len(list(odd_files.iterdir()))
    for name in UNREADABLE:
        assert [r["error"] for r in rows[name]] == ["unreadable"], name
        assert not (out / name).exists()
    for name in FACES:
        assert rows[name][0]["error"] == "" and float(rows[name][0]["age"]) > 0, name
        assert (out / name).is_file(), name
    assert rows["tiny.png"][0]["error"] == "no_face"
    # a JPEG cut at a third is reported, not decoded into a flat-filled picture whose
    # lost faces would go unnoticed (issue 20, item 9: 29 of 52 faces, exit 0)
    assert "truncated" in res.stderr
    assert cv2.imdecode(np.fromfile(out / ODD_NAME, np.uint8), cv2.IMREAD_COLOR) is not None
    for name in UNREADABLE:
        assert name in res.stderr


def test_huge_uniform_image_is_processed(tiny_onnx, tmp_path):
    """12000x8000 (96 MP): decoded, downscaled for detection, no face, no crash."""
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.full((8000, 12000), 90, np.uint8))
    res = cli("demo", big, "--resume", tiny_onnx)
    assert res.exit_code == 0, res.output
    assert list(rows_by_file(res.stdout)) == ["big.png"] and "no_face" in res.stdout


def test_unwritable_output_dir_fails_before_work(tiny_onnx, tmp_path):
    chip = utk_files(1)[0]
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("a file, so no folder can be made under it")
    res = cli("demo", chip, "--resume", tiny_onnx, "--output-dir", blocker / "sub")
    assert res.exit_code == 3 and "cannot write" in res.stderr  # an output failure, not bad usage
    assert res.stdout == ""


def test_read_only_output_dir(tiny_onnx, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        res = cli("demo", utk_files(1)[0], "--resume", tiny_onnx, "--output-dir", ro)
        assert res.exit_code == 3 and "cannot write" in res.stderr and res.stdout == ""
    finally:
        ro.chmod(0o700)


class Planted:
    """Unpickling this would create a marker file: proof that a loader ran pickled code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("kind", ["garbage", "pickle", "torch_pickle", "garbage_onnx"])
def test_not_a_checkpoint_is_refused_without_unpickling(kind, tmp_path):
    marker = tmp_path / "was_unpickled"
    path = tmp_path / ("model.onnx" if kind == "garbage_onnx" else "model.pth")
    if kind in ("garbage", "garbage_onnx"):
        path.write_bytes(os.urandom(4096))
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"meta": Planted(marker)}))
    else:
        torch.save({"meta": {"format": "agecli-checkpoint-1"}, "x": Planted(marker)}, path)
    chip = utk_files(1)[0]
    for args in (["demo", chip, "--resume", path], ["export", "--resume", path]):
        res = cli(*args)
        assert res.exit_code == 2, (args, res.output)
        assert path.name in res.stderr
        assert res.exception is None or isinstance(res.exception, SystemExit)
        assert "weights_only" not in res.stderr  # never relay torch's advice to load it unsafely
        if kind in ("pickle", "torch_pickle"):
            assert "would run code" in res.stderr, res.stderr
    assert not marker.exists()


def _with_meta(src: Path, dst: Path, **changes) -> Path:
    """A copy of an exported model whose agecli metadata has `changes` (None: key removed)."""
    import json

    import onnx

    from agecli.infer.onnx_meta import ONNX_META_KEY

    proto = onnx.load(str(src))
    for prop in proto.metadata_props:
        if prop.key == ONNX_META_KEY:
            meta = json.loads(prop.value)
            meta.update(changes)
            prop.value = json.dumps({k: v for k, v in meta.items() if v is not None})
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize("changes", [{"expand": -5}, {"expand": "wide"}, {"img_size": None}, {"img_size": 6.5}])
def test_model_metadata_that_cannot_feed_the_model_is_refused(tiny_onnx, tmp_path, changes):
    """An ONNX file whose metadata says expand -5 was used silently, one without img_size
    died with a KeyError: both are refused, naming the file and the value."""
    bad = _with_meta(tiny_onnx, tmp_path / "bad.onnx", **changes)
    res = cli("demo", utk_files(1)[0], "--resume", bad)
    assert res.exit_code == 2 and "bad.onnx" in res.stderr and "metadata" in res.stderr, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("value", ["nan", "inf", "100", "-1"])
def test_expand_outside_what_a_crop_can_be_is_refused_everywhere(tiny_onnx, tiny_aligned, value):
    from agecli import AgeEstimator
    from agecli.errors import UsageError

    chip = utk_files(1)[0]
    for args in (["demo", chip, "--resume", tiny_onnx, "--expand", value],
                 ["val", "--resume", tiny_onnx, "--data-dir", tiny_aligned, "--dataset", "utkface",
                  "--expand", value]):
        res = cli(*args)
        assert res.exit_code == 2 and "--expand" in res.stderr, (args, res.output)
        assert res.exception is None or isinstance(res.exception, SystemExit)
    with pytest.raises(UsageError, match="`expand`"):
        AgeEstimator(tiny_onnx, expand=float(value))


def test_a_group_photo_cut_short_is_reported_not_half_read(photos_dir, tmp_path):
    """`head -c 60000 group_1.jpg > cut.jpg` gave 29 of its 52 faces, exit 0."""
    data = (photos_dir / "group_1.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 5])
    (tmp_path / "whole_but_no_end_marker.jpg").write_bytes(data[:-2])
    res = cli("demo", tmp_path / "cut.jpg", tmp_path / "whole_but_no_end_marker.jpg")
    assert res.exit_code == 1, res.output
    rows = rows_by_file(res.stdout)
    assert [r["error"] for r in rows["cut.jpg"]] == ["unreadable"]
    assert "truncated" in res.stderr
    assert len(rows["whole_but_no_end_marker.jpg"]) > 1
