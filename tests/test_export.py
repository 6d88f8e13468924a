"""`agecli export`: ONNX and TorchScript files agree with the torch model on real face
crops, carry their metadata, take any batch size; failures write nothing."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from agecli.cli import app
from agecli.data.images import load_rgb
from agecli.face.detector import FaceDetector
from agecli.infer.pipeline import face_crops
from agecli.infer.onnx_meta import ONNX_META_KEY
from agecli.infer.batches import normalise
from agecli.infer.runners import OnnxRunner
from agecli.infer.torch_runner import predict_torch
from agecli.model.checkpoint import load_checkpoint, model_from_checkpoint

from .conftest import utk_files


def cli(*args):
    return CliRunner().invoke(app, ["export", *map(str, args)])


def max_diff(stdout: str) -> float:
    return float(re.search(r"max \|age difference\| vs torch ([0-9.]+)", stdout).group(1))


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("faces")
    for f in utk_files(3, offset=1):
        shutil.copy(f, d / f.name)
    return d


@pytest.fixture(scope="module")
def reference(tiny_checkpoint, faces_dir):
    """Five real aligned face crops and the torch model's outputs for them."""
    model, meta = model_from_checkpoint(tiny_checkpoint)
    files = sorted(faces_dir.iterdir())
    crops = face_crops(files * 2, FaceDetector(), meta["img_size"], meta["expand"], limit=5)
    assert len(crops) == 5
    return crops, predict_torch(model, crops, meta), meta


def test_onnx_export_matches_torch_any_batch(tiny_checkpoint, faces_dir, reference, tmp_path):
    out = tmp_path / "m.onnx"
    res = cli("--resume", tiny_checkpoint, "--images", faces_dir, "--output", out)
    assert res.exit_code == 0, res.output
    assert max_diff(res.stdout) < 1e-3 and "face crops from" in res.stdout and "random" not in res.stderr
    meta = json.loads({p.key: p.value for p in onnx.load(out).metadata_props}[ONNX_META_KEY])
    assert meta["img_size"] == 64 and meta["head"] and meta["outputs"][:2] == ["age", "std"]
    crops, ref, _ = reference
    runner = OnnxRunner(out)
    for batch in (1, 5):
        runner.batch_size = batch
        got = runner.predict(crops)
        for k in ("age", "std", "probs"):
            assert np.abs(got[k] - ref[k]).max() < 1e-3, (batch, k)
    assert not list(tmp_path.glob("*.tmp"))


def test_torchscript_export_matches_torch_any_batch(tiny_checkpoint, faces_dir, reference, tmp_path):
    out = tmp_path / "m.pt"
    res = cli("--resume", tiny_checkpoint, "--format", "torchscript", "--images", faces_dir, "--output", out)
    assert res.exit_code == 0, res.output
    assert max_diff(res.stdout) < 1e-3
    extra = {"agecli_meta.json": ""}
    module = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["agecli_meta.json"])["img_size"] == 64
    crops, ref, meta = reference
    x = torch.from_numpy(normalise(crops, meta["mean"], meta["std"]))
    with torch.no_grad():
        one = module(x[:1])[0].numpy()
        five = module(x)[0].numpy()
    assert np.abs(one - ref["age"][:1]).max() < 1e-3 and np.abs(five - ref["age"]).max() < 1e-3


def test_fp16_export(tiny_checkpoint, faces_dir, tmp_path):
    """fp16 weight storage: half the file, within its 0.5-year tolerance (int8: test_int8.py)."""
    res = cli("--resume", tiny_checkpoint, "--fp16", "--images", faces_dir, "--output", tmp_path / "h.onnx")
    assert res.exit_code == 0, res.output
    assert max_diff(res.stdout) < 0.5 and "(tolerance 0.5)" in res.stdout
    res = cli("--resume", tiny_checkpoint, "--images", faces_dir, "--output", tmp_path / "f.onnx")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "h.onnx").stat().st_size < 0.6 * (tmp_path / "f.onnx").stat().st_size
    ages = OnnxRunner(tmp_path / "h.onnx").predict(load_rgb(next(faces_dir.iterdir()))[None, :64, :64])["age"]
    assert np.isfinite(ages).all()


def test_default_output_and_random_inputs_are_announced(tiny_checkpoint, tmp_path):
    ckpt = tmp_path / "best.pth"
    shutil.copy(tiny_checkpoint, ckpt)
    res = cli("--resume", ckpt)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "best.onnx").is_file()
    assert "random inputs" in res.stdout and "random inputs" in res.stderr


