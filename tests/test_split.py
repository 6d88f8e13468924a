"""The benchmark hash split and subject-disjoint folds."""
from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from agecli.data.prepare import assign_splits
from agecli.data.records import hash_fold, hash_split, subject_folds

NAMES = ["24_0_1_20170116220224657 .jpg.chip.jpg", "39_1_20170116174525125.jpg.chip.jpg",
         "55_0_0_20170116232725357jpg.chip.jpg", "001A02.JPG", "日本語.jpg"] + [f"{i}_0_0_x.jpg" for i in range(300)]


def reference_split(name: str) -> str:
    fold = int(hashlib.md5(name.encode()).hexdigest(), 16) % 10
    return "train" if fold <= 5 else "valid" if fold <= 7 else "test"


def test_hash_split_matches_the_rule():
    for name in NAMES:
        assert hash_fold(name) == int(hashlib.md5(name.encode()).hexdigest(), 16) % 10
        assert hash_split(name) == reference_split(name)


def test_hash_split_uses_the_bare_file_name():
    for name in NAMES[:20]:
        assert hash_split(f"some dir/sub/{name}") == reference_split(name)


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
        assert all(reference_split(p) == split for p in frame["photo"])
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
