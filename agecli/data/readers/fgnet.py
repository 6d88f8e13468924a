"""FG-NET: labels in the file name, `SSSAGG.JPG` (subject SSS, age GG).

Examples: `001A02.JPG` is subject "001" at age 2; `078A11a.JPG` (a second photo at the
same age) is subject "078" at age 11. Any case of the `A` and of the extension. The set
has no official split: use `--split subject` (e.g. `--folds 82` for leave-one-person-out).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..records import LabelError, Record
from . import read_file_names
from ._labels import parse_age

NAME = re.compile(r"(\d+)[aA](\d+)[a-zA-Z]?")


def parse_name(name: str) -> Record:
    """Subject and age from one FG-NET file name; `error` set when they are unreadable."""
    rec = Record(path=name, age=None)
    m = NAME.fullmatch(Path(name).stem.strip())
    if not m:
        rec.error = f"bad_label: {name!r} is not an FG-NET name like 001A02.JPG"
        return rec
    try:
        rec.age = parse_age(m.group(2))
    except LabelError as e:
        rec.error = str(e)
        return rec
    rec.subject = m.group(1)
    return rec


def read(root: Path) -> Iterator[Record]:
    return read_file_names(root, parse_name)
