"""`agecli demo` end to end on real faces: rows on stdout, annotated copies, resumable
predictions.csv, exit codes; plus the pieces (sources, pipeline batching, drawing)."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from agecli.cli import app
from agecli.face.detector import SMALL_FACE_PX
from agecli.infer.drawing import BOX_RGB, MAX_LEADER, ROUGH_ALPHA, _box_rect, _crosses, _overlaps, annotate, leader, place_labels, text_px
from agecli.demo.outputs import PARTIAL, PREDICTIONS
from agecli.infer.pipeline import AgePipeline, FaceResult
from agecli.demo.rows import COLUMNS
from agecli.infer.sources import Item, file_source

from .conftest import REPO, chip_video, utk_files


def cli(*args: str, input: str | None = None):
    return CliRunner().invoke(app, ["demo", *map(str, args)], input=input)


def csv_rows(text: str) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and list(rows[0]) == COLUMNS
    return rows


@pytest.fixture
def inputs(tmp_path, photos_dir) -> Path:
    """in/chips/<3 UTKFace chips> and in/groups/group_1.jpg."""
    root = tmp_path / "in"
    (root / "chips").mkdir(parents=True)
    (root / "groups").mkdir()
    for f in utk_files(3):
        shutil.copy(f, root / "chips" / f.name)
    shutil.copy(photos_dir / "group_1.jpg", root / "groups" / "group_1.jpg")
    return root


def test_demo_folder_csv_and_annotated_copies(inputs, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    res = cli("--img-dir", inputs, "--resume", tiny_onnx, "--output-dir", out)
    assert res.exit_code == 0, res.output
    rows = csv_rows(res.stdout)
    per_file: dict[str, list[dict]] = {}
    for r in rows:
        name = Path(r["output"]).relative_to(out).as_posix()  # the copy, where a user opens it
        per_file.setdefault(name, []).append(r)
        assert r["file"] == str(inputs / name)  # the input as given: the folder joined with its name
    images = sorted(p.relative_to(inputs).as_posix() for p in inputs.rglob("*.jpg"))
    assert sorted(per_file) == images
    for name in images:
        assert (out / name).is_file(), name  # same relative path and name
        assert cv2.imread(str(out / name)).shape == cv2.imread(str(inputs / name)).shape
    for name, face_rows in per_file.items():
        assert all(r["error"] == "" for r in face_rows), name
        for r in face_rows:
            assert 0 <= float(r["age"]) <= 120 and float(r["std"]) >= 0 and 0 < float(r["score"]) <= 1
            assert float(r["x2"]) > float(r["x1"]) and float(r["y2"]) > float(r["y1"])
            side = min(float(r["x2"]) - float(r["x1"]), float(r["y2"]) - float(r["y1"]))
            assert r["small_face"] == str(int(side < SMALL_FACE_PX))
    assert len(per_file["groups/group_1.jpg"]) > 5
    assert [r["face"] for r in per_file["groups/group_1.jpg"]][:3] == ["0", "1", "2"]
    # predictions.csv holds the same rows; no partial file is left behind
    assert csv_rows((out / PREDICTIONS).read_text()) == rows
    assert not (out / PARTIAL).exists()
    assert "images" in res.stderr and "file,face" not in res.stderr


def test_demo_jsonl_corrupt_input_gives_exit_1(inputs, tiny_onnx, tmp_path):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(300))
    chip = next((inputs / "chips").iterdir())
    res = cli(chip, bad, "--resume", tiny_onnx, "--format", "jsonl")
    assert res.exit_code == 1, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert all(list(r) == COLUMNS for r in rows)
    by_file = {r["file"]: r for r in rows}  # the inputs exactly as given (absolute here)
    assert by_file[str(bad)]["error"] == "unreadable" and by_file[str(bad)]["age"] is None
    assert by_file[str(chip)]["age"] > 0 and by_file[str(chip)]["error"] is None
    assert "corrupt.jpg" in res.stderr


def test_demo_flags_faces_too_small_to_age(photos_dir, tiny_onnx):
    """group_25's back rows (8-15 px) come with an age and small_face=1; a portrait's with 0."""
    if not (photos_dir / "group_25.jpg").is_file():
        pytest.skip("group_25.jpg (the ~200-person crowd) is in ../shared/photos only")
    res = cli(photos_dir / "group_25.jpg", utk_files(1)[0], "--resume", tiny_onnx, "--format", "jsonl")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    flags = {r["small_face"] for r in rows}
    assert flags == {0, 1} and all(r["age"] is not None for r in rows)
    for r in rows:
        assert r["small_face"] == int(min(r["x2"] - r["x1"], r["y2"] - r["y1"]) < SMALL_FACE_PX)


def test_demo_torch_checkpoint_no_face_and_save_crops(inputs, tiny_checkpoint, tmp_path):
    blank = inputs / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 160, 3), 200, np.uint8))
    out = tmp_path / "out"
    res = cli(blank, next((inputs / "chips").iterdir()), "--resume", tiny_checkpoint, "--runner", "torch",
              "--output-dir", out, "--save-crops", "--expand", "0.4")
    assert res.exit_code == 0, res.output
    rows = csv_rows(res.stdout)
    no_face = [r for r in rows if r["file"].endswith("blank.png")]
    assert len(no_face) == 1 and no_face[0]["error"] == "no_face" and no_face[0]["age"] == ""
    crops = list((out / "crops").rglob("*_face0.jpg"))
    assert len(crops) == 1 and cv2.imread(str(crops[0])).shape == (64, 64, 3)
    assert "--expand 0.4 differs" in res.stderr


def test_demo_img_list_from_stdin_subprocess(inputs, tiny_onnx):
    """`find ... | agecli demo --img-list -` in a real process: stdout is only CSV rows."""
    chips = sorted((inputs / "chips").iterdir())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "agecli", "demo", "--img-list", "-", "--resume", str(tiny_onnx)],
                          input="\n".join(str(c) for c in chips) + "\n", capture_output=True, text=True,
                          env=env, cwd=inputs, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = csv_rows(proc.stdout)
    assert sorted({r["file"] for r in rows}) == sorted(str(c) for c in chips)  # the paths as given
    assert all(r["age"] for r in rows)


def test_demo_img_list_relative_paths(inputs, tiny_onnx, monkeypatch):
    monkeypatch.chdir(inputs)
    names = sorted(p.relative_to(inputs).as_posix() for p in (inputs / "chips").iterdir())[:2]
    res = cli("--img-list", "-", "--resume", tiny_onnx, input="# two chips\n" + "\n".join(names) + "\n\n")
    assert res.exit_code == 0, res.output
    assert sorted({r["file"] for r in csv_rows(res.stdout)}) == names


def test_demo_skip_existing_finishes_an_interrupted_run(inputs, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    first = cli("--img-dir", inputs, "--resume", tiny_onnx, "--output-dir", out)
    assert first.exit_code == 0, first.output
    full = csv_rows((out / PREDICTIONS).read_text())
    # an interruption at ~75%: rows so far only in the partial file, the last copy missing
    last = Path(full[-1]["output"]).relative_to(out).as_posix()
    (out / PREDICTIONS).rename(out / PARTIAL)
    kept = [r for r in full if r["output"] != full[-1]["output"]]
    with open(out / PARTIAL, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(kept)
        fh.write(str(inputs / last) + ",0,3")  # killed in the middle of writing a row
    (out / last).unlink()
    res = cli("--img-dir", inputs, "--resume", tiny_onnx, "--output-dir", out, "--skip-existing")
    assert res.exit_code == 0, res.output
    assert "3 skipped" in res.stderr and "1 images" in res.stderr
    assert (out / last).is_file() and not (out / PARTIAL).exists()
    merged = csv_rows((out / PREDICTIONS).read_text())
    assert [r["file"] for r in merged] == [r["file"] for r in full]
    assert [r["age"] for r in merged] == [r["age"] for r in full]
    assert csv_rows(res.stdout) == merged


def test_demo_output_column_is_the_copy_a_user_can_open(inputs, monkeypatch):
    """`demo chips/x.jpg --output-dir out1` writes out1/chips/x.jpg, and the row says so:
    relative to the current folder when the option was, absolute when it was. A resume
    through another spelling of the same folder still finds the earlier rows."""
    monkeypatch.chdir(inputs)
    chip = sorted(Path("chips").iterdir())[0].as_posix()
    res = cli(chip, "groups/group_1.jpg", "--output-dir", "out1")  # the shipped model
    assert res.exit_code == 0, res.output
    outputs = {r["output"] for r in csv_rows(res.stdout)}
    assert outputs == {f"out1/{chip}", "out1/groups/group_1.jpg"}
    assert all(Path(o).is_file() for o in outputs)
    again = cli(chip, "groups/group_1.jpg", "--output-dir", inputs / "out1", "--skip-existing")
    assert again.exit_code == 0, again.output
    assert "2 skipped" in again.stderr
    rows = csv_rows(again.stdout)
    assert {r["output"] for r in rows} == {str(inputs / "out1" / chip), str(inputs / "out1" / "groups" / "group_1.jpg")}
    assert csv_rows((inputs / "out1" / PREDICTIONS).read_text()) == rows


def test_demo_video_every_n_frames(tiny_onnx, tmp_path):
    video = chip_video(tmp_path / "clip.avi", 6)
    res = cli("--video", video, "--every", "3", "--resume", tiny_onnx, "--output-dir", tmp_path / "out", "--save-frames")
    assert res.exit_code == 0, res.output
    files = sorted({r["file"] for r in csv_rows(res.stdout)})
    assert files == ["clip/frame_000000.jpg", "clip/frame_000003.jpg"]
    assert (tmp_path / "out" / "clip" / "frame_000003.jpg").is_file()  # --save-frames: today's JPEG frames
    assert (tmp_path / "out" / "clip.mp4").is_file()


def test_demo_usage_errors_exit_2(tiny_onnx, tmp_path, monkeypatch):
    import agecli.infer.default_model as dm
    import agecli.infer.sources as sources

    class NoCamera:
        def __init__(self, *a) -> None: ...
        def isOpened(self) -> bool: return False  # noqa: E704
        def release(self) -> None: ...

    monkeypatch.setattr(sources.cv2, "VideoCapture", NoCamera)
    res = cli("--webcam", "--resume", tiny_onnx)
    assert res.exit_code == 2 and "no webcam could be opened" in res.stderr
    monkeypatch.setattr(dm, "default_model_candidates", lambda: [tmp_path / "nowhere.onnx"])
    shutil.copy(utk_files(1)[0], tmp_path / "face.jpg")
    res = cli(tmp_path)
    assert res.exit_code == 2 and "no model: pass --model or install the default model" in res.stderr
    for args in (["--format", "xml"], ["--device", "gpu"], ["--runner", "tf"], ["--save-crops"],
                 ["--video", tmp_path / "missing.mp4"], ["--img-dir", tmp_path / "missing"]):
        res = cli(tmp_path, "--resume", tiny_onnx, *args) if args[0] not in ("--video", "--img-dir") \
            else cli("--resume", tiny_onnx, *args)
        assert res.exit_code == 2, (args, res.output)
        assert res.stdout == "", args
    assert "Exit codes" in CliRunner().invoke(app, ["demo", "--help"]).stdout


def test_default_model_path_checkout_then_package(tmp_path, monkeypatch):
    from agecli.infer import default_model
    from agecli.infer.default_model import MissingModelError, default_model_path

    pkg = tmp_path / "agecli"
    pkg.mkdir()
    monkeypatch.setattr(default_model, "__file__", str(pkg / "infer" / "default_model.py"))
    with pytest.raises(MissingModelError, match="pass `model`"):
        default_model_path()
    (pkg / "weights").mkdir()
    (pkg / "weights" / "agecli_default.onnx").write_bytes(b"x")
    assert default_model_path() == pkg / "weights" / "agecli_default.onnx"
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "agecli_default.onnx").write_bytes(b"x")
    assert default_model_path() == tmp_path / "weights" / "agecli_default.onnx"


def test_sources_names_globs_and_output_dir_excluded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for rel in ("a/x.jpg", "a/sub/y.PNG", "a/.hidden.jpg", "a/notes.txt", "a/out/old.jpg", "b/x.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    src = file_source([], img_dir=Path("a"), exclude=Path("a/out"))
    assert [i.name for i in src.items] == ["x.jpg", "sub/y.PNG"] and src.total == 2
    src = file_source(["a/x.jpg", "b/*.jpg", str(tmp_path / "a" / "x.jpg"), "c/*.jpg"])
    assert [i.name for i in src.items] == ["a/x.jpg", "b/x.jpg", "x.jpg", "c/*.jpg"]
    src = file_source(["a/x.jpg", "./a/x.jpg"])
    assert [i.name for i in src.items] == ["a/x.jpg", "a/x~2.jpg"]


class FakeRunner:
    """Counts calls; age = mean pixel value, so results can be traced to their crop."""

    meta = {"img_size": 32, "expand": 0.25}

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        self.calls.append(len(crops))
        n = len(crops)
        return {"age": crops.reshape(n, -1).mean(1).astype(np.float32), "std": np.ones(n, np.float32),
                "gender_probs": np.tile([0.2, 0.8], (n, 1)), "race_probs": np.tile([0.1, 0.1, 0.6, 0.1, 0.1], (n, 1))}


class FakeDetector:
    """One face per image whose pixel value is > 0, none otherwise."""

    def detect(self, rgb):
        from agecli.face.detector import Face

        if rgb[0, 0, 0] == 0:
            return []
        return [Face(np.array([10.0, 10, 50, 50]), 0.99, np.array([[20.0, 25], [40, 25], [30, 35], [22, 42], [38, 42]]))]


def test_pipeline_batches_faces_of_many_images_in_order():
    runner = FakeRunner()
    pipe = AgePipeline(runner, FakeDetector(), batch_faces=3, max_pending=16)
    values = [10, 0, 20, 30, 40, 50]
    items = [Item(f"{v}.jpg", lambda v=v: np.full((60, 60, 3), v, np.uint8)) for v in values]
    results = list(pipe.run(items))
    assert [r.name for r in results] == [f"{v}.jpg" for v in values]
    assert runner.calls == [3, 2]  # faces of several images per model call
    assert results[1].error == "no_face" and not results[1].faces
    for r, v in zip(results, values):
        if v:
            f = r.faces[0]
            assert abs(f.age - v) < 1.0  # the crop's own value: results stay with their image
            assert (f.gender, f.ethnicity) == ("female", None) and f.gender_prob == pytest.approx(0.8)
    assert set(pipe.timer.seconds) >= {"decode", "detect", "align", "age"}
    asked = AgePipeline(runner, FakeDetector(), attributes=frozenset({"age", "gender", "ethnicity"}))
    assert list(asked.run(items[:1]))[0].faces[0].ethnicity == "asian"  # given only when asked


def test_labels_do_not_overlap_in_a_crowd():
    rng = np.random.default_rng(1)
    boxes = []
    for r in range(6):
        for c in range(10):
            x, y = 20 + c * 60 + rng.integers(-5, 5), 30 + r * 70 + rng.integers(-5, 5)
            boxes.append((x, y, x + 45, y + 55))
    spots = place_labels(boxes, [(50, 16)] * len(boxes), (480, 640, 3))
    placed = [s for s in spots if s is not None]
    assert len(placed) > len(boxes) // 2
    for i, a in enumerate(placed):
        assert 0 <= a[0] and a[2] <= 640 and 0 <= a[1] and a[3] <= 480
        assert not any(_overlaps(a, b) for b in placed[i + 1:])


def test_label_size_follows_image_and_face_size():
    assert text_px((200, 200, 3), 150) >= 11  # thumbnail: still legible
    assert text_px((8000, 12000, 3), 30) >= 100  # huge photo, small face: visible when viewed whole
    assert text_px((1000, 1000, 3), 300) > text_px((1000, 1000, 3), 60)
    face = FaceResult(34.4, 3.6, np.array([100.0, 100, 300, 320]), np.zeros((5, 2)), 0.99)
    img = np.zeros((600, 800, 3), np.uint8)
    out = annotate(img, [face])
    assert out.shape == img.shape and out.any() and not img.any()


def _crowd(seed: int = 1) -> tuple[list[tuple[int, int, int, int]], list[bool]]:
    """A 60-face crowd in rows, every third face small (as in a large group photo)."""
    rng = np.random.default_rng(seed)
    boxes, rough = [], []
    for r in range(6):
        for c in range(10):
            x, y = 20 + c * 60 + rng.integers(-5, 5), 30 + r * 70 + rng.integers(-5, 5)
            side = 12 if (r * 10 + c) % 3 == 0 else 45
            boxes.append((x, y, x + side, y + side + 10))
            rough.append(side < SMALL_FACE_PX)
    return boxes, rough


def test_every_label_stays_with_its_own_box():
    """Issue 22, item 5: a label touches its own box, or (a face that is not small) a
    short leader joins them that crosses no other face; it never covers another face,
    so no label reads as the face's behind it."""
    boxes, rough = _crowd()
    # one face hemmed in above, beside and just below: its label can only sit a leader away
    boxes += [(300, 520, 340, 560), (290, 490, 350, 519), (330, 562, 380, 580), (240, 520, 299, 560),
              (341, 520, 400, 560)]
    rough += [False] * 5
    sizes = [(50, 16)] * len(boxes)
    spots = place_labels(boxes, sizes, (640, 640, 3), rough)
    rects = [_box_rect(b) for b in boxes]
    leaders = 0
    for i, spot in enumerate(spots):
        if spot is None:
            continue
        others = [r for j, r in enumerate(rects) if j != i]
        assert not any(_overlaps(spot, o) for o in others), i
        line = leader(spot, rects[i])
        if line is not None:
            leaders += 1
            assert not rough[i], "a small face's label touches its box"
            (x1, y1), (x2, y2) = line
            assert max(abs(x2 - x1), abs(y2 - y1)) <= MAX_LEADER * sizes[i][1] + 1
            assert not any(_crosses(line, o) for o in others)
    assert spots[len(boxes) - 5] is not None and leader(spots[len(boxes) - 5], rects[len(boxes) - 5]) is not None
    assert sum(s is not None for s, r in zip(spots, rough) if not r) >= 0.8 * rough.count(False)
    assert leaders >= 1


