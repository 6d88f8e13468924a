"""AFAD (Asian Face Age Dataset): labels in the folders, `AGE/GENDER_CODE/NAME.jpg`.

Gender codes: 111 male, 112 female. Everyone is Asian (race 2). The folders may sit
one level down (e.g. `root/AFAD-Full/15/111/x.jpg`): the last two folders are read.
No official split.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..records import LabelError, Record
from . import list_images
from ._labels import parse_age

GENDER_CODES = {"111": 0, "112": 1}


def read(root: Path) -> Iterator[Record]:
    for p in list_images(root):
        rel = p.relative_to(root)
        rec = Record(path=rel.as_posix(), age=None, race=2)
        try:
            if len(rel.parts) < 3:
                raise LabelError(f"bad_label: {rec.path!r} is not in an AGE/111|112/ folder")
            age, code = rel.parts[-3], rel.parts[-2]
            if code not in GENDER_CODES:
                raise LabelError(f"bad_label: gender folder {code!r} (expected 111 male or 112 female)")
            rec.age = parse_age(age)
            rec.gender = GENDER_CODES[code]
        except LabelError as e:
            rec.error = str(e)
        yield rec
