"""A folder of images named UTKFace-style (`AGE_...`), in any sub-folder layout."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..records import Record
from .utkface import read as read_utk_names


def read(root: Path) -> Iterator[Record]:
    yield from read_utk_names(root)