def test_small_faces_are_drawn_rougher():
    img = np.zeros((400, 600, 3), np.uint8)
    big = FaceResult(34.4, 3.6, np.array([50.0, 100, 250, 320]), np.zeros((5, 2)), 0.99)
    small = FaceResult(20.0, 9.0, np.array([450.0, 300, 462, 313]), np.zeros((5, 2)), 0.9)
    assert small.small_face and not big.small_face
    out = annotate(img, [big, small])
    near_big, near_small = out[:, :300], out[250:, 400:]
    assert (near_big == BOX_RGB).all(axis=2).any()  # full colour
    assert 0 < near_small.max() <= round(255 * ROUGH_ALPHA) + 1  # dimmed box and label
    rows_with_box = (out[:, 452:460] > 0).any(axis=2).any(axis=1)
    assert rows_with_box.sum() < 40  # a 1-px box and a short label, not a thick frame
    left_edge = (out[200, 40:70] > 0).any(axis=1).sum()
    assert left_edge >= 2  # the big face's box is thicker than 1 px


def test_labels_option_changes_the_copy_not_the_rows(tmp_path):
    photo = str(utk_files(1)[0])
    runs = {}
    for form in ("full", "age", "none"):
        out = tmp_path / form
        res = cli(photo, "--output-dir", out, "--labels", form, "--workers", "1")
        assert res.exit_code == 0, res.output
        rows = [{k: v for k, v in r.items() if k != "output"} for r in csv_rows(res.stdout)]
        runs[form] = rows, (out / Path(photo).name).read_bytes()
    assert runs["full"][0] == runs["age"][0] == runs["none"][0]
    copies = [runs[f][1] for f in ("full", "age", "none")]
    assert len(set(copies)) == 3
    bad = cli(photo, "--output-dir", tmp_path / "bad", "--labels", "big")
    assert bad.exit_code == 2 and "--labels" in bad.stderr

    import agecli

    face = FaceResult(34.4, 3.6, np.array([100.0, 100, 300, 320]), np.zeros((5, 2)), 0.99)
    img = np.zeros((600, 800, 3), np.uint8)
    boxes_only = agecli.draw(img, [face], labels="none")
    assert (boxes_only[:90] == 0).all()  # nothing above the box (and its line): no label
    assert not np.array_equal(agecli.draw(img, [face], labels="age"), agecli.draw(img, [face]))


