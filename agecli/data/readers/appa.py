"""APPA-REAL: per-split CSVs `gt_avg_{train,valid,test}.csv` with images in `train/`,
`valid/`, `test/`.

CSV columns: file_name, num_ratings, apparent_age_avg, apparent_age_std, real_age.
The age used is `real_age` (the biological age), not the apparent age. Each image also
exists as `<file_name>_face.jpg` (the release's own crop); the plain `file_name` is used.
When `allcategories_<split>.csv` (file, gender, race, ...) is present, gender
(male/female) and race (caucasian 0, afroamerican 1, asian 2) are read from it.
Official split: train/valid/test.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ...vocab import SPLITS
from ...errors import DataError
from ..records import LabelError, Record
from ._labels import clean_path, parse_age, parse_gender, read_csv_rows

RACES = {"caucasian": 0, "afroamerican": 1, "asian": 2}


def _categories(root: Path, split: str) -> dict[str, dict[str, str]]:
    f = root / f"allcategories_{split}.csv"
    if not f.is_file():
        return {}
    return {clean_path(r.get("file", "")): r for r in read_csv_rows(f)}


def read(root: Path) -> Iterator[Record]:
    found = [s for s in SPLITS if (root / f"gt_avg_{s}.csv").is_file()]
    if not found:
        raise DataError(f"APPA-REAL: no gt_avg_train/valid/test.csv in {root}")
    for split in found:
        cats = _categories(root, split)
        for i, row in enumerate(read_csv_rows(root / f"gt_avg_{split}.csv"), 2):
            name = clean_path(row.get("file_name", ""))
            rec = Record(path=f"{split}/{name}" if name else f"gt_avg_{split}.csv:{i}", age=None, split=split)
            try:
                if not name:
                    raise LabelError(f"bad_label: empty file_name on line {i} of gt_avg_{split}.csv")
                rec.age = parse_age(row.get("real_age", ""))
                cat = cats.get(name)
                if cat:
                    rec.gender = parse_gender(cat.get("gender"))
                    rec.race = RACES.get(cat.get("race", "").strip().lower())
            except LabelError as e:
                rec.error = str(e)
            yield rec
