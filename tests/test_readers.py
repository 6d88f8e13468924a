"""Every dataset reader on a small fixture tree: labels, paths, official splits, bad labels."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from agecli.data.readers import READERS, read_dataset
from agecli.data.records import hash_fold


def by_path(records) -> dict:
    return {r.path: r for r in records}


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_registry_modules_import():
    import importlib

    for name, module in READERS.items():
        assert hasattr(importlib.import_module(f"agecli.data.readers.{module}"), "read"), name
    with pytest.raises(ValueError, match="unknown dataset"):
        read_dataset("nope", ".")


# --- UTKFace -----------------------------------------------------------------

def test_utkface_names(tmp_path, jpeg):
    names = ["24_0_1_20170116220224657 .jpg.chip.jpg", "39_1_20170116174525125.jpg.chip.jpg",
             "55_0_0_20170116232725357jpg.chip.jpg", "30_1_3_20170119164745327.jpg.chip.jpg",
             "noage_0_1_20170116220224657.jpg.chip.jpg", "130_0_1_20170116220224657.jpg.chip.jpg"]
    for n in names:
        jpeg(tmp_path / n)
    recs = by_path(read_dataset("utkface", tmp_path))
    assert set(recs) == set(names)
    r = recs["24_0_1_20170116220224657 .jpg.chip.jpg"]
    assert (r.age, r.gender, r.race, r.error) == (24.0, 0, 1, None)
    r = recs["39_1_20170116174525125.jpg.chip.jpg"]  # race missing
    assert (r.age, r.gender, r.race, r.error) == (39.0, 1, None, None)
    r = recs["55_0_0_20170116232725357jpg.chip.jpg"]  # dot missing
    assert (r.age, r.gender, r.race, r.error) == (55.0, 0, 0, None)
    r = recs["30_1_3_20170119164745327.jpg.chip.jpg"]
    assert (r.age, r.gender, r.race, r.split, r.subject) == (30.0, 1, 3, None, None)
    for bad in ("noage_0_1_20170116220224657.jpg.chip.jpg", "130_0_1_20170116220224657.jpg.chip.jpg"):
        assert recs[bad].age is None and recs[bad].error.startswith("bad_label:")


def test_folder_reader_paths_are_relative_posix(tmp_path, jpeg):
    jpeg(tmp_path / "a b" / "ünï" / "31_1_2_x.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    recs = list(read_dataset("folder", tmp_path))
    assert [(r.path, r.age, r.gender, r.race) for r in recs] == [("a b/ünï/31_1_2_x.jpg", 31.0, 1, 2)]


# --- FG-NET ------------------------------------------------------------------

def test_fgnet(tmp_path, jpeg):
    for n in ["001A02.JPG", "001A43a.JPG", "078A11a.jpg", "082a05.jpeg", "1002A7B.PNG", "readme.jpg", "001AXX.JPG"]:
        jpeg(tmp_path / "images" / n)
    recs = by_path(read_dataset("fgnet", tmp_path))
    expect = {"images/001A02.JPG": ("001", 2.0), "images/001A43a.JPG": ("001", 43.0),
              "images/078A11a.jpg": ("078", 11.0), "images/082a05.jpeg": ("082", 5.0),
              "images/1002A7B.PNG": ("1002", 7.0)}
    for path, (subject, age) in expect.items():
        r = recs[path]
        assert (r.subject, r.age, r.error, r.split, r.gender) == (subject, age, None, None, None)
    for bad in ("images/readme.jpg", "images/001AXX.JPG"):
        assert recs[bad].error.startswith("bad_label:") and recs[bad].age is None


# --- MegaAge -----------------------------------------------------------------

def _megaage(root: Path, jpeg, train: list[tuple[str, str]], test: list[tuple[str, str]]) -> None:
    (root / "list").mkdir(parents=True)
    for part, rows in (("train", train), ("test", test)):
        (root / "list" / f"{part}_name.txt").write_text("".join(f"{n}\n" for n, _ in rows))
        (root / "list" / f"{part}_age.txt").write_text("".join(f"{a}\n" for _, a in rows))
        for n, _ in rows:
            jpeg(root / part / n)


@pytest.mark.parametrize("name", ["megaage", "megaage_asian"])
def test_megaage_official_split(tmp_path, jpeg, name):
    train = [(f"{i}.jpg", str(10 + i)) for i in range(1, 41)] + [("bad age.jpg", "x")]
    test = [("1.jpg", "5"), ("2.jpg", "70")]
    _megaage(tmp_path, jpeg, train, test)
    recs = list(read_dataset(name, tmp_path))
    assert len(recs) == len(train) + len(test)
    got = by_path(recs)
    assert got["test/1.jpg"].split == "test" and got["test/1.jpg"].age == 5.0
    assert got["test/2.jpg"].age == 70.0
    for n, a in train:
        r = got[f"train/{n}"]
        assert r.split == ("valid" if hash_fold(n) in (8, 9) else "train")
        if n != "bad age.jpg":
            assert r.age == float(a) and r.error is None
    assert got["train/bad age.jpg"].error.startswith("bad_label:")
    assert {"train", "valid"} <= {r.split for r in recs if r.path.startswith("train/")}


def test_megaage_mismatched_lists(tmp_path, jpeg):
    _megaage(tmp_path, jpeg, [("1.jpg", "3"), ("2.jpg", "4")], [("1.jpg", "5")])
    (tmp_path / "list" / "train_age.txt").write_text("3\n")
    with pytest.raises(ValueError, match="train_name.txt has 2 lines"):
        list(read_dataset("megaage", tmp_path))


def test_megaage_missing_list(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        list(read_dataset("megaage", tmp_path))


# --- MORPH -------------------------------------------------------------------

def test_morph(tmp_path, jpeg):
    header = ["id_num", "picture_num", "dob", "doa", "race", "gender", "facial_hair", "age", "age_diff",
              "glasses", "photo"]
    rows = [["003129", "0", "x", "x", "B", "M", "0", "21", "0", "0", "Album2/003129_00M21.JPG"],
            ["003129", "1", "x", "x", "B", "M", "0", "23", "0", "0", "Album2/003129_01M23.JPG"],
            ["120444", "0", "x", "x", "W", "F", "0", "34", "0", "0", "Album2/120444_00F34.JPG"],
            ["200000", "0", "x", "x", "A", "F", "0", "40", "0", "0", "Album2/200000_00F40.JPG"],
            ["300000", "0", "x", "x", "H", "M", "0", "50", "0", "0", "Album2/300000_00M50.JPG"],
            ["400000", "0", "x", "x", "O", "M", "0", "?", "0", "0", "Album2/400000_00M00.JPG"],
            ["500000", "0", "x", "x", "W", "X", "0", "30", "0", "0", "Album2/500000_00X30.JPG"]]
    write_csv(tmp_path / "morph_2008_nonCommercial.csv", header, rows)
    recs = by_path(read_dataset("morph", tmp_path))
    assert len(recs) == 7
    r = recs["Album2/003129_00M21.JPG"]
    assert (r.age, r.gender, r.race, r.subject, r.split, r.error) == (21.0, 0, 1, "003129", None, None)
    assert recs["Album2/003129_01M23.JPG"].subject == "003129"
    assert (recs["Album2/120444_00F34.JPG"].gender, recs["Album2/120444_00F34.JPG"].race) == (1, 0)
    assert recs["Album2/200000_00F40.JPG"].race == 2
    assert recs["Album2/300000_00M50.JPG"].race == 4
    assert recs["Album2/400000_00M00.JPG"].error.startswith("bad_label:")
    assert recs["Album2/500000_00X30.JPG"].error.startswith("bad_label:")


def test_morph_other_csv_name_and_file_column(tmp_path):
    write_csv(tmp_path / "labels morph.csv", ["File", "Age", "Gender"], [["a/1.jpg", "19", "F"]])
    (tmp_path / "unrelated.csv").write_text("x,y\n1,2\n")
    [r] = read_dataset("morph", tmp_path)
    assert (r.path, r.age, r.gender, r.race, r.subject) == ("a/1.jpg", 19.0, 1, None, None)


def test_morph_no_csv(tmp_path):
    with pytest.raises(ValueError, match="MORPH"):
        list(read_dataset("morph", tmp_path))


# --- AAF ---------------------------------------------------------------------

def _aaf_images(root: Path, jpeg, names: list[str], folder: str = "aglined faces") -> None:
    for n in names:
        jpeg(root / folder / n)


def test_aaf_with_image_sets(tmp_path, jpeg):
    train = [f"{i:05d}A{20 + i % 50:02d}.jpg" for i in range(0, 40)]
    val = ["07380A61.jpg", "07381A08.jpg", "13321A80.jpg"]
    _aaf_images(tmp_path, jpeg, train + val + ["bad name.jpg"])
    jpeg(tmp_path / "original images" / "00000A20.jpg")  # ignored: aligned faces preferred
    (tmp_path / "image sets").mkdir()
    (tmp_path / "image sets" / "train.txt").write_text("".join(f"{n} 1\n" for n in train))
    (tmp_path / "image sets" / "val.txt").write_text("".join(f"{n} {int(n[:5]) <= 7380}\n" for n in val))
    recs = by_path(read_dataset("aaf", tmp_path))
    assert len(recs) == len(train) + len(val) + 1
    for n in train:
        r = recs[f"aglined faces/{n}"]
        assert r.split == ("valid" if hash_fold(n) >= 8 else "train")
        # no ethnicity label: a head must not learn the collection as a race
        assert (r.age, r.gender, r.race, r.subject) == (float(n[6:8]), 1, None, None)
    assert {recs[f"aglined faces/{n}"].split for n in train} == {"train", "valid"}
    r = recs["aglined faces/07380A61.jpg"]
    assert (r.split, r.gender, r.age) == ("test", 1, 61.0)
    r = recs["aglined faces/07381A08.jpg"]
    assert (r.split, r.gender, r.age) == ("test", 0, 8.0)
    assert recs["aglined faces/13321A80.jpg"].gender == 0
    assert recs["aglined faces/bad name.jpg"].error.startswith("bad_label:")


def test_aaf_without_image_sets(tmp_path, jpeg):
    _aaf_images(tmp_path, jpeg, ["00010A05.jpg", "09000A33.jpg"], folder="original images")
    recs = by_path(read_dataset("aaf", tmp_path))
    assert set(recs) == {"original images/00010A05.jpg", "original images/09000A33.jpg"}
    assert all(r.split is None and r.race is None for r in recs.values())
    assert recs["original images/09000A33.jpg"].gender == 0


# --- AFAD --------------------------------------------------------------------

def test_afad(tmp_path, jpeg):
    jpeg(tmp_path / "AFAD-Full" / "15" / "111" / "a.jpg")
    jpeg(tmp_path / "AFAD-Full" / "40" / "112" / "b c.jpg")
    jpeg(tmp_path / "AFAD-Full" / "40" / "113" / "d.jpg")
    jpeg(tmp_path / "AFAD-Full" / "old" / "111" / "e.jpg")
    jpeg(tmp_path / "loose.jpg")
    recs = by_path(read_dataset("afad", tmp_path))
    r = recs["AFAD-Full/15/111/a.jpg"]
    assert (r.age, r.gender, r.race, r.split, r.error) == (15.0, 0, 2, None, None)
    r = recs["AFAD-Full/40/112/b c.jpg"]
    assert (r.age, r.gender, r.race) == (40.0, 1, 2)
    for bad in ("AFAD-Full/40/113/d.jpg", "AFAD-Full/old/111/e.jpg", "loose.jpg"):
        assert recs[bad].error.startswith("bad_label:") and recs[bad].age is None


# --- APPA-REAL ---------------------------------------------------------------

def test_appa(tmp_path, jpeg):
    header = ["file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age"]
    rows = {"train": [["000000.jpg", "36", "5.0", "1.1", "4"], ["000001.jpg", "63", "20.3", "4.0", "18"]],
            "valid": [["004113.jpg", "38", "30.2", "3.3", "27"]],
            "test": [["005613.jpg", "40", "60.1", "5.0", "62"], ["005614.jpg", "40", "60.1", "5.0", "n/a"]]}
    for split, rs in rows.items():
        write_csv(tmp_path / f"gt_avg_{split}.csv", header, rs)
        for r in rs:
            jpeg(tmp_path / split / r[0])
            jpeg(tmp_path / split / (r[0] + "_face.jpg"))
    write_csv(tmp_path / "allcategories_train.csv", ["file", "gender", "race", "makeup", "time", "happiness"],
              [["000000.jpg", "female", "asian", "no", "x", "happy"], ["000001.jpg", "male", "afroamerican", "", "", ""]])
    recs = by_path(read_dataset("appa", tmp_path))
    assert set(recs) == {"train/000000.jpg", "train/000001.jpg", "valid/004113.jpg", "test/005613.jpg",
                         "test/005614.jpg"}
    r = recs["train/000000.jpg"]
    assert (r.age, r.split, r.gender, r.race) == (4.0, "train", 1, 2)  # real age, not apparent
    assert (recs["train/000001.jpg"].gender, recs["train/000001.jpg"].race) == (0, 1)
    r = recs["valid/004113.jpg"]
    assert (r.age, r.split, r.gender, r.race) == (27.0, "valid", None, None)
    assert (recs["test/005613.jpg"].age, recs["test/005613.jpg"].split) == (62.0, "test")
    assert recs["test/005614.jpg"].error.startswith("bad_label:")


def test_appa_missing(tmp_path):
    with pytest.raises(ValueError, match="APPA"):
        list(read_dataset("appa", tmp_path))


# --- generic CSV -------------------------------------------------------------

def test_csv_list(tmp_path, jpeg):
    write_csv(tmp_path / "labels.csv", ["Path", "age", "gender", "race", "subject", "split"], [
        ["imgs/a.jpg", "30", "m", "white", "p1", "train"],
        ["imgs/b b.jpg", "31.5", "Female", "3", "p1", "val"],
        ["./imgs/日本.jpg", "7", "1", "Others", "p2", "test"],
        ["imgs/c.jpg", "", "", "", "", ""],
        ["imgs/d.jpg", "40", "x", "", "", ""],
        ["imgs/e.jpg", "40", "", "martian", "", ""],
        ["imgs/f.jpg", "40", "", "", "", "holdout"],
        ["", "40", "", "", "", ""],
        ["imgs/g.jpg", "-3", "", "", "", ""],
    ])
    (tmp_path / "other.csv").write_text("path,age\nz.jpg,1\n")  # labels.csv wins
    recs = list(read_dataset("csv", tmp_path))
    assert len(recs) == 9
    got = by_path(recs)
    r = got["imgs/a.jpg"]
    assert (r.age, r.gender, r.race, r.subject, r.split, r.error) == (30.0, 0, 0, "p1", "train", None)
    r = got["imgs/b b.jpg"]
    assert (r.age, r.gender, r.race, r.split) == (31.5, 1, 3, "valid")
    r = got["imgs/日本.jpg"]
    assert (r.age, r.gender, r.race, r.subject, r.split) == (7.0, 1, 4, "p2", "test")
    for bad in ("imgs/c.jpg", "imgs/d.jpg", "imgs/e.jpg", "imgs/f.jpg", "labels.csv:9", "imgs/g.jpg"):
        assert got[bad].error.startswith("bad_label:"), bad


def test_csv_single_other_name_and_minimal_columns(tmp_path):
    write_csv(tmp_path / "mine.csv", ["photo", "age"], [["x.png", "3"]])
    [r] = read_dataset("csv", tmp_path)
    assert (r.path, r.age, r.gender, r.race, r.subject, r.split) == ("x.png", 3.0, None, None, None, None)


@pytest.mark.parametrize("files", [{}, {"a.csv": "path,age\n", "b.csv": "path,age\n"}, {"a.csv": "name,years\nx,1\n"}])
def test_csv_setup_errors(tmp_path, files):
    for n, text in files.items():
        (tmp_path / n).write_text(text)
    with pytest.raises(ValueError):
        list(read_dataset("csv", tmp_path))


def test_csv_readers_skip_prepare_outputs(tmp_path):
    # prepare writes its CSVs into the data dir by default; a re-run must still find the labels
    write_csv(tmp_path / "faces.csv", ["photo", "age"], [["a.jpg", "3"]])
    for f in ("faces_train_align.csv", "faces_rejected.csv", "faces_partial.csv"):
        write_csv(tmp_path / f, ["photo", "age", "deg"], [["a.jpg", "3", "0"]])
    assert [r.path for r in read_dataset("csv", tmp_path)] == ["a.jpg"]
    assert [r.path for r in read_dataset("morph", tmp_path)] == ["a.jpg"]
