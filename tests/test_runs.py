"""Training never replaces an earlier run, records its configuration, and refuses
settings and data it cannot use with one line and exit code 2 (issue 10)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from agecli.cli import app
from agecli.runs import numbered, run_dir

SMALL = ["MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "2", "TRAIN.BATCH_SIZE", "16",
         "TRAIN.WARMUP_EPOCHS", "0"]


def train(cmd: str, data_dir: Path, *args, small: bool = True):
    return CliRunner().invoke(app, [cmd, "--data-dir", str(data_dir), "--dataset", "utkface",
                                    *map(str, args), *(SMALL if small else [])])


def clean_exit(res) -> bool:
    """One message, no traceback: the command ended through SystemExit."""
    return res.exception is None or isinstance(res.exception, SystemExit)


def test_numbered_names():
    assert numbered(Path("runs/x"), 2) == Path("runs/x2")
    assert numbered(Path("runs/utk_ldl_resnet18"), 3) == Path("runs/utk_ldl_resnet18-3")


def test_run_dir_takes_the_first_free_folder(tmp_path):
    base = tmp_path / "x"
    assert run_dir(base) == base
    base.mkdir()
    assert run_dir(base) == base  # empty: free
    (base / "best.pth").write_bytes(b"1")
    (tmp_path / "x2").mkdir()
    (tmp_path / "x2" / "log.csv").write_text("epoch\n")
    assert run_dir(base) == tmp_path / "x3"
    assert run_dir(base, exist_ok=True) == base


def test_a_second_run_gets_its_own_folder(tiny_aligned, tmp_path):
    ck = tmp_path / "run"
    first = train("train-ldl", tiny_aligned, "--checkpoint", ck)
    assert first.exit_code == 0, first.output
    best, log = (ck / "best.pth").read_bytes(), (ck / "log.csv").read_text()
    second = train("train-ldl", tiny_aligned, "--checkpoint", ck, "TRAIN.LR", "0.5")
    assert second.exit_code == 0, second.output
    assert (ck / "best.pth").read_bytes() == best and (ck / "log.csv").read_text() == log  # untouched
    assert (tmp_path / "run2" / "best.pth").is_file() and "run2" in second.stderr
    config = json.loads((tmp_path / "run2" / "config.json").read_text())
    assert config["config"]["TRAIN"]["LR"] == 0.5 and config["config"]["TRAIN"]["LOSS"] == "ldl"
    assert config["args"]["dataset"] == "utkface" and config["args"]["subcommand"] == "train-ldl"
    # --exist-ok reuses the folder, and its log holds only the new run's rows
    again = train("train-ldl", tiny_aligned, "--checkpoint", ck, "--exist-ok")
    assert again.exit_code == 0, again.output
    assert len(pd.read_csv(ck / "log.csv")) == 1
    assert not (tmp_path / "run3").exists()


def test_resume_goes_on_in_its_own_folder_and_refuses_another_loss(tiny_aligned, tmp_path):
    ck = tmp_path / "ldl"
    assert train("train-ldl", tiny_aligned, "--checkpoint", ck).exit_code == 0
    res = train("train", tiny_aligned, "--resume", ck / "last.pth", "TRAIN.LOSS", "ce")
    assert res.exit_code == 2 and "loss='ldl'" in res.stderr, res.output
    two_epochs = [v if k != "TRAIN.EPOCHS" else "2" for k, v in zip(SMALL[::2], SMALL[1::2])]
    res = train("train-ldl", tiny_aligned, "--resume", ck / "last.pth",
                *[x for k, v in zip(SMALL[::2], two_epochs) for x in (k, v)], small=False)
    assert res.exit_code == 0, res.output
    assert list(pd.read_csv(ck / "log.csv")["epoch"]) == [1, 2]
    assert not (tmp_path / "ldl2").exists()


def test_a_checkpoint_that_is_a_file_is_refused(tiny_aligned, tmp_path):
    """`--checkpoint photo.jpg` (an existing file) trained into photo.jpg2/."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"a user's photo")
    res = train("train", tiny_aligned, "--checkpoint", photo)
    assert res.exit_code == 2 and "is a file, not a folder" in res.stderr, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"] and photo.read_bytes() == b"a user's photo"


