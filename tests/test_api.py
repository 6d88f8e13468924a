"""The Python API (`agecli.AgeEstimator`, `draw`, `evaluate`), the torch-free path and
the self-contained ONNX file, on the licence-clean sample photo that ships with
matplotlib."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import agecli
from agecli import AgeEstimator, draw
from agecli.infer.sources import sample_image

from .conftest import REPO

SAMPLE = sample_image()


@pytest.fixture(scope="module")
def est() -> AgeEstimator:
    return AgeEstimator()


def test_predict_takes_a_path_arrays_in_either_order_and_pil(est):
    faces = est.predict(SAMPLE)
    assert len(faces) == 1
    f = faces[0]
    assert f.box.shape == (4,) and f.landmarks.shape == (5, 2) and 0.8 < f.score <= 1
    assert 20 < f.age < 100 and f.std > 0
    assert f.distribution is not None and f.distribution.sum() == pytest.approx(1, abs=1e-3)
    rgb = np.asarray(Image.open(SAMPLE).convert("RGB"))
    bgr = cv2.imread(str(SAMPLE))
    same = [est.predict(rgb)[0].age, est.predict(bgr, color="bgr")[0].age, est.predict(Image.open(SAMPLE))[0].age]
    assert same == pytest.approx([f.age] * 3, abs=1e-4)
    # reading a BGR array as RGB swaps red and blue: a different input, a different age
    assert est.predict(bgr)[0].age != pytest.approx(f.age, abs=1e-4)
    assert len(est.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))) == 1
    assert est.predict(np.full((200, 300, 3), 90, np.uint8)) == []
    assert [len(r) for r in est.predict_many([SAMPLE, np.zeros((64, 64, 3), np.uint8), rgb])] == [1, 0, 1]


def test_predict_rejects_what_it_cannot_read(est, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(agecli.ImageError, match="unreadable"):
        est.predict(bad)
    with pytest.raises(TypeError, match="numbers"):
        est.predict(np.zeros((64, 64, 3), "U1"))
    with pytest.raises(ValueError, match="color"):
        est.predict(SAMPLE, color="hsv")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        est.predict(np.zeros((4, 64, 64, 3), np.uint8))
    # predict_many: an unreadable file is an error naming it, never an empty "no face" list
    empty = tmp_path / "zero.jpg"
    empty.write_bytes(b"")
    for files in ([SAMPLE, tmp_path / "missing.jpg"], [empty]):
        with pytest.raises(agecli.ImageError, match=str(files[-1].name)):
            est.predict_many(files)
    with pytest.raises(TypeError, match="list of images"):
        est.predict_many(str(SAMPLE))  # used to iterate the path's characters


def test_a_missing_file_names_its_path(est, tmp_path):
    missing = tmp_path / "holiday" / "no_such.jpg"
    with pytest.raises(agecli.ImageError, match="unreadable: .*no_such.jpg") as e:
        est.predict(missing)
    assert str(missing) in str(e.value)


def test_face_result_to_dict_is_plain_json(est):
    face = est.predict(sample_image())[0]
    d = face.to_dict()
    back = json.loads(json.dumps(d))  # numpy types would raise here
    assert back == d
    assert back["age"] == pytest.approx(float(face.age)) and len(back["box"]) == 4
    assert len(back["landmarks"]) == 5 and all(len(p) == 2 for p in back["landmarks"])
    assert back["small_face"] is False and isinstance(back["distribution"], list)
    assert {"gender", "gender_prob", "ethnicity", "ethnicity_prob", "score", "std"} <= set(back)


def test_predict_crops_matches_predict_and_handles_zero_crops(est):
    from agecli.infer.pipeline import face_crops

    crops = face_crops([SAMPLE], est.detector, est.img_size, est.expand)
    out = est.predict_crops(crops)
    assert out["age"][0] == pytest.approx(est.predict(SAMPLE)[0].age, abs=1e-4)
    assert est.predict_crops(crops[0])["age"].shape == (1,)
    assert est.predict_crops(crops[:, :, :, ::-1].copy(), color="bgr")["age"][0] == pytest.approx(out["age"][0])
    empty = est.predict_crops(np.zeros((0, est.img_size, est.img_size, 3), np.uint8))
    assert set(empty) == set(out) and all(len(v) == 0 for v in empty.values())
    assert empty["probs"].shape == (0, out["probs"].shape[1])
    with pytest.raises(ValueError, match=r"uint8 \(N, 128, 128, 3\)"):
        est.predict_crops(np.zeros((1, 64, 64, 3), np.uint8))


def test_draw_marks_faces_in_the_colour_order_asked(est):
    faces = est.predict(SAMPLE)
    rgb = np.asarray(Image.open(SAMPLE).convert("RGB"))
    out = draw(SAMPLE, faces)
    assert out.shape == rgb.shape and (out != rgb).any()
    assert np.array_equal(draw(rgb[:, :, ::-1].copy(), faces, color="bgr"), out[:, :, ::-1])
    assert np.array_equal(draw(rgb, []), rgb)


def test_typed_errors_and_no_stdout(tmp_path, capsys):
    with pytest.raises(agecli.ModelError, match="no.onnx"):
        AgeEstimator(tmp_path / "no.onnx")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(agecli.ModelError):
        AgeEstimator(junk)
    with pytest.raises(agecli.UsageError, match="`device`"):
        AgeEstimator(device="gpu")
    AgeEstimator(expand=0.4).predict(SAMPLE)  # logs a warning, prints nothing
    assert capsys.readouterr().out == ""


def test_evaluate_returns_figures_and_writes_nothing(tiny_aligned, tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tiny_aligned.iterdir())
    ev = agecli.evaluate(tiny_onnx, tiny_aligned, "utkface", "train", tta="flip")
    s = ev.summary
    assert s["n"] == len(ev.frame) > 0 and s["mae"] >= 0 and {"ca3", "ca5", "tta_mae", "n_worst"} <= set(s)
    assert "by_age_group" in ev.groups and ev.groups["by_age_group"]["count"].sum() == s["n"]
    assert sorted(p.name for p in tiny_aligned.iterdir()) == before  # no crop cache, no reports
    assert list(tmp_path.iterdir()) == []


def run_python(code: str, cwd: Path, block_torch: bool = False) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter; with block_torch, as if torch were not installed."""
    prelude = "import sys\nsys.modules['torch'] = None\n" if block_torch else ""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_api_demo_and_onnx_val_import_no_torch(tiny_aligned, tiny_onnx, tmp_path):
    """The light install's path: the API, `demo` and `val` on an .onnx model never import
    torch (checked in a fresh interpreter), and still work with torch made unimportable."""
    code = f"""
import sys
from agecli import AgeEstimator
faces = AgeEstimator().predict({str(SAMPLE)!r})
assert len(faces) == 1 and faces[0].age > 0
from agecli.cli import app
for args in (["demo", {str(SAMPLE)!r}, "--output-dir", "out"],
             ["val", "--resume", {str(tiny_onnx)!r}, "--data-dir", {str(tiny_aligned)!r}, "--dataset", "utkface",
              "--split", "train", "--output-dir", "val"]):
    try:
        app(args, standalone_mode=False)
    except SystemExit as e:
        assert not e.code, e.code
heavy = sorted(m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in ("torch", "onnx"))
print("HEAVY", heavy, file=sys.stderr)
"""
    for block in (False, True):
        proc = run_python(code, tmp_path, block_torch=block)
        assert proc.returncode == 0, proc.stderr
        assert "HEAVY []" in proc.stderr
        assert "grace_hopper.jpg,0," in proc.stdout
        assert (tmp_path / "out" / "grace_hopper.jpg").is_file() and (tmp_path / "val" / "summary.json").is_file()


