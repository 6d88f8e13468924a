"""A generic labelled CSV (dataset name `csv`).

The CSV is `labels.csv` in the root when present, else the only *.csv there. Columns
(any case; only a path and `age` are required):

- `path` (or `photo`, `file`, `filename`): image path relative to the root
- `age`: age in years (0-120)
- `gender`: 0/1, m/f or male/female
- `race`: 0-4 or white/black/asian/indian/others
- `subject`: the person (for `--split subject`)
- `split`: train/valid/test (val, validation also accepted); used when every row has one

A row with an unreadable value becomes a record with `error` (prepare rejects it and
lists it in `<name>_rejected.csv`).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..records import LabelError, Record, is_prepare_output
from ._labels import clean_path, csv_columns, parse_age, parse_gender, parse_race, parse_split, pick, read_csv_rows

PATH_COLUMNS = ("path", "photo", "file", "filename")


def find_csv(root: Path) -> Path:
    if (root / "labels.csv").is_file():
        return root / "labels.csv"
    found = [p for p in sorted(root.glob("*.csv")) if not is_prepare_output(p.name)]
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise ValueError(f"csv: expected labels.csv or a single *.csv in {root}, found {names}")
    return found[0]


def parse_row(row: dict[str, str], where: str) -> Record:
    path = clean_path(pick(row, PATH_COLUMNS) or "")
    rec = Record(path=path or where, age=None)
    rec.subject = (row.get("subject") or "").strip() or None
    try:
        if not path:
            raise LabelError("bad_label: empty path")
        rec.age = parse_age(row.get("age", ""))
        rec.gender = parse_gender(row.get("gender"))
        rec.race = parse_race(row.get("race"))
        rec.split = parse_split(row.get("split"))
    except LabelError as e:
        rec.error = str(e)
    return rec


def read(root: Path) -> Iterator[Record]:
    f = find_csv(root)
    cols = csv_columns(f)
    if "age" not in cols or not any(c in cols for c in PATH_COLUMNS):
        raise ValueError(f"{f}: needs a path (or photo/file/filename) and an age column; has {cols}")
    for i, row in enumerate(read_csv_rows(f), 2):
        yield parse_row(row, f"{f.name}:{i}")
