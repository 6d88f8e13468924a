"""The benchmark hash split and subject-disjoint folds."""
from __future__ import annotations

import pandas as pd
import pytest

from agecli.data.prepare import assign_splits
from agecli.data.records import hash_fold, hash_split, subject_folds

NAMES = ["24_0_1_20170116220224657 .jpg.chip.jpg", "39_1_20170116174525125.jpg.chip.jpg",
         "55_0_0_20170116232725357jpg.chip.jpg", "001A02.JPG", "日本語.jpg"] + [f"{i}_0_0_x.jpg" for i in range(300)]

# Known (file name, fold) pairs of the benchmark rule, written down once, not recomputed
# here: a change of hash, encoding or modulus breaks them.
KNOWN_FOLDS = {
    "24_0_1_20170116220224657 .jpg.chip.jpg": 5, "39_1_20170116174525125.jpg.chip.jpg": 9,
    "55_0_0_20170116232725357jpg.chip.jpg": 2, "001A02.JPG": 2, "日本語.jpg": 0,
    "100_0_0_20170112213500903.jpg.chip.jpg": 3, "0_0_0_x.jpg": 2, "1_0_0_x.jpg": 6, "2_0_0_x.jpg": 7,
    "6_0_0_x.jpg": 8, "8_0_0_x.jpg": 9, "12_0_0_x.jpg": 0,
}
SPLIT_OF_FOLD = ["train"] * 6 + ["valid"] * 2 + ["test"] * 2


def test_hash_split_matches_known_pairs():
    for name, fold in KNOWN_FOLDS.items():
        assert hash_fold(name) == fold, name
        assert hash_split(name) == SPLIT_OF_FOLD[fold], name


def test_hash_split_uses_the_bare_file_name():
    for name, fold in KNOWN_FOLDS.items():
        assert hash_split(f"some dir/sub/{name}") == SPLIT_OF_FOLD[fold]


def test_hash_split_proportions():
    names = [f"{i}_1_2_2017{i:09d}.jpg.chip.jpg" for i in range(5000)]
    counts = pd.Series([hash_split(n) for n in names]).value_counts(normalize=True)
    assert abs(counts["train"] - 0.6) < 0.03
    assert abs(counts["valid"] - 0.2) < 0.03
    assert abs(counts["test"] - 0.2) < 0.03


def test_assign_splits_hash_and_official():
    df = pd.DataFrame({"photo": NAMES, "age": 30.0, "split": None, "subject": None})
    parts = assign_splits(df, "auto", 5)
    assert set(parts) == {"train", "valid", "test"}
    assert sum(len(p) for p in parts.values()) == len(df)
    for split, frame in parts.items():
        assert all(SPLIT_OF_FOLD[KNOWN_FOLDS[p]] == split for p in frame["photo"] if p in KNOWN_FOLDS)
    official = df.assign(split=["train", "valid", "test"] * (len(df) // 3) + ["train"] * (len(df) % 3))
    parts = assign_splits(official, "auto", 5)
    for split, frame in parts.items():
        assert (frame["split"] == split).all()
    with pytest.raises(ValueError):
        assign_splits(df, "official", 5)


@pytest.mark.parametrize("k", [2, 5, 10, 82])
def test_subject_folds_disjoint_and_complete(k):
    subjects = [f"{i:03d}" for i in range(1, 83)]
    images = [s for s in subjects for _ in range(int(s) % 4 + 1)]
    folds = subject_folds(images, k)
    assert set(folds) == set(subjects)
    assert set(folds.values()) == set(range(k))
    sizes = pd.Series(folds).value_counts()
    assert sizes.max() - sizes.min() <= 1  # subjects are dealt round-robin
    assert subject_folds(list(reversed(images)), k) == folds  # order of input does not matter

    df = pd.DataFrame({"photo": [f"{s}A{j:02d}.JPG" for j, s in enumerate(images)], "age": 1.0,
                       "subject": images, "split": None})
    parts = assign_splits(df, "subject", k)
    assert len(parts) == k
    seen: dict[str, str] = {}
    for name, frame in parts.items():
        for s in frame["subject"]:
            assert seen.setdefault(s, name) == name  # one person, one fold
    assert sum(len(p) for p in parts.values()) == len(df)
    assert set(seen) == set(subjects)


def test_auto_split_with_subjects_keeps_each_person_in_one_split():
    """FG-NET, MORPH, a CSV with `subject`: the rule applies to the person, not the name."""
    names = [f"{i}_0_0_x.jpg" for i in range(20)]
    df = pd.DataFrame({"photo": names, "age": 30.0, "split": None, "subject": ["1_0_0_x.jpg"] * 10 + ["6_0_0_x.jpg"] * 10})
    parts = assign_splits(df, "auto", 5)
    assert sorted(parts["valid"]["photo"]) == sorted(names[:10])  # person "1_0_0_x.jpg": fold 6
    assert sorted(parts["test"]["photo"]) == sorted(names[10:])  # person "6_0_0_x.jpg": fold 8
    assert parts["train"].empty


def test_exact_duplicate_images_stay_in_one_split():
    """The same photo under two names (same md5): both follow the smaller name's split."""
    df = pd.DataFrame({"photo": ["1_0_0_x.jpg", "6_0_0_x.jpg", "12_0_0_x.jpg"], "age": 30.0, "split": None,
                       "subject": None, "md5": ["aa", "aa", "bb"]})
    parts = assign_splits(df, "hash", 5)
    assert sorted(parts["valid"]["photo"]) == ["1_0_0_x.jpg", "6_0_0_x.jpg"]  # not test for 6_0_0_x.jpg
    assert list(parts["train"]["photo"]) == ["12_0_0_x.jpg"]


def test_report_counts_identical_images_and_what_a_split_by_name_leaks():
    """Two names of one image, both in test: by name one of them is a training file, so a
    model trained on a split by name alone has seen both test photos (itself or a copy)."""
    from agecli.data.report import duplicate_lines

    test = pd.DataFrame({"photo": ["12_0_0_x.jpg", "6_0_0_x.jpg", "7_0_0_y.jpg"], "age": 30.0,
                         "md5": ["aa", "aa", "cc"]})
    train = pd.DataFrame({"photo": ["1_0_0_x.jpg"], "age": 30.0, "md5": ["bb"]})
    lines = duplicate_lines({"train": train, "valid": train.iloc[:0], "test": test})
    assert "1 groups, 2 files" in lines[1] and "across the splits written here: 0" in lines[1]
    assert "1 groups would straddle splits" in lines[2] and "has seen 2 of this test split" in lines[2]
    assert duplicate_lines({"train": train, "test": test.iloc[2:]}) == []
