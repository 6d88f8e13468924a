"""Dataset readers: each module exposes `read(root) -> Iterator[Record]`, and may say
which figure results on its collection are quoted in (`METRIC = "ca3"`; default
"mae"), which `best.pth` is chosen on (TRAIN.BEST_METRIC auto).

Adding a reader: a module here with `read(root)` and its line in `READERS`; `prepare
--dataset` and its help read the table. This file imports nothing heavy (the CLI's help
reads `READERS`): the readers are imported when asked for.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..records import Record

# name (prepare --dataset) -> its module in this package
READERS = {
    "utkface": "utkface",
    "fgnet": "fgnet",
    "megaage": "megaage",
    "megaage_asian": "megaage",
    "morph": "morph",
    "aaf": "aaf",
    "afad": "afad",
    "appa": "appa",
    "csv": "csv_list",
    "folder": "folder",
}


def reader(name: str):
    """The reader module of dataset `name`; unknown names raise ValueError."""
    if name not in READERS:
        from ...errors import DataError

        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(READERS)}")
    return importlib.import_module(f"{__name__}.{READERS[name]}")


def read_dataset(name: str, root: str | Path) -> list[Record]:
    """Records of dataset `name` under `root`, one per image path; unknown names raise ValueError."""
    return one_per_path(reader(name).read(Path(root)))


def collection_metric(prefix: str) -> str:
    """The figure results on a prepared set are quoted in ("mae", or "ca3" for MegaAge):
    the METRIC of the reader whose name the CSV prefix starts with, the longest such
    (`megaage_asian_fold0` is MegaAge-Asian); "mae" for a prefix no reader names."""
    names = [n for n in READERS if prefix.startswith(n)]
    return getattr(reader(max(names, key=len)), "METRIC", "mae") if names else "mae"


def one_per_path(records: Iterator[Record]) -> list[Record]:
    """One record per image path: a path listed twice with the same labels is kept once;
    listed with different labels, it becomes one rejected record naming both."""
    by_path: dict[str, Record] = {}
    for rec in records:
        first = by_path.setdefault(rec.path, rec)
        if first is rec or first.error:
            continue
        a, b = (first.age, first.gender, first.race, first.subject), (rec.age, rec.gender, rec.race, rec.subject)
        if a != b or rec.error:
            first.error = (f"bad_label: {rec.path} is listed twice with different labels "
                           f"(age {first.age:g} and {'?' if rec.age is None else format(rec.age, 'g')})")
    return list(by_path.values())


def read_file_names(root: Path, parse_name: Callable[[str], Record]) -> Iterator[Record]:
    """Records of every image under `root` whose labels live in its file name."""
    for p in list_images(root):
        rec = parse_name(p.name)
        rec.path = p.relative_to(root).as_posix()
        yield rec


def list_images(root: Path) -> list[Path]:
    """Image names under `root`, recursively, sorted for a stable order. FIFOs and
    dangling links are listed too, so prepare rejects them by name instead of losing
    them; a sub-folder that cannot be read is named in a warning, never skipped silently."""
    from ..images import IMAGE_EXTENSIONS, unreadable_folder

    found = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable_folder):
        here = Path(dirpath)
        found += [here / f for f in filenames if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(found)

