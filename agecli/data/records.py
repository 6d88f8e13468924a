"""Record (one labelled image), the aligned-CSV schema, and the split rules."""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_bytes
from ..errors import DataError
from ..vocab import GENDERS, MAX_AGE, RACES  # the label vocabularies (also importable from here)

ALIGN_COLUMNS = ["photo", "age", "deg", "box1", "box2", "box3", "box4"]
OPTIONAL_COLUMNS = ["gender", "race", "subject"]
# the detector's five landmarks (x, y each, original image pixels): what a template crop is cut from
LANDMARK_COLUMNS = [f"lm{i}" for i in range(1, 11)]


@dataclass
class Record:
    """One labelled image. `path` is relative to the dataset root; labels may be missing."""

    path: str
    age: float | None
    gender: int | None = None  # 0 male, 1 female
    race: int | None = None  # index into RACES
    subject: str | None = None
    split: str | None = None  # the dataset's official split, when it has one
    error: str | None = None  # why the label could not be read


class LabelError(DataError):
    """A label that cannot be read from a file name or list."""


def hash_fold(file_name: str, folds: int = 10) -> int:
    """The benchmark fold of a file: md5 of the bare file name, modulo `folds`."""
    return int(hashlib.md5(file_name.encode()).hexdigest(), 16) % folds


def hash_split(file_name: str) -> str:
    """Folds 0-5 train, 6-7 valid, 8-9 test (the 60/20/20 benchmark protocol)."""
    fold = hash_fold(os.path.basename(file_name))
    return "train" if fold <= 5 else "valid" if fold <= 7 else "test"


def subject_folds(subjects: list[str], k: int) -> dict[str, int]:
    """Subject-disjoint folds: every image of one person lands in the same fold."""
    ordered = sorted(set(subjects), key=lambda s: (hash_fold(s, 1 << 30), s))
    return {s: i % k for i, s in enumerate(ordered)}


def csv_name(dataset: str, split: str) -> str:
    return f"{dataset}_{split}_align.csv"


# What prepare writes next to (by default: among) the images; readers and re-runs skip these.
OUTPUT_SUFFIXES = ("_align.csv", "_rejected.csv", "_partial.csv", "_partial.json", "_report.md", "_image_root.txt",
                   "_age_hist.png")


def is_prepare_output(file_name: str) -> bool:
    """True for a file name `prepare` writes (aligned CSVs, rejected list, report, histogram)."""
    return os.path.basename(file_name).endswith(OUTPUT_SUFFIXES)


def atomic_write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write a CSV to a temp file and rename it: never a half-written file."""
    write_bytes(path, df.to_csv(index=False).encode("utf-8"))


NUMERIC_COLUMNS = ("age", "deg", "box1", "box2", "box3", "box4")


def _check_field_counts(path: str | Path, n: int) -> None:
    """Every row has the header's number of fields: with one more, pandas takes the first
    as an index and shifts the rest left (a `deg` read as the age, in silence)."""
    with open(path, encoding="utf-8", newline="") as fh:
        for k, row in enumerate(csv.reader(fh), start=1):
            if row and len(row) != n:
                raise DataError(f"{path}: row {k}: {len(row)} fields where the header has {n} "
                                 "(a comma inside a value must be quoted)")


def _check_label_codes(path: str | Path, values: pd.Series, col: str, names: tuple[str, ...]) -> None:
    """A gender or race column as prepare writes it: empty or a code 0..len(names)-1."""
    codes = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & (codes.isna() | ~codes.isin(range(len(names))))
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        choices = ", ".join(f"{k} = {name}" for k, name in enumerate(names))
        v = values.iloc[i]
        shown = repr(v) if isinstance(v, str) else f"{float(v):g}"
        raise DataError(f"{path}: row {i + 2}: {col} {shown} is not a code ({choices}, or empty) "
                         f"({int(bad.sum())} such rows)")


def read_align_csv(path: str | Path) -> pd.DataFrame:
    """Read and validate an aligned CSV (it may have been edited by hand); raises
    ValueError naming the file, the row (as a spreadsheet numbers it) and the value."""
    try:
        with open(path, encoding="utf-8") as fh:
            header = [h.strip() for h in fh.readline().rstrip("\r\n").split(",")]
        _check_field_counts(path, len(header))
        df = pd.read_csv(path, dtype={"photo": str, "subject": str}, keep_default_na=False, na_values=[""])
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (offset {e.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a readable CSV ({str(e).strip().splitlines()[0]})") from None
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise DataError(f"{path}: column {twice[0]!r} appears {header.count(twice[0])} times in the header")
    missing = [c for c in ALIGN_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; expected {ALIGN_COLUMNS}")
    for col in NUMERIC_COLUMNS:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise DataError(f"{path}: row {i + 2}: {col} {df[col].iloc[i]!r} is not a number "
                             f"({int(bad.sum())} such rows)")
        df[col] = values.astype(float)
    for col, names in (("gender", GENDERS), ("race", RACES)):
        if col in df:
            _check_label_codes(path, df[col], col, names)
    bad = (df["age"] < 0) | (df["age"] > MAX_AGE)
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        raise DataError(f"{path}: row {i + 2}: age {df['age'].iloc[i]:g} is outside 0-{MAX_AGE} "
                         f"({int(bad.sum())} such rows)")
    empty = df["photo"].isna() | (df["photo"].astype(str).str.strip() == "")
    if empty.any():
        i = int(np.argmax(empty.to_numpy()))
        raise DataError(f"{path}: row {i + 2}: the photo cell is empty ({int(empty.sum())} such rows)")
    flat = (df["box3"] <= df["box1"]) | (df["box4"] <= df["box2"])
    if flat.any():
        i = int(np.argmax(flat.to_numpy()))
        raise DataError(f"{path}: row {i + 2}: the face box ({df['box1'].iloc[i]:g}, {df['box2'].iloc[i]:g}, "
                         f"{df['box3'].iloc[i]:g}, {df['box4'].iloc[i]:g}) has no width or height "
                         f"({int(flat.sum())} such rows)")
    dup = df["photo"].duplicated(keep=False)
    if dup.any():
        rows = df.index[dup & (df["photo"] == df["photo"][dup].iloc[0])].tolist()
        raise DataError(f"{path}: photo {df['photo'][dup].iloc[0]!r} appears in rows "
                         f"{', '.join(str(r + 2) for r in rows)}; each photo once")
    return df


def image_root_file(csv_dir: str | Path, dataset: str) -> Path:
    return Path(csv_dir) / f"{dataset}_image_root.txt"


def resolve_image_root(csv_dir: str | Path, dataset: str) -> Path:
    """Where the photo paths of the aligned CSVs are relative to: the root prepare
    recorded, or the CSV folder itself (the reference layout)."""
    f = image_root_file(csv_dir, dataset)
    if f.exists():
        return Path(f.read_text(encoding="utf-8").rstrip("\r\n"))
    return Path(csv_dir)
