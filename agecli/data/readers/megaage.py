"""MegaAge / MegaAge-Asian: name and age lists with an official train/test split.

Layout::

    root/list/train_name.txt  root/list/train_age.txt   (one name / one age per line,
    root/list/test_name.txt   root/list/test_age.txt     same order)
    root/train/<name>         root/test/<name>

The test list is the 'test' split. The set has no validation list, so 'valid' is
taken from the train list: the images whose hash fold (`records.hash_fold` of the
bare file name) is 8 or 9; the rest are 'train'. Lists of different lengths (or a
missing list) are a broken dataset and raise DataError (a ValueError); a non-numeric age gives a
record with `error`.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ...errors import DataError
from ..records import LabelError, Record
from ._labels import parse_age, train_or_valid

METRIC = "ca3"  # MegaAge results are quoted as CA(3): best.pth is chosen on it (TRAIN.BEST_METRIC auto)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"MegaAge list {path} is missing (expected list/{{train,test}}_{{name,age}}.txt)")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def read(root: Path) -> Iterator[Record]:
    for part in ("train", "test"):
        names = _lines(root / "list" / f"{part}_name.txt")
        ages = _lines(root / "list" / f"{part}_age.txt")
        if len(names) != len(ages):
            raise DataError(f"MegaAge list/{part}_name.txt has {len(names)} lines but "
                             f"list/{part}_age.txt has {len(ages)}; they must match line by line")
        for i, (name, age) in enumerate(zip(names, ages), 1):
            rec = Record(path=f"{part}/{name}" if name else f"list/{part}_name.txt:{i}", age=None,
                         split="test" if part == "test" else train_or_valid(name))
            try:
                if not name:
                    raise LabelError(f"bad_label: empty name on line {i} of list/{part}_name.txt")
                rec.age = parse_age(age)
            except LabelError as e:
                rec.error = str(e)
            yield rec
