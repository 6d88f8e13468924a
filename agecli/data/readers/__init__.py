"""Dataset readers: each module exposes `read(root) -> Iterator[Record]`."""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

from ..records import Record

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
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def read_dataset(name: str, root: str | Path) -> Iterator[Record]:
    """Records of dataset `name` under `root`; unknown names raise ValueError."""
    if name not in READERS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(READERS)}")
    module = importlib.import_module(f"{__name__}.{READERS[name]}")
    return module.read(Path(root))


def read_file_names(root: Path, parse_name: Callable[[str], Record]) -> Iterator[Record]:
    """Records of every image under `root` whose labels live in its file name."""
    for p in list_images(root):
        rec = parse_name(p.name)
        rec.path = p.relative_to(root).as_posix()
        yield rec


def list_images(root: Path) -> list[Path]:
    """Image files under `root`, recursively, sorted for a stable order."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
