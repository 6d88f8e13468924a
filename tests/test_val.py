"""`agecli val` end to end on the tiny real set, plus the pieces it is built from."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from agecli.cli import app
from agecli.data.records import GENDERS, RACES
from agecli.eval.evaluate import ValError, check_head, flip_average
from agecli.eval.metrics import age_group_names

REPORTS = ["summary.json", "predictions.csv", "by_age_group.csv", "by_gender.csv", "by_ethnicity.csv",
           "by_gender_age_group.csv", "worst.csv", "worst.png", "mae_by_age.png"]
SUMMARY_KEYS = {"mae", "ca3", "ca5", "ca7", "n", "mean_std", "std_err_corr", "model", "model_hash", "dataset",
                "split", "expand", "runner", "tta", "seconds"}


def val(*args) -> "object":
    return CliRunner().invoke(app, ["val", *map(str, args)])


@pytest.fixture(scope="module")
def split(tiny_aligned) -> str:
    """The test split when the tiny set has a usable one, else valid."""
    test = pd.read_csv(tiny_aligned / "utkface_test_align.csv")
    return "test" if len(test) >= 5 else "valid"


@pytest.fixture(scope="module")
def pth_run(tiny_aligned, tiny_checkpoint, split, tmp_path_factory):
    """One full val of the checkpoint with every option that adds figures."""
    out = tmp_path_factory.mktemp("val") / "reports"
    res = val("--resume", tiny_checkpoint, "--data-dir", tiny_aligned, "--dataset", "utkface", "--split", split,
              "--output-dir", out, "--tta", "flip", "--baseline", "--worst-threshold", 2, "--batch-size", 8)
    return res, out


def test_val_writes_every_report(pth_run, tiny_aligned, tiny_checkpoint, split):
    from agecli.model.checkpoint import file_hash

    res, out = pth_run
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""  # results go to files; the terminal table is on stderr
    assert "MAE" in res.stderr and "reports:" in res.stderr
    for name in REPORTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not list(out.glob("*.tmp*"))

    s = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(s)
    n_csv = len(pd.read_csv(tiny_aligned / f"utkface_{split}_align.csv"))
    assert s["n"] == n_csv and s["skipped"] == 0
    assert s["model_hash"] == file_hash(tiny_checkpoint) and s["model"] == str(tiny_checkpoint)
    assert (s["dataset"], s["split"], s["tta"], s["head"]) == ("utkface", split, "flip", "dist")
    assert s["expand"] == pytest.approx(0.25) and s["runner"] == "onnx"
    assert {"tta_mae", "tta_ca3", "tta_ca5", "tta_ca7", "tta_mean_std"} <= set(s)
    assert {"baseline_mae", "baseline_ca5", "baseline_age"} <= set(s)
    train_ages = pd.read_csv(tiny_aligned / "utkface_train_align.csv")["age"]
    assert s["baseline_age"] == pytest.approx(float(np.median(train_ages)))

    pred = pd.read_csv(out / "predictions.csv")
    assert len(pred) == n_csv
    assert {"photo", "age", "pred", "std", "error", "age_group", "gender", "race", "tta_pred"} <= set(pred.columns)
    assert s["mae"] == pytest.approx(pred["error"].abs().mean(), abs=1e-3)
    assert s["ca5"] == pytest.approx((pred["error"].abs() <= 5).mean())
    assert s["mean_std"] == pytest.approx(pred["std"].mean(), abs=1e-3)
    assert s["tta_mae"] == pytest.approx((pred["tta_pred"] - pred["age"]).abs().mean(), abs=1e-3)
    assert s["baseline_mae"] == pytest.approx((pred["age"] - s["baseline_age"]).abs().mean())

    by_age = pd.read_csv(out / "by_age_group.csv")
    assert list(by_age.columns) == ["age_group", "count", "mae", "bias", "ca5"]
    assert by_age["count"].sum() == n_csv
    order = [age_group_names().index(g) for g in by_age["age_group"]]
    assert order == sorted(order)
    assert set(pd.read_csv(out / "by_gender.csv")["gender"]) <= set(GENDERS)
    assert set(pd.read_csv(out / "by_ethnicity.csv")["ethnicity"]) <= set(RACES)
    cross = pd.read_csv(out / "by_gender_age_group.csv")
    assert list(cross.columns[:2]) == ["gender", "age_group"] and cross["count"].sum() == n_csv

    worst = pd.read_csv(out / "worst.csv")
    assert list(worst.columns[:4]) == ["photo", "age", "pred", "error"]
    assert (worst["error"].abs() > 2).all() and len(worst) == s["n_worst"]
    assert list(worst["error"].abs()) == sorted(worst["error"].abs(), reverse=True)
    sheet = cv2.imread(str(out / "worst.png"))
    assert sheet is not None and sheet.shape[0] > 100 and sheet.std() > 10  # real crops, not a blank page
    assert cv2.imread(str(out / "mae_by_age.png")) is not None


def test_val_on_exported_onnx_gives_the_same_mae(pth_run, tiny_aligned, tiny_checkpoint, split, tmp_path):
    from agecli.atomic import write_bytes
    from agecli.infer.onnx_build import onnx_bytes_for_checkpoint

    onnx_path = tmp_path / "model.onnx"
    write_bytes(onnx_path, onnx_bytes_for_checkpoint(tiny_checkpoint))
    out = tmp_path / "reports"
    res = val("--resume", onnx_path, "--data-dir", tiny_aligned, "--dataset", "utkface", "--split", split,
              "--output-dir", out)
    assert res.exit_code == 0, res.stderr
    s = json.loads((out / "summary.json").read_text())
    ref = json.loads((pth_run[1] / "summary.json").read_text())
    assert s["n"] == ref["n"] and s["runner"] == "onnx"
    assert s["mae"] == pytest.approx(ref["mae"], abs=0.01)
    assert "tta_mae" not in s and "baseline_mae" not in s


def test_val_ldl_as_typed_with_the_model_defaults(tiny_aligned, tiny_checkpoint, split, tmp_path, monkeypatch):
    """`agecli val --ldl --resume best.pth`: the dataset comes from the checkpoint, the CSVs
    from data/<dataset>/; a different --expand runs, with a warning."""
    (tmp_path / "data").mkdir()
    os.symlink(tiny_aligned, tmp_path / "data" / "utkface")
    monkeypatch.chdir(tmp_path)
    res = val("--ldl", "--resume", tiny_checkpoint, "--split", split, "--runner", "torch", "--expand", 0.3)
    assert res.exit_code == 0, res.stderr
    assert "--expand 0.3 differs" in res.stderr
    s = json.loads((tmp_path / f"val_utkface_{split}" / "summary.json").read_text())
    assert s["ldl"] is True and s["loss"] == "ldl" and s["runner"] == "torch"
    assert s["expand"] == pytest.approx(0.3) and s["trained_expand"] == pytest.approx(0.25)
    assert any("expand" in w for w in s["warnings"])


@pytest.mark.parametrize("name", ["junk.pth", "junk.onnx", "missing.pth"])
def test_val_not_a_model_is_one_clear_line(tiny_aligned, tmp_path, name):
    path = tmp_path / name
    if name.startswith("junk"):
        path.write_text("this is not a model\n")
    res = val("--resume", path, "--data-dir", tiny_aligned, "--dataset", "utkface", "--output-dir", tmp_path / "o")
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and name in lines[0], res.stderr
    assert not (tmp_path / "o").exists()


def test_val_missing_split_names_the_ones_present(tiny_aligned, tiny_checkpoint, tmp_path):
    res = val("--resume", tiny_checkpoint, "--data-dir", tiny_aligned, "--dataset", "utkface", "--split", "nope",
              "--runner", "torch")
    assert res.exit_code == 2 and "utkface_nope_align.csv not found" in res.stderr
    assert "train, valid" in res.stderr.replace("test, ", "")


def test_val_without_prepared_data_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a newcomer's fresh folder: no data/<dataset>/ CSVs
    res = val("--dataset", "utkface")
    assert res.exit_code == 2
    err = " ".join(res.stderr.split())
    assert "--data-dir is required: no utkface_test_align.csv in data/utkface" in err
    assert "agecli prepare --dataset utkface --data-dir PATH_TO_IMAGES --out data/utkface" in err


def test_val_without_a_model_or_default(tmp_path, monkeypatch):
    import agecli.infer.default_model as dm

    monkeypatch.setattr(dm, "default_model_candidates", lambda: [tmp_path / "a" / "m.onnx", tmp_path / "b" / "m.onnx"])
    res = val("--data-dir", tmp_path, "--dataset", "utkface")
    assert res.exit_code == 2 and "no model: pass --model" in res.stderr and str(tmp_path / "b") in res.stderr


def test_default_model_path_takes_the_first_present(tmp_path, monkeypatch):
    import agecli.infer.default_model as dm

    real = dm.default_model_candidates()
    assert real[0] == Path(dm.__file__).resolve().parents[2] / "weights" / "agecli_default.onnx"
    assert real[1] == Path(dm.__file__).resolve().parents[1] / "weights" / "agecli_default.onnx"
    there = tmp_path / "pkg" / "agecli_default.onnx"
    there.parent.mkdir()
    there.write_bytes(b"x")
    monkeypatch.setattr(dm, "default_model_candidates", lambda: [tmp_path / "repo" / "agecli_default.onnx", there])
    assert dm.default_model_path() == there


def test_check_head():
    assert check_head({"head": "dist", "loss": "ldl"}, ldl=True) == []
    assert check_head({"head": "reg", "loss": "l1"}, ldl=False) == []
    assert "ce" in check_head({"head": "dist", "loss": "ce"}, ldl=True)[0]
    with pytest.raises(ValError, match="reg"):
        check_head({"head": "reg", "loss": "l1"}, ldl=True)


def test_flip_average_is_the_mixture():
    a = {"age": np.array([10.0, 30.0]), "std": np.array([0.0, 2.0]), "probs": np.array([[1.0, 0.0], [0.5, 0.5]])}
    b = {"age": np.array([20.0, 30.0]), "std": np.array([0.0, 4.0]), "probs": np.array([[0.0, 1.0], [0.5, 0.5]])}
    m = flip_average(a, b)
    assert m["age"] == pytest.approx([15.0, 30.0])
    assert m["std"] == pytest.approx([5.0, np.sqrt(10.0)])
    assert m["probs"] == pytest.approx(np.array([[0.5, 0.5], [0.5, 0.5]]))


def test_group_tables_skip_missing_labels_and_user_files_are_kept(tmp_path):
    """A set without gender/ethnicity labels gets the age-group table only; a stale
    by_gender.csv of an earlier val run in the same folder is removed, while a user's
    file under a report's name is never replaced or removed: the folder is refused."""
    from agecli.errors import UsageError
    from agecli.eval.evaluate import Evaluation
    from agecli.eval.metrics import group_tables
    from agecli.eval.reports import write_reports

    def evaluation(with_gender: bool) -> Evaluation:
        df = pd.DataFrame({"photo": ["a.jpg", "b.jpg", "c.jpg"], "age": [4.0, 30.0, 70.0],
                           "pred": [6.0, 30.0, 50.0], "std": [1.0, 2.0, 3.0]})
        df["error"] = df["pred"] - df["age"]
        df["age_group"] = pd.Categorical(["0-5", "21-30", "61+"], categories=age_group_names() + ["unknown"])
        if with_gender:
            df["gender"] = pd.Categorical(["male", "female", "male"], categories=["male", "female", "unknown"])
        return Evaluation(df, np.zeros((3, 32, 32, 3), np.uint8), {"mae": 22 / 3, "worst_threshold": 10.0,
                                                                   "dataset": "x", "split": "test"},
                          groups=group_tables(df))

    write_reports(evaluation(True), tmp_path / "ours")
    assert (tmp_path / "ours" / "by_gender.csv").exists()
    files = write_reports(evaluation(False), tmp_path / "ours")
    assert "by_age_group.csv" in files and not (tmp_path / "ours" / "by_gender.csv").exists()
    assert pd.read_csv(tmp_path / "ours" / "worst.csv")["photo"].tolist() == ["c.jpg"]
    assert json.loads((tmp_path / "ours" / "summary.json").read_text())["n_worst"] == 1
    for name in ("by_gender.csv", "predictions.csv"):
        user = tmp_path / name.split(".")[0]
        user.mkdir()
        (user / name).write_text("mine\n")
        with pytest.raises(UsageError, match=name):
            write_reports(evaluation(False), user)
        assert (user / name).read_text() == "mine\n" and sorted(p.name for p in user.iterdir()) == [name]


