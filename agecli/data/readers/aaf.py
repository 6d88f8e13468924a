"""All-Age-Faces (AAF): labels in the file name, `IIIIIAGG.jpg` (image id, age).

Images are read from `aglined faces/` (the release's spelling; `aligned faces/` also
works), else `original images/`, else anywhere under the root. Ids 00000-07380 are
female (gender 1), 07381 and up male (gender 0). The faces carry no ethnicity label:
the collection is mostly East Asian, but a reader that labelled every face Asian taught
the ethnicity head to call the collection's capture (small, soft, upscaled faces)
"asian" in anyone's photos; race stays unknown (masked in training). Ids number images,
not people, so there is no subject.

Official split, when `image sets/train.txt` and `image sets/val.txt` exist (lines like
`00000A02.jpg 0`: a name, then a gender label that is ignored): the val list is
'test'; the train list is 'train', less the images whose hash fold (of the bare file
name) is 8 or 9, which become 'valid'. Without the `image sets` folder there is no
split (prepare then applies the hash rule); nor has an image that is in neither list.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..records import LabelError, Record
from . import list_images
from ._labels import parse_age, train_or_valid

NAME = re.compile(r"(\d+)[aA](\d+)")
LAST_FEMALE_ID = 7380
IMAGE_DIRS = ("aglined faces", "aligned faces", "original images")


def _official_split(root: Path) -> dict[str, str]:
    sets = root / "image sets"
    split: dict[str, str] = {}
    for list_name, part in (("train.txt", "train"), ("val.txt", "test")):
        f = sets / list_name
        if not f.is_file():
            continue
        for line in f.read_text(encoding="utf-8-sig").splitlines():
            fields = line.split()
            if fields:
                name = Path(fields[0]).name
                split[name] = train_or_valid(name) if part == "train" else part
    return split


def parse_name(name: str) -> Record:
    rec = Record(path=name, age=None)
    m = NAME.fullmatch(Path(name).stem.strip())
    try:
        if not m:
            raise LabelError(f"bad_label: {name!r} is not an AAF name like 00000A02.jpg")
        rec.age = parse_age(m.group(2))
    except LabelError as e:
        rec.error = str(e)
        return rec
    rec.gender = 1 if int(m.group(1)) <= LAST_FEMALE_ID else 0
    return rec


def read(root: Path) -> Iterator[Record]:
    images = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), root)
    split = _official_split(root)
    for p in list_images(images):
        if "image sets" in p.relative_to(root).parts:
            continue
        rec = parse_name(p.name)
        rec.path = p.relative_to(root).as_posix()
        rec.split = split.get(p.name)
        yield rec