def test_mismatch_exits_1_and_writes_nothing(tiny_checkpoint, faces_dir, tmp_path, monkeypatch):
    import agecli.infer.export as export

    real = export.exported_ages
    monkeypatch.setattr(export, "exported_ages", lambda *a: real(*a) + 0.2)
    out = tmp_path / "m.onnx"
    res = cli("--resume", tiny_checkpoint, "--images", faces_dir, "--output", out)
    assert res.exit_code == 1 and "does NOT match" in res.stderr
    assert not out.exists() and not list(tmp_path.iterdir())
    res = cli("--resume", tiny_checkpoint, "--fp16", "--images", faces_dir, "--output", out)
    assert res.exit_code == 0, res.output  # 0.2 years is within the fp16 tolerance


@pytest.mark.parametrize("args", [["--format", "tflite"], ["--format", "torchscript", "--int8"],
                                  ["--fp16", "--int8"], ["--opset", "7"]])
def test_bad_options_exit_2(tiny_checkpoint, tmp_path, args):
    res = cli("--resume", tiny_checkpoint, "--output", tmp_path / "x.onnx", *args)
    assert res.exit_code == 2, res.output
    assert not list(tmp_path.iterdir())


def test_an_output_that_is_the_checkpoint_is_refused(tiny_checkpoint, tmp_path):
    """`export --resume model.pt --format torchscript` used to write the TorchScript file
    over the checkpoint it read (the default output was the input itself), exit 0."""
    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, ckpt)
    before = ckpt.read_bytes()
    res = cli("--resume", ckpt, "--format", "torchscript")
    assert res.exit_code == 0, res.output
    assert ckpt.read_bytes() == before and (tmp_path / "model.torchscript.pt").is_file()
    keep = tmp_path / "keep.pth"
    shutil.copy(tiny_checkpoint, keep)
    (tmp_path / "link.onnx").symlink_to(keep)
    for out in (keep, tmp_path / "link.onnx"):
        res = cli("--resume", keep, "--output", out)
        assert res.exit_code == 2 and "is the checkpoint being exported" in res.output, res.output
    assert keep.read_bytes() == before


def test_flip_tta_model_mixes_each_face_with_its_mirror_in_torch_and_onnx(tiny_checkpoint, reference, tmp_path):
    """meta flip_tta: every runner answers from the crop and its mirror image, mixed (the
    two distributions averaged, age and std read from the mixture), and the exported
    graph does the same."""
    crops, _, meta = reference
    ckpt = load_checkpoint(tiny_checkpoint)
    ckpt["meta"] = {**ckpt["meta"], "flip_tta": True}
    tta = tmp_path / "tta.pth"
    torch.save(ckpt, tta)
    model, _ = model_from_checkpoint(tiny_checkpoint)
    plain = predict_torch(model, crops, meta)
    mirrored = predict_torch(model, np.ascontiguousarray(crops[:, :, ::-1]), meta)
    mixed = (plain["probs"] + mirrored["probs"]) / 2
    expected = mixed @ np.arange(meta["age_min"], meta["age_max"] + 1)
    tta_model, _ = model_from_checkpoint(tta)
    assert np.allclose(predict_torch(tta_model, crops, meta)["age"], expected, atol=1e-3)
    assert not np.allclose(plain["age"], expected, atol=1e-3)  # the mirror changes the answer
    out = tmp_path / "tta.onnx"
    res = cli("--resume", tta, "--output", out)
    assert res.exit_code == 0, res.output
    onnx_age = OnnxRunner(out).predict(crops)["age"]
    assert np.allclose(onnx_age, expected, atol=0.05)
    assert len(OnnxRunner(out).predict(crops[:1])["age"]) == 1