def test_a_second_val_run_gets_the_next_free_default_folder(tiny_aligned, tiny_onnx, tmp_path, monkeypatch):
    """The default val_<dataset>_<split>/ of an earlier run is kept; the next run writes val_..._<split>2/."""
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        res = val("--resume", tiny_onnx, "--data-dir", tiny_aligned, "--dataset", "utkface")
        assert res.exit_code == 0, res.output
    first, second = tmp_path / "val_utkface_test", tmp_path / "val_utkface_test2"
    assert (first / "summary.json").is_file() and (second / "summary.json").is_file()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "summary.json").write_text("{}")
    res = val("--resume", tiny_onnx, "--data-dir", tiny_aligned, "--dataset", "utkface", "--output-dir", "mine")
    assert res.exit_code == 2 and "summary.json" in res.stderr, res.output
    assert (tmp_path / "mine" / "summary.json").read_text() == "{}"


def test_a_photo_replaced_under_its_name_is_cropped_again(tiny_aligned, tiny_onnx, tmp_path):
    """The crop cache was keyed on the CSV text alone: an image replaced under the same
    name kept its old crop and so its old prediction, in silence."""
    import shutil

    data = tmp_path / "set"
    shutil.copytree(tiny_aligned, data, ignore=shutil.ignore_patterns(".agecli_cache"))
    test = pd.read_csv(data / "utkface_test_align.csv")
    first = val("--resume", tiny_onnx, "--data-dir", data, "--dataset", "utkface", "--output-dir", tmp_path / "a")
    assert first.exit_code == 0, first.output
    before = pd.read_csv(tmp_path / "a" / "predictions.csv").set_index("photo")["pred"]
    target = data / test["photo"].iloc[0]
    other = data / test["photo"].iloc[1]
    flipped = cv2.flip(cv2.imread(str(other)), 1)  # another face, same name as the first
    cv2.imwrite(str(target), cv2.resize(flipped, cv2.imread(str(target)).shape[1::-1]))
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    again = val("--resume", tiny_onnx, "--data-dir", data, "--dataset", "utkface", "--output-dir", tmp_path / "b")
    assert again.exit_code == 0, again.output
    after = pd.read_csv(tmp_path / "b" / "predictions.csv").set_index("photo")["pred"]
    name = test["photo"].iloc[0]
    assert after[name] != before[name]
    assert (after.drop(name) == before.drop(name)).all()