def test_ethnicity_only_when_asked_and_only_from_a_model_that_has_it(tiny_aligned, tmp_path):
    """Ethnicity is never in the default rows; `--attributes` asks for it; a model
    without an ethnicity head refuses the request (exit 2) instead of leaving it blank."""
    from .conftest import train_tiny

    ckdir = tmp_path / "mt"
    train_tiny(tiny_aligned, ckdir, loss="mt", epochs=1, steps=2)
    from agecli.atomic import write_bytes
    from agecli.infer.onnx_build import onnx_bytes_for_checkpoint

    mt = tmp_path / "mt.onnx"
    write_bytes(mt, onnx_bytes_for_checkpoint(ckdir / "best.pth"))
    photo = str(utk_files(1)[0])
    default = csv_rows(cli(photo, "--resume", mt).stdout)
    assert default[0]["gender"] in ("male", "female")
    assert default[0]["ethnicity"] == "" and default[0]["ethnicity_prob"] == ""
    asked = csv_rows(cli(photo, "--resume", mt, "--attributes", "age,gender,ethnicity").stdout)
    assert asked[0]["ethnicity"] in ("white", "black", "asian", "indian", "others")
    age_only = csv_rows(cli(photo, "--resume", mt, "--attributes", "age").stdout)
    assert age_only[0]["gender"] == "" and age_only[0]["age"] == default[0]["age"]
    bad = cli(photo, "--resume", mt, "--attributes", "age,height")
    assert bad.exit_code == 2 and "height" in bad.output


