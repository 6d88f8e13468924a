"""Helpers the readers share: label parsing (raising LabelError) and CSV discovery."""
from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from pathlib import Path

from ...vocab import MAX_AGE, RACES, SPLITS
from ...errors import DataError
from ..records import LabelError, Record, hash_fold

_GENDERS = {"0": 0, "m": 0, "male": 0, "man": 0, "1": 1, "f": 1, "female": 1, "woman": 1}
_SPLIT_ALIASES = {"val": "valid", "validation": "valid", "dev": "valid"}


def parse_age(text) -> float:
    """An age in years, 0..MAX_AGE; LabelError for anything else."""
    try:
        age = float(str(text).strip())
    except ValueError:
        raise LabelError(f"bad_label: age {str(text).strip()!r} is not a number") from None
    if not math.isfinite(age) or not 0 <= age <= MAX_AGE:
        raise LabelError(f"bad_label: age {age:g} out of range 0-{MAX_AGE}")
    return age


def parse_gender(text) -> int | None:
    """0 male / 1 female from 0/1, m/f, male/female (any case); empty -> None."""
    t = str(text).strip().lower() if text is not None else ""
    if t in ("", "nan", "none", "na"):
        return None
    if t in ("0.0", "1.0"):
        t = t[0]
    if t not in _GENDERS:
        raise LabelError(f"bad_label: gender {t!r} (expected 0/1, m/f, male/female)")
    return _GENDERS[t]


def parse_race(text) -> int | None:
    """Index into RACES from 0-4 or white/black/asian/indian/others; empty -> None."""
    t = str(text).strip().lower() if text is not None else ""
    if t in ("", "nan", "none", "na"):
        return None
    if t in ("0", "1", "2", "3", "4", "0.0", "1.0", "2.0", "3.0", "4.0"):
        return int(float(t))
    if t == "other":
        t = "others"
    if t not in RACES:
        raise LabelError(f"bad_label: race {t!r} (expected 0-4 or {'/'.join(RACES)})")
    return RACES.index(t)


def parse_split(text) -> str | None:
    t = str(text).strip().lower() if text is not None else ""
    if t in ("", "nan", "none"):
        return None
    t = _SPLIT_ALIASES.get(t, t)
    if t not in SPLITS:
        raise LabelError(f"bad_label: split {t!r} (expected {'/'.join(SPLITS)})")
    return t


def train_or_valid(file_name: str) -> str:
    """Split of an image from an official train list that has no validation list:
    hash folds 8-9 of the bare file name become 'valid', the rest 'train'."""
    return "valid" if hash_fold(Path(file_name).name) >= 8 else "train"


def clean_path(text: str) -> str:
    """A path from a list or CSV as a posix path relative to the root."""
    p = str(text).strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV as dicts with lower-case, stripped column names (BOM tolerated);
    ValueError naming the file for a column given twice or text that is not UTF-8."""
    csv_columns(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [{k.strip().lower(): (v or "") for k, v in row.items() if isinstance(k, str)}
                    for row in csv.DictReader(fh)]
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#x} at offset {e.start}); "
                         "save it as UTF-8") from None


def csv_columns(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#x} at offset {e.start}); "
                         "save it as UTF-8") from None
    cols = [h.strip().lower() for h in header]
    twice = sorted({c for c in cols if c and cols.count(c) > 1})
    if twice:
        raise DataError(f"{path}: column {twice[0]!r} appears {cols.count(twice[0])} times in the header")
    return cols


def pick(row: dict[str, str], names: tuple[str, ...]) -> str | None:
    """The value of the first of `names` that is a column of `row`."""
    for n in names:
        if n in row:
            return row[n]
    return None


def read_labelled_csv(path: Path, path_columns: tuple[str, ...], subject_column: str, what: str,
                      fill: Callable[[Record, dict[str, str]], None]) -> Iterator[Record]:
    """One record per row of a CSV with an image path and an age: the path, subject,
    age and gender are read here, the reader's own columns by `fill`. A row whose values do
    not parse becomes a record with `error` (prepare rejects it and lists it)."""
    cols = csv_columns(path)
    if "age" not in cols or not any(c in cols for c in path_columns):
        raise DataError(f"{path}: needs {what} and an age column; has {cols}")
    for i, row in enumerate(read_csv_rows(path), 2):
        image = clean_path(pick(row, path_columns) or "")
        rec = Record(path=image or f"{path.name}:{i}", age=None)
        rec.subject = (row.get(subject_column) or "").strip() or None
        try:
            if not image:
                raise LabelError("bad_label: empty image path")
            rec.age = parse_age(row.get("age", ""))
            rec.gender = parse_gender(row.get("gender"))
            fill(rec, row)
        except LabelError as e:
            rec.error = str(e)
        yield rec