def test_commands_needing_torch_say_so_and_exit_2(tiny_checkpoint, tiny_aligned, tmp_path):
    code = """
from agecli.cli import app
try:
    app(sys.argv[1:], standalone_mode=True)
except SystemExit as e:
    sys.exit(e.code)
"""
    cases = [["train-ldl", "--data-dir", str(tiny_aligned), "--dataset", "utkface"],
             ["export", "--resume", str(tiny_checkpoint)],
             ["demo", str(SAMPLE), "--resume", str(tiny_checkpoint)],
             ["val", "--resume", str(tiny_checkpoint), "--data-dir", str(tiny_aligned), "--dataset", "utkface"]]
    for args in cases:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run([sys.executable, "-c", "import sys\nsys.modules['torch'] = None\n" + code, *args],
                              capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "needs torch" in lines[0] and '".[train]"' in lines[0], (args, proc.stderr)
        assert proc.stdout == ""


def test_shipped_onnx_runs_in_plain_onnxruntime(est):
    """What a C++/C#/JS user does: uint8 RGB crops straight into an InferenceSession,
    no agecli code between; the ages match agecli's."""
    import onnxruntime as ort

    from agecli.infer.default_model import default_model_path
    from agecli.infer.pipeline import face_crops

    sess = ort.InferenceSession(str(default_model_path()), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("crops", "tensor(uint8)", [128, 128, 3])
    meta = json.loads(sess.get_modelmeta().custom_metadata_map["agecli_meta"])
    assert meta["img_size"] == 128 and meta["expand"] == 0.25 and "uint8 RGB NHWC" in meta["input_format"]
    crops = face_crops([SAMPLE, SAMPLE], est.detector, 128, 0.25)
    age, std = sess.run(["age", "std"], {"crops": crops})[:2]
    assert age.shape == (2,) and age[0] == pytest.approx(est.predict(SAMPLE)[0].age, abs=1e-4)
    assert std[0] == pytest.approx(est.predict(SAMPLE)[0].std, abs=1e-4)


def test_float_input_exports_of_older_versions_still_run(tiny_checkpoint, tmp_path):
    """An ONNX file exported before the graph normalised its own input (float NCHW) is
    fed the normalised crops by the runner, and agrees with the current export."""
    import io

    import onnx
    import torch
    from onnx import helper

    from agecli.infer.onnx_build import onnx_model
    from agecli.infer.onnx_meta import ONNX_META_KEY
    from agecli.infer.runners import OnnxRunner
    from agecli.model.checkpoint import model_from_checkpoint
    from agecli.model.heads import Predictor

    model, meta = model_from_checkpoint(tiny_checkpoint)
    pred = Predictor(model).eval()
    buf = io.BytesIO()
    torch.onnx.export(pred, torch.zeros(1, 3, 64, 64), buf, input_names=["input"], output_names=pred.output_names(),
                      dynamic_axes={"input": {0: "batch"}}, opset_version=17, dynamo=False)
    old = onnx.load_from_string(buf.getvalue())
    helper.set_model_props(old, {ONNX_META_KEY: json.dumps({k: v for k, v in meta.items() if k != "metrics"})})
    crops = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    ages_old = OnnxRunner(old.SerializeToString()).predict(crops)["age"]
    ages_new = OnnxRunner(onnx_model(model, meta).SerializeToString()).predict(crops)["age"]
    assert np.abs(ages_old - ages_new).max() < 1e-3


def test_evaluate_runs_from_a_script_without_a_main_guard(tiny_aligned, tiny_onnx, tmp_path):
    """The README's evaluate(...) at a script's top level ran the script three times and
    died with BrokenProcessPool: the crop cache's own pool re-ran the main script."""
    import subprocess
    import sys

    script = tmp_path / "score.py"
    script.write_text("import agecli\n"
                      f"ev = agecli.evaluate({str(tiny_onnx)!r}, {str(tiny_aligned)!r}, 'utkface', workers=2)\n"
                      "print('MAE', ev.summary['n'])\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("MAE") == 1


def test_16_bit_and_float_images_give_the_faces_of_their_8_bit_photo(est, tmp_path):
    """A 16-bit PIL image or a float array gave no face (or a TypeError) where the same
    photo read from a file gives its age: they are scaled to 8 bits as the reader does."""
    rgb = np.asarray(Image.open(SAMPLE).convert("RGB"))
    age = est.predict(rgb)[0].age
    as16 = rgb.astype(np.uint16) * 257
    assert est.predict(as16)[0].age == pytest.approx(age, abs=1e-4)
    assert est.predict(rgb.astype(np.float32) / 255)[0].age == pytest.approx(age, abs=1e-4)
    assert est.predict(rgb.astype(np.float64))[0].age == pytest.approx(age, abs=1e-4)
    cv2.imwrite(str(tmp_path / "gray16.png"), as16[:, :, 1])
    gray16 = Image.open(tmp_path / "gray16.png")
    assert gray16.mode.startswith("I")
    faces = est.predict(gray16)
    assert len(faces) == 1 and faces[0].age == pytest.approx(est.predict(rgb[:, :, 1])[0].age, abs=1e-4)