@pytest.mark.parametrize("extra, words", [
    (["MODEL.AGE_MAX", "0"], "MODEL.AGE_MAX 0"),
    (["TRAIN.EPOCHS", "0"], "TRAIN.EPOCHS 0"),
    (["TRAIN.BATCH_SIZE", "0"], "TRAIN.BATCH_SIZE 0"),
    (["MODEL.IMG_SIZE", "8"], "MODEL.IMG_SIZE 8"),
    (["TRAIN.LR", "abc"], "TRAIN.LR"),
    (["TRAIN.LR", "nan"], "TRAIN.LR nan"),
    (["MODEL.ARCH", "vgg"], "MODEL.ARCH 'vgg'"),
    (["TRAIN.LOSS", "hinge"], "TRAIN.LOSS 'hinge'"),
    (["--expand", "-1"], "DATA.EXPAND -1"),
    (["--folds", "0"], "--folds"),
    # more folds than faces: it trained the first folds, then died on an empty one
    (["--folds", "500"], "of the 500 folds would hold no face"),
    (["--pretrained", "missing.pth"], "no such file"),
    (["--resume", "missing.pth"], "no such checkpoint"),
])
def test_bad_settings_are_bad_usage(tiny_aligned, tmp_path, extra, words):
    res = CliRunner().invoke(app, ["train", "--data-dir", str(tiny_aligned), "--dataset", "utkface",
                                   "--checkpoint", str(tmp_path / "run"), *extra])
    assert res.exit_code == 2 and words in res.stderr, res.output
    assert clean_exit(res)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_fake_pretrained_is_refused(tiny_aligned, tmp_path):
    fake = tmp_path / "weights.pth"
    fake.write_bytes(b"not torch at all" * 100)
    res = train("train", tiny_aligned, "--pretrained", fake, "--checkpoint", tmp_path / "run")
    assert res.exit_code == 2 and "weights.pth" in res.stderr and clean_exit(res), res.output