def test_mirror_zoom_mixes_each_face_with_its_mirror_seen_closer_in_torch_and_onnx(tiny_checkpoint, reference,
                                                                                  tmp_path):
    """meta mirror_zoom: the mirror pass of a flip_tta model sees the centre of the mirror
    image scaled back up (checked here against OpenCV's own resize), in torch and in the
    exported graph; a value outside 0.5-1 is refused by name."""
    import cv2

    crops, _, meta = reference
    ckpt = load_checkpoint(tiny_checkpoint)
    size = meta["img_size"]
    ckpt["meta"] = {**ckpt["meta"], "flip_tta": True, "mirror_zoom": 0.875}
    zoomed = tmp_path / "zoom.pth"
    torch.save(ckpt, zoomed)
    side = round(size * 0.875)
    off = (size - side) // 2
    mirror = crops[:, :, ::-1].astype(np.float32)[:, off:off + side, off:off + side]
    closer = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in mirror])
    model, _ = model_from_checkpoint(tiny_checkpoint)
    mixed = (predict_torch(model, crops, meta)["probs"] + predict_torch(model, closer, meta)["probs"]) / 2
    expected = mixed @ np.arange(meta["age_min"], meta["age_max"] + 1)
    zoom_model, _ = model_from_checkpoint(zoomed)
    got = predict_torch(zoom_model, crops, meta)["age"]
    assert np.allclose(got, expected, atol=1e-3)
    plain = (predict_torch(model, crops, meta)["probs"]
             + predict_torch(model, np.ascontiguousarray(crops[:, :, ::-1]), meta)["probs"]) / 2
    assert np.abs(plain @ np.arange(meta["age_min"], meta["age_max"] + 1) - got).max() > 1e-3  # the zoom matters
    out = tmp_path / "zoom.onnx"
    res = cli("--resume", zoomed, "--output", out)
    assert res.exit_code == 0, res.output
    assert np.abs(OnnxRunner(out).predict(crops)["age"] - got).max() < 1e-3
    ckpt["meta"]["mirror_zoom"] = 0.2
    torch.save(ckpt, zoomed)
    res = cli("--resume", zoomed, "--output", tmp_path / "bad.onnx")
    assert res.exit_code == 2 and "mirror_zoom 0.2" in res.output, res.output
    assert not (tmp_path / "bad.onnx").exists()


def test_unscaled_mirror_middle_is_a_smaller_second_look_in_torch_and_onnx(tiny_checkpoint, reference, tmp_path):
    """meta mirror_rescale false: the mirror pass of a flip_tta model is fed the middle of
    the mirror image as it is (fewer pixels, a cheaper pass), not scaled back up; torch
    and the exported graph agree, and a non-boolean value is refused by name."""
    crops, _, meta = reference
    ckpt = load_checkpoint(tiny_checkpoint)
    size = meta["img_size"]
    ckpt["meta"] = {**ckpt["meta"], "flip_tta": True, "mirror_zoom": 0.875, "mirror_rescale": False}
    small = tmp_path / "small.pth"
    torch.save(ckpt, small)
    side = round(size * 0.875)
    off = (size - side) // 2
    middle = np.ascontiguousarray(crops[:, :, ::-1][:, off:off + side, off:off + side])
    model, _ = model_from_checkpoint(tiny_checkpoint)
    mixed = (predict_torch(model, crops, meta)["probs"] + predict_torch(model, middle, meta)["probs"]) / 2
    expected = mixed @ np.arange(meta["age_min"], meta["age_max"] + 1)
    small_model, _ = model_from_checkpoint(small)
    assert small_model.mirror_view(torch.zeros(2, 3, size, size)).shape == (2, 3, side, side)
    got = predict_torch(small_model, crops, meta)
    assert np.allclose(got["age"], expected, atol=1e-3)
    scaled = ckpt["meta"] | {"mirror_rescale": True}
    torch.save({**ckpt, "meta": scaled}, tmp_path / "scaled.pth")
    scaled_age = predict_torch(model_from_checkpoint(tmp_path / "scaled.pth")[0], crops, meta)["age"]
    assert np.abs(scaled_age - got["age"]).max() > 1e-3  # unscaled is another look
    out = tmp_path / "small.onnx"
    res = cli("--resume", small, "--output", out)
    assert res.exit_code == 0, res.output
    onnx = OnnxRunner(out).predict(crops)
    assert np.abs(onnx["age"] - got["age"]).max() < 1e-3
    assert len(OnnxRunner(out).predict(crops[:1])["age"]) == 1
    ckpt["meta"]["mirror_rescale"] = "no"
    torch.save(ckpt, small)
    res = cli("--resume", small, "--output", tmp_path / "bad.onnx")
    assert res.exit_code == 2 and "mirror_rescale no" in res.output, res.output
    assert not (tmp_path / "bad.onnx").exists()


def test_export_of_a_missing_checkpoint_creates_nothing(tmp_path):
    res = cli("--resume", tmp_path / "missing.pth", "--output", tmp_path / "new" / "m.onnx")
    assert res.exit_code == 2 and "no such checkpoint" in res.output
    assert not (tmp_path / "new").exists()