def test_val_names_unreadable_images_and_exits_1_on_every_run(tiny_aligned, tiny_onnx, tmp_path):
    """val skipped an unreadable image with exit 0, and on the cached second run said
    nothing at all (summary n=25 for a 26-row CSV, warnings [])."""
    import shutil

    data = tmp_path / "set"
    shutil.copytree(tiny_aligned, data, ignore=shutil.ignore_patterns(".agecli_cache"))
    test = pd.read_csv(data / "utkface_test_align.csv")
    (data / test["photo"].iloc[0]).write_bytes(b"broken")
    for out in ("a", "b"):  # the second run reads the crop cache
        res = val("--resume", tiny_onnx, "--data-dir", data, "--dataset", "utkface", "--output-dir", tmp_path / out)
        assert res.exit_code == 1, res.output
        assert test["photo"].iloc[0] in res.stderr
        s = json.loads((tmp_path / out / "summary.json").read_text())
        assert s["skipped"] == 1 and s["n"] == len(test) - 1
        assert s["skipped_photos"][0].startswith(test["photo"].iloc[0])
        assert any(test["photo"].iloc[0] in w for w in s["warnings"])


def test_a_box_that_does_not_lie_on_its_image_is_reported_not_answered(tiny_aligned, tiny_onnx, tmp_path):
    """box3=1e300 in an aligned CSV was accepted: a 15-year-old came out 60.5, exit 0."""
    import shutil

    data = tmp_path / "set"
    shutil.copytree(tiny_aligned, data, ignore=shutil.ignore_patterns(".agecli_cache"))
    csv = data / "utkface_test_align.csv"
    df = pd.read_csv(csv)
    df.loc[0, "box3"] = 1e300
    df.loc[1, ["box1", "box3"]] = [5000.0, 5100.0]  # beside the image
    df.to_csv(csv, index=False)
    res = val("--resume", tiny_onnx, "--data-dir", data, "--dataset", "utkface", "--output-dir", tmp_path / "out")
    assert res.exit_code == 1 and "bad_box" in res.stderr, res.output
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert df["photo"][0] not in set(pred["photo"]) and df["photo"][1] not in set(pred["photo"])
    assert len(pred) == len(df) - 2