def test_unwritable_checkpoint_is_an_output_failure(tiny_aligned, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run folder would go")
    res = train("train", tiny_aligned, "--checkpoint", blocker / "run")
    assert res.exit_code == 3 and "cannot write" in res.stderr and clean_exit(res), res.output


def copy_set(src: Path, dst: Path, edit=None) -> Path:
    """The tiny aligned set's CSVs in a new folder (photos stay where they are)."""
    from agecli.data.records import resolve_image_root

    dst.mkdir()
    for split in ("train", "valid", "test"):
        df = pd.read_csv(src / f"utkface_{split}_align.csv")
        (edit(df) if edit else df).to_csv(dst / f"utkface_{split}_align.csv", index=False)
    (dst / "utkface_image_root.txt").write_text(str(resolve_image_root(src, "utkface")) + "\n")
    return dst


def test_train_mt_without_labels_is_refused(tiny_aligned, tmp_path):
    ages_only = copy_set(tiny_aligned, tmp_path / "ages", lambda df: df.drop(columns=["gender", "race"]))
    res = train("train-mt", ages_only, "--checkpoint", tmp_path / "run")
    assert res.exit_code == 2 and "no gender labels" in res.stderr, res.output
    assert not (tmp_path / "run").exists()  # a refused run leaves no folder holding only config.json


@pytest.mark.parametrize("edit, words", [
    (lambda df: df.assign(age=[-5.0] + list(df["age"][1:])), "row 2: age -5 is outside 0-120"),
    (lambda df: df.assign(age=[250.0] + list(df["age"][1:])), "row 2: age 250"),
    (lambda df: df.assign(age=["abc"] + list(df["age"][1:])), "row 2: age 'abc' is not a number"),
    (lambda df: pd.concat([df, df.iloc[:1]]), "appears in rows 2,"),
    # a traceback before: a zero-size box (ZeroDivisionError in the crop) and an empty photo cell
    (lambda df: df.assign(box3=[df["box1"][0]] + list(df["box3"][1:])), "row 2: the face box"),
    (lambda df: df.assign(photo=[""] + list(df["photo"][1:])), "row 2: the photo cell is empty"),
    # parser text before ("invalid literal for int()"): a label written as a word
    (lambda df: df.assign(gender=["male"] + list(df["gender"][1:])), "row 2: gender 'male' is not a code"),
    (lambda df: df.assign(race=[7] + list(df["race"][1:])), "row 2: race 7 is not a code"),
])
def test_edited_aligned_csv_names_file_row_and_value(tiny_aligned, tmp_path, edit, words):
    data = copy_set(tiny_aligned, tmp_path / "edited", edit)
    res = train("train", data, "--checkpoint", tmp_path / "run")
    assert res.exit_code == 2 and words in res.stderr and "utkface_train_align.csv" in res.stderr, res.output


def test_a_row_with_an_extra_field_is_refused_not_shifted(tiny_aligned, tmp_path):
    """One field too many in a row: pandas took the first as an index and read every
    column one to the left, reporting a row's deg as its age (or a misleading age error)."""
    data = copy_set(tiny_aligned, tmp_path / "extra")
    path = data / "utkface_train_align.csv"
    lines = path.read_text().splitlines()
    photo, rest = lines[1].split(",", 1)
    lines[1] = f"{photo},7,{rest}"
    path.write_text("\n".join(lines) + "\n")
    res = train("train", data, "--checkpoint", tmp_path / "run")
    assert res.exit_code == 2, res.output
    assert "utkface_train_align.csv: row 2:" in res.stderr and "fields where the header has" in res.stderr


def test_duplicate_age_column_is_refused(tiny_aligned, tmp_path):
    data = copy_set(tiny_aligned, tmp_path / "dup")
    path = data / "utkface_train_align.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",age"] + [ln + ",7" for ln in lines[1:]]) + "\n")
    res = train("train", data, "--checkpoint", tmp_path / "run")
    assert res.exit_code == 2 and "column 'age' appears 2 times" in res.stderr, res.output


def test_corrupt_crop_cache_is_rebuilt(tiny_aligned, tmp_path):
    data = copy_set(tiny_aligned, tmp_path / "set")
    assert train("train-ldl", data, "--checkpoint", tmp_path / "a").exit_code == 0
    caches = list((data / ".agecli_cache").glob("*.npy"))
    assert caches
    for c in caches:
        c.write_bytes(c.read_bytes()[:1000])  # cut short, as a full disk or a kill leaves it
    res = train("train-ldl", data, "--checkpoint", tmp_path / "b")
    assert res.exit_code == 0, res.output
    assert "rebuilding it" in res.stderr


def test_cache_is_saved_even_when_an_image_is_unreadable(tiny_aligned, tmp_path):
    from agecli.data.dataset import AlignedFaces
    from agecli.data.records import resolve_image_root

    images = tmp_path / "images"
    shutil.copytree(resolve_image_root(tiny_aligned, "utkface"), images,
                    ignore=shutil.ignore_patterns("*.csv", ".agecli_cache"))
    df = pd.read_csv(tiny_aligned / "utkface_valid_align.csv")
    (images / df["photo"][0]).write_bytes(b"broken")
    csv = tmp_path / "utkface_valid_align.csv"
    df.to_csv(csv, index=False)
    logs: list[str] = []
    first = AlignedFaces.load(csv, images, 32, 0.25, tmp_path / "cache", workers=1, log=logs.append)
    assert len(first) == len(df) - 1 and list((tmp_path / "cache").glob("*.npy"))
    again = AlignedFaces.load(csv, images, 32, 0.25, tmp_path / "cache", workers=1, log=logs.append)
    assert len(again) == len(first) and (again.images == first.images).all()
    assert isinstance(again.images, __import__("numpy").memmap)  # the cache, mapped, not copied into RAM
    # the unreadable image is named on every run, the cached one too (it was silent there)
    assert [s.split(":")[0] for s in first.skipped] == [s.split(":")[0] for s in again.skipped] == [df["photo"][0]]
    assert len(logs) == 2 and all(df["photo"][0] in m for m in logs)


def test_prepared_subject_folds_train_and_validate_end_to_end(tiny_aligned, tmp_path):
    """`prepare --split subject --folds 3` writes only utkface_fold{k}_align.csv: `train
    --folds 3` trains on them as they are, and `val --split fold1` evaluates one."""
    from agecli.data.records import resolve_image_root

    data = tmp_path / "folds"
    data.mkdir()
    df = pd.concat(pd.read_csv(tiny_aligned / f"utkface_{s}_align.csv") for s in ("train", "valid"))
    parts = [df.iloc[k::3] for k in range(3)]
    for k, part in enumerate(parts):
        part.to_csv(data / f"utkface_fold{k}_align.csv", index=False)
    (data / "utkface_image_root.txt").write_text(str(resolve_image_root(tiny_aligned, "utkface")) + "\n")
    res = train("train-ldl", data, "--folds", "3", "--checkpoint", tmp_path / "cv")
    assert res.exit_code == 0, res.output
    assert "using the 3 folds prepare wrote" in res.stderr
    for k, part in enumerate(parts):
        valid = pd.read_csv(tmp_path / "cv" / f"fold{k}" / f"utkface_fold{k}_valid_align.csv")
        assert sorted(valid["photo"]) == sorted(part["photo"])
    wrong = train("train-ldl", data, "--folds", "5", "--checkpoint", tmp_path / "cv5")
    assert wrong.exit_code == 2 and "use --folds 3" in wrong.stderr, wrong.output
    val = CliRunner().invoke(app, ["val", "--resume", str(tmp_path / "cv" / "fold1" / "best.pth"), "--data-dir",
                                   str(data), "--dataset", "utkface", "--split", "fold1",
                                   "--output-dir", str(tmp_path / "val")])
    assert val.exit_code == 0, val.output
    assert json_n(tmp_path / "val" / "summary.json") == len(parts[1])


def json_n(path: Path) -> int:
    return json.loads(path.read_text())["n"]


def test_a_failed_checkpoint_write_keeps_the_last_good_one(tiny_aligned, tmp_path):
    """A write that fails (here: a folder squats on the temporary name, as a full disk
    would fail it) stops the run with code 3 and leaves the previous last.pth whole."""
    ck = tmp_path / "run"
    assert train("train-ldl", tiny_aligned, "--checkpoint", ck).exit_code == 0
    good = (ck / "last.pth").read_bytes()
    from agecli.atomic import working_name

    working_name(ck / "last.pth").mkdir()
    two_epochs = [x if x != "1" else "2" for x in SMALL[:4]] + SMALL[4:]
    res = train("train-ldl", tiny_aligned, "--resume", ck / "last.pth", *two_epochs, small=False)
    assert res.exit_code == 3, res.output
    assert "the last good checkpoint is" in res.stderr and "last.pth" in res.stderr
    assert (ck / "last.pth").read_bytes() == good


def test_model_dropout_reaches_the_model():
    from agecli.config import apply_overrides, default_config
    from agecli.model.checkpoint import build_model, model_meta

    cfg = apply_overrides(default_config(), ["MODEL.DROPOUT", "0.5", "MODEL.ARCH", "tiny_age"])
    assert build_model(model_meta(cfg, "dist", "ldl")).dropout.p == 0.5


@pytest.mark.parametrize("extra, words", [(["TRAIN.LR", "-1"], "TRAIN.LR -1.0: must be between"),
                                          (["--agu"], "no such option: --agu"),
                                          (["TRAIN.EPOCHS", "1", "--agu"], "no such option: --agu")])
def test_override_values_may_be_negative_and_mistyped_options_are_named(tiny_aligned, tmp_path, extra, words):
    """`TRAIN.LR -1` was refused as "No such option: -1" instead of for its value."""
    res = CliRunner().invoke(app, ["train", "--data-dir", str(tiny_aligned), "--dataset", "utkface",
                                   "--checkpoint", str(tmp_path / "run"), *extra])
    assert res.exit_code == 2 and words in res.output, res.output
    assert not (tmp_path / "run").exists()


def test_a_refused_resume_writes_nothing_and_resumes_only_an_agecli_run(tiny_aligned, tmp_path):
    """A refused --resume had already rewritten the run's config.json; --resume into a
    folder agecli did not make replaced the user's files; other datasets were accepted
    and corrupted log.csv; the shipped model as --resume was a KeyError (issue 20, 4, 5, 8, 22)."""
    import shutil

    from agecli.infer.default_model import default_model_path

    ck = tmp_path / "run"
    assert train("train-ldl", tiny_aligned, "--checkpoint", ck).exit_code == 0
    before = {p.name: p.read_bytes() for p in ck.iterdir() if p.is_file()}
    two_sets = copy_set(tiny_aligned, tmp_path / "aaf_like", lambda df: df)
    for sets, extra, words in ((["utkface"], ["MODEL.ARCH", "tiny_age"], "arch="),
                               (["utkface"], ["MODEL.IMG_SIZE", "72"], "img_size="),
                               (["utkface", "utkface"], [], "dataset=")):
        dirs = [a for d in (tiny_aligned, two_sets)[:len(sets)] for a in ("--data-dir", str(d))]
        res = CliRunner().invoke(app, ["train-ldl", *dirs, "--dataset", ",".join(sets),
                                       "--resume", str(ck / "last.pth"), *SMALL, *extra])
        assert res.exit_code == 2 and words in res.stderr, (extra, res.output)
        assert {p.name: p.read_bytes() for p in ck.iterdir() if p.is_file()} == before
    foreign = tmp_path / "mine"
    foreign.mkdir()
    shutil.copy(ck / "last.pth", foreign / "last.pth")
    (foreign / "config.json").write_text('{"my": "settings"}')
    res = train("train-ldl", tiny_aligned, "--resume", foreign / "last.pth")
    assert res.exit_code == 2 and "no agecli run record" in res.stderr, res.output
    assert sorted(p.name for p in foreign.iterdir()) == ["config.json", "last.pth"]
    assert (foreign / "config.json").read_text() == '{"my": "settings"}'
    res = train("train-mt", tiny_aligned, "--resume", default_model_path().with_suffix(".pth"), small=False)
    assert res.exit_code == 2 and "--pretrained" in res.stderr and clean_exit(res), res.output


def test_training_with_an_unreadable_image_finishes_and_exits_1(tiny_aligned, tmp_path):
    """train skipped unreadable images with exit 0 (README: 1, some inputs failed)."""
    data = tmp_path / "set"
    shutil.copytree(tiny_aligned, data, ignore=shutil.ignore_patterns(".agecli_cache"))
    photo = pd.read_csv(data / "utkface_train_align.csv")["photo"].iloc[0]
    (data / photo).write_bytes(b"broken")
    res = train("train-ldl", data, "--checkpoint", tmp_path / "run")
    assert res.exit_code == 1 and photo in res.stderr and "could not be read" in res.stderr, res.output
    assert (tmp_path / "run" / "best.pth").is_file()


def test_the_run_folder_policy_lives_in_runs(tmp_path, monkeypatch):
    """Where a run writes and which torchrun rank records it: decided in runs.py, not the CLI."""
    from agecli.config import default_config
    from agecli.runs import choose_folder, records_run

    cfg = default_config()
    cfg["TRAIN"]["LOSS"] = "ldl"
    monkeypatch.chdir(tmp_path)
    first = choose_folder("utkface,aaf", cfg)
    assert first.path == Path("runs/utkface+aaf_ldl_efficientnet_lite0") and first.fresh and not first.moved
    (tmp_path / first.path).mkdir(parents=True)
    (tmp_path / first.path / "config.json").write_text("{}")
    second = choose_folder("utkface,aaf", cfg)
    assert second.moved and second.path.name == "utkface+aaf_ldl_efficientnet_lite0-2" and second.fresh
    assert choose_folder("utkface,aaf", cfg, exist_ok=True).path == first.path
    resumed = choose_folder("utkface", cfg, resume=first.path / "last.pth")
    assert resumed.path == first.path and not resumed.fresh and not resumed.moved
    monkeypatch.setenv("RANK", "1")  # a torchrun rank: every rank uses the folder as given, rank 0 records it
    assert choose_folder("utkface,aaf", cfg, multi_gpu=True).path == first.path
    assert not records_run(True) and records_run(False)
