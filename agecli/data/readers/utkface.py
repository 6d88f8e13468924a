"""UTKFace: labels in the file name, `AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`.

The release has names with a space, a missing race field or a missing dot; those
still give what can be read (age, and gender/race only when present and valid).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ...vocab import MAX_AGE
from ..records import Record
from . import read_file_names


def parse_name(name: str) -> Record:
    """Labels from one UTKFace file name; `error` set when the age is unreadable."""
    parts = name.split("_")
    rec = Record(path=name, age=None)
    try:
        age = int(parts[0])
    except ValueError:
        rec.error = f"bad_label: no age in file name {name!r}"
        return rec
    if not 0 <= age <= MAX_AGE:
        rec.error = f"bad_label: age {age} out of range"
        return rec
    rec.age = float(age)
    # A field is a label only if it is short; the date-time stamp is 17 digits.
    if len(parts) >= 3 and parts[1].strip() in ("0", "1"):
        rec.gender = int(parts[1])
        race = parts[2].strip()
        if race in ("0", "1", "2", "3", "4"):
            rec.race = int(race)
    return rec


def read(root: Path) -> Iterator[Record]:
    return read_file_names(root, parse_name)