def test_a_crop_cache_that_cannot_be_saved_is_one_warning(tiny_aligned, tiny_onnx, tmp_path):
    """The cache warning came out as "warning: warning: cannot save ..." in val."""
    (tmp_path / "blocker").write_text("a file where the cache folder should go")
    res = val("--resume", tiny_onnx, "--data-dir", tiny_aligned, "--dataset", "utkface",
              "--cache-dir", tmp_path / "blocker" / "cache", "--output-dir", tmp_path / "reports")
    assert res.exit_code == 0, res.output
    assert res.stderr.count("warning: cannot save the crop cache") == 1, res.stderr
    assert "warning: warning:" not in res.stderr and (tmp_path / "reports" / "summary.json").is_file()


def test_a_current_folder_val_cannot_write_in_is_found_before_the_run(tiny_aligned, tiny_onnx, tmp_path, monkeypatch):
    """Without --output-dir, val writes val_<set>_<split>/ in the current folder; an
    unwritable one failed only after the whole run (crops cut, faces estimated)."""
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs a folder no one can write in, even root: /proc")
    monkeypatch.chdir("/proc")
    res = val("--resume", tiny_onnx, "--data-dir", tiny_aligned, "--dataset", "utkface",
              "--cache-dir", tmp_path / "cache")
    assert res.exit_code == 3 and "the current folder" in res.stderr and "cannot write" in res.stderr, res.output
    assert not (tmp_path / "cache").exists()  # refused before a crop was cut
