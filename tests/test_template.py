"""Template crops (DATA.ALIGN template) end to end through the CLI: prepare stores the
five landmarks, a model trained on template crops carries its template, and `demo`,
`export` and `val` cut its faces the same way; a CSV without landmarks is refused."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agecli.cli import app
from agecli.data.images import load_rgb
from agecli.data.records import LANDMARK_COLUMNS
from agecli.face.align import FACE_TEMPLATE, align_face, crop_face, eye_angle, template_params
from agecli.face.detector import FaceDetector, main_face
from agecli.infer.sources import sample_image
from agecli.model.checkpoint import load_checkpoint

SAMPLE = sample_image()  # the README's sample photo, one face


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def template_model(tiny_aligned, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("tmpl") / "run"
    res = cli("train-mt", "--dataset", "utkface", "--data-dir", tiny_aligned, "--checkpoint", run,
              "MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "2", "TRAIN.BATCH_SIZE", "16",
              "TRAIN.WARMUP_EPOCHS", "0", "DATA.ALIGN", "template", "DATA.EXPAND", "0")
    assert res.exit_code == 0, res.output
    return run / "best.pth"


def test_prepare_stores_the_landmarks_the_alignment_came_from(tiny_aligned):
    df = pd.read_csv(tiny_aligned / "utkface_train_align.csv")
    assert set(LANDMARK_COLUMNS) <= set(df.columns) and df[LANDMARK_COLUMNS].notna().all(axis=None)
    for row in df.head(20).itertuples(index=False):
        lm = np.array([getattr(row, c) for c in LANDMARK_COLUMNS]).reshape(5, 2)
        assert abs(eye_angle(lm) - row.deg) < 0.2  # deg is the eye line of these very points


def test_a_template_model_carries_its_template(template_model):
    meta = load_checkpoint(template_model)["meta"]
    assert meta["template"] == [list(p) for p in FACE_TEMPLATE] and meta["expand"] == 0


def test_demo_cuts_a_template_models_faces_with_the_template(template_model, tmp_path):
    """The saved crop of the sample photo is the template crop, not the box crop."""
    onnx = tmp_path / "tmpl.onnx"
    res = cli("export", "--resume", template_model, "--output", onnx)
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    res = cli("demo", SAMPLE, "--model", onnx, "--output-dir", out, "--save-crops")
    assert res.exit_code == 0, res.output
    saved = cv2.cvtColor(cv2.imread(str(next((out / "crops").rglob("*_face0.jpg")))), cv2.COLOR_BGR2RGB)
    rgb = load_rgb(SAMPLE)
    face = main_face(FaceDetector().detect(rgb), *rgb.shape[:2])
    t = template_params(face.landmarks, *rgb.shape[:2], FACE_TEMPLATE)
    b = align_face(face, *rgb.shape[:2])
    as_template = np.abs(saved.astype(float) - crop_face(rgb, t.deg, t.box, 0.0, 64)).mean()
    as_box = np.abs(saved.astype(float) - crop_face(rgb, b.deg, b.box, 0.0, 64)).mean()
    assert as_template < 6 and as_box > 4 * as_template, (as_template, as_box)  # measured: 3.8 and 47.9


def test_val_of_a_template_model_on_a_csv_without_landmarks_says_what_to_do(template_model, tiny_aligned, tmp_path):
    res = cli("val", "--resume", template_model, "--data-dir", tiny_aligned, "--dataset", "utkface",
              "--split", "valid", "--output-dir", tmp_path / "ok")
    assert res.exit_code == 0, res.output
    old = tmp_path / "old"
    old.mkdir()
    for f in tiny_aligned.glob("utkface_*"):
        if f.name.endswith("_align.csv"):
            pd.read_csv(f).drop(columns=LANDMARK_COLUMNS).to_csv(old / f.name, index=False)
        elif f.is_file():
            shutil.copy(f, old / f.name)
    (old / "utkface_image_root.txt").write_text(str(tiny_aligned))
    res = cli("val", "--resume", template_model, "--data-dir", old, "--dataset", "utkface", "--split", "valid",
              "--output-dir", tmp_path / "no")
    said = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "utkface_valid_align.csv" in said and "no face landmarks" in said and "agecli prepare" in said
    assert not (tmp_path / "no").exists() or not any((tmp_path / "no").iterdir())


def test_a_template_teacher_answers_on_its_own_crops(template_model, tiny_aligned, tmp_path):
    """A box-crop student taught by a template model: the teacher's cached answers are its
    answers on template crops of the train faces, not on the student's box crops."""
    from agecli.data.dataset import AlignedFaces
    from agecli.infer.runners import open_runner

    run = tmp_path / "student"
    res = cli("train-mt", "--dataset", "utkface", "--data-dir", tiny_aligned, "--checkpoint", run,
              "MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "1", "TRAIN.BATCH_SIZE", "16",
              "TRAIN.WARMUP_EPOCHS", "0", "TRAIN.TEACHER", template_model)
    assert res.exit_code == 0, res.output
    teacher = open_runner(template_model)
    csv = tiny_aligned / "utkface_train_align.csv"
    own = AlignedFaces.load(csv, tiny_aligned, 64, 0.0, template=FACE_TEMPLATE)
    boxed = AlignedFaces.load(csv, tiny_aligned, 64, 0.0)
    with np.load(run / "teacher.npz") as z:
        cached = z["probs"]
    np.testing.assert_allclose(cached, teacher.predict(own.images)["probs"], atol=1e-5)
    assert np.abs(cached - teacher.predict(boxed.images)["probs"]).max() > 1e-3


def test_a_teacher_that_withholds_gender_teaches_ages_only(template_model, tiny_aligned, tmp_path):
    """A converted age network (bench/convert_dlib_age.py) has an untrained gender head and
    withholds gender: a teacher's answers are what the model gives, so it teaches ages and
    no gender, where the same weights without `withheld` teach both."""
    from agecli.model.checkpoint import slim_checkpoint

    quiet = tmp_path / "quiet.pth"
    slim_checkpoint(template_model, quiet, fp16=False, meta_update={"withheld": {"gender": "untrained head"}})
    cached = {}
    for name, teacher in (("both", template_model), ("ages", quiet)):
        run = tmp_path / name
        res = cli("train-mt", "--dataset", "utkface", "--data-dir", tiny_aligned, "--checkpoint", run,
                  "MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "1", "TRAIN.BATCH_SIZE", "16",
                  "TRAIN.WARMUP_EPOCHS", "0", "TRAIN.TEACHER", teacher)
        assert res.exit_code == 0, res.output
        with np.load(run / "teacher.npz") as z:
            cached[name] = {k: z[k] for k in z.files}
    assert "gender_probs" in cached["both"] and "gender_probs" not in cached["ages"]
    np.testing.assert_allclose(cached["ages"]["probs"], cached["both"]["probs"], atol=1e-6)
