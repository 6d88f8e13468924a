"""MORPH Album 2: one CSV of labels in the root.

The CSV is `morph_2008_nonCommercial.csv` when present, else the one *.csv in the root
that has a path and an age column. Accepted columns (any case):

- `photo` or `file` (or `filename`, `path`): image path relative to the root
- `age`: age in years
- `gender`: M / F (also male/female, 0/1); optional
- `race`: W white (0), B black (1), A asian (2); H, O and any other code -> others (4);
  optional
- `id_num`: the person, used as `subject`; optional

No official split: use `--split subject` so no person is in two folds.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ...errors import DataError
from ..records import Record, is_prepare_output
from ._labels import csv_columns, read_labelled_csv

PATH_COLUMNS = ("photo", "file", "filename", "path")
RACE_CODES = {"w": 0, "b": 1, "a": 2}
PREFERRED = "morph_2008_nonCommercial.csv"


def find_csv(root: Path) -> Path:
    if (root / PREFERRED).is_file():
        return root / PREFERRED
    usable = [p for p in sorted(root.glob("*.csv")) if not is_prepare_output(p.name)
              and "age" in (cols := csv_columns(p)) and any(c in cols for c in PATH_COLUMNS)]
    if len(usable) != 1:
        found = ", ".join(p.name for p in usable) or "none"
        raise DataError(f"MORPH: expected one CSV with photo/file and age columns in {root}, found {found}")
    return usable[0]


def _fill(rec: Record, row: dict[str, str]) -> None:
    race = (row.get("race") or "").strip().lower()
    rec.race = RACE_CODES.get(race, 4) if race else None


def read(root: Path) -> Iterator[Record]:
    return read_labelled_csv(find_csv(root), PATH_COLUMNS, "id_num", "a photo (or file)", _fill)