def test_a_withheld_ethnicity_is_refused_with_its_reason_and_left_out_of_the_graph(tiny_aligned, tmp_path):
    """A model whose metadata withholds ethnicity (the shipped default does) keeps the
    head for its age layer but gives no ethnicity: asking exits 2 with the reason, the
    exported graph has no race_probs output, and age and gender are as before."""
    import onnx

    from agecli.atomic import write_bytes
    from agecli.infer.onnx_build import onnx_bytes_for_checkpoint
    from agecli.model.checkpoint import slim_checkpoint

    from .conftest import train_tiny

    ckdir = tmp_path / "mt"
    train_tiny(tiny_aligned, ckdir, loss="mt", epochs=1, steps=2)
    held = tmp_path / "held.pth"
    slim_checkpoint(ckdir / "best.pth", held, fp16=False, meta_update={"withheld": {"ethnicity": "not measured"}})
    held_onnx, full_onnx = tmp_path / "held.onnx", tmp_path / "full.onnx"
    write_bytes(held_onnx, onnx_bytes_for_checkpoint(held))
    write_bytes(full_onnx, onnx_bytes_for_checkpoint(ckdir / "best.pth"))
    assert [o.name for o in onnx.load(str(held_onnx)).graph.output] == ["age", "std", "probs", "gender_probs"]
    no_gender = tmp_path / "no_gender.pth"  # any attribute, not only ethnicity, leaves the graph
    slim_checkpoint(ckdir / "best.pth", no_gender, fp16=False, meta_update={"withheld": {"gender": "not measured"}})
    graph = onnx.load_from_string(onnx_bytes_for_checkpoint(no_gender)).graph
    assert [o.name for o in graph.output] == ["age", "std", "probs", "race_probs"]
    photo = str(utk_files(1)[0])
    for model in (held, held_onnx):
        r = cli(photo, "--resume", model, "--attributes", "age,gender,ethnicity")
        assert r.exit_code == 2 and "withholds ethnicity: not measured" in r.output, r.output
    rows, full = (csv_rows(cli(photo, "--resume", m).stdout)[0] for m in (held_onnx, full_onnx))
    assert (rows["age"], rows["gender"]) == (full["age"], full["gender"])
    shipped = cli(photo, "--attributes", "age,gender,ethnicity")  # the default model
    assert shipped.exit_code == 2 and "withholds ethnicity" in shipped.output


def test_a_model_without_an_ethnicity_head_refuses_to_give_one(tiny_onnx):
    from agecli import AgeEstimator
    from agecli.errors import UsageError

    r = cli(str(utk_files(1)[0]), "--resume", tiny_onnx, "--attributes", "age,ethnicity")
    assert r.exit_code == 2 and "no ethnicity" in r.output
    with pytest.raises(UsageError, match="no gender"):
        AgeEstimator(tiny_onnx, attributes=["gender"])


def test_an_age_only_model_runs_with_the_default_attributes(tiny_onnx):
    """The default asks a model for its gender only where it has a gender head."""
    rows = csv_rows(cli(str(utk_files(1)[0]), "--resume", tiny_onnx).stdout)
    assert rows[0]["age"] and rows[0]["gender"] == ""
