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

from ...errors import DataError
from ..records import Record, is_prepare_output
from ._labels import parse_race, parse_split, read_labelled_csv

PATH_COLUMNS = ("path", "photo", "file", "filename")


def find_csv(root: Path) -> Path:
    if (root / "labels.csv").is_file():
        return root / "labels.csv"
    found = [p for p in sorted(root.glob("*.csv")) if not is_prepare_output(p.name)]
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise DataError(f"csv: expected labels.csv or a single *.csv in {root}, found {names}")
    return found[0]


def _fill(rec: Record, row: dict[str, str]) -> None:
    rec.race = parse_race(row.get("race"))
    rec.split = parse_split(row.get("split"))


def read(root: Path) -> Iterator[Record]:
    return read_labelled_csv(find_csv(root), PATH_COLUMNS, "subject", "a path (or photo/file/filename)", _fill)
