"""What `demo` writes beside the rows: annotated copies under the inputs' relative
names and, when asked, the aligned crops; every file atomically.

The output folder never loses a file agecli did not write: every file a run writes is
listed in `.agecli-demo-files` first, and a copy that would replace an input or any
unlisted file is refused before work starts (`OutputFolder`, `check_no_overwrite`)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from ..atomic import write_bytes
from ..ledger import OwnedFolder
from ..errors import UsageError
from ..infer.pipeline import ImageResult, StageTimer
from .formats import FORMATS
from ..infer.sources import Source

CROPS_DIR = "crops"
PREDICTIONS = "predictions.csv"
TRACKS = "tracks.csv"  # a video's people, one row per track (and tracks.<suffix> in another --format)
TRACK_CROPS = "tracks"  # the best face crop of each track
PARTIAL = f".{PREDICTIONS}.agecli-partial"  # rows as images finish; a name no user file has
WRITTEN = ".agecli-demo-files"  # every file a run wrote, relative to the output folder
STATE = ".agecli-demo.json"  # the model and settings behind the rows
OUTPUT_DIR_KEY = "output_dir"  # in STATE: the --output-dir as that run spelled it (not a setting to match)


class OutputFolderError(UsageError):
    """An output folder whose use would replace a user's file: exit code 2."""


class OutputFolder(OwnedFolder):
    """The --output-dir of a run: which files in it agecli wrote (so that it replaces
    only those), and the record of the model and settings behind its rows."""

    def __init__(self, path: Path) -> None:
        had_ledger = (path / WRITTEN).is_file()
        super().__init__(path, WRITTEN, (STATE, PARTIAL))
        if not had_ledger and (path / PREDICTIONS).is_file() and _is_ours(path / PREDICTIONS):
            self.written.add(PREDICTIONS)  # a folder from before the ledger

    def state(self) -> dict | None:
        try:
            return json.loads((self.path / STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def _is_ours(predictions: Path) -> bool:
    with open(predictions, encoding="utf-8", errors="replace") as fh:
        return fh.readline().startswith("file,face,age,std,")


def check_no_overwrite(folder: OutputFolder, source: Source, names: list[str], error=OutputFolderError,
                       save_crops: bool = False) -> None:
    """Refuse, before any work, a run whose annotated copies would replace one of its
    inputs or a file in the output folder that agecli did not write, or (with
    --save-crops) land among the crops."""
    inputs = {os.path.realpath(p) for p in source.paths if p is not None}
    for name in names:
        if save_crops and name.split("/")[0] == CROPS_DIR:
            raise error(f"`save_crops`: the input {name} would be copied into {folder.path / CROPS_DIR}, where the "
                        "crops go; rename that folder or leave out `save_crops`", setting="save_crops")
        target = annotated_path(folder.path, name)
        if os.path.realpath(target) in inputs:
            raise error(f"`output_dir` {folder.path}: the annotated copy of {name} would replace the input "
                        f"{target}; choose an output folder outside the inputs", setting="output_dir")
        if folder.foreign(target):
            raise error(f"`output_dir` {folder.path}: {target} exists and was not written by agecli; "
                        "choose an empty or new output folder", setting="output_dir")
    for f in (PREDICTIONS, PARTIAL):
        if folder.foreign(folder.path / f):
            raise error(f"`output_dir` {folder.path}: {folder.path / f} exists and was not written by agecli",
                        setting="output_dir")


def check_video_outputs(folder: OutputFolder, video: Path | None, files: list[Path], folders: list[Path],
                        error=OutputFolderError) -> None:
    """Refuse, before any work, a video run whose outputs (`files`, and whatever it would
    write into `folders`) would replace its input or a file agecli did not write."""
    for target in files:
        if video is not None and os.path.realpath(target) == os.path.realpath(video):
            raise error(f"`output_dir` {folder.path}: the annotated video {target} would replace the input; "
                        "choose an output folder outside the input's", setting="output_dir")
    owned = [*files, *(p for d in folders if d.is_dir() for p in d.rglob("*") if not p.is_dir())]
    for target in [*owned, folder.path / PREDICTIONS, folder.path / PARTIAL]:
        if folder.foreign(target):
            raise error(f"`output_dir` {folder.path}: {target} exists and was not written by agecli; "
                        "choose an empty or new output folder", setting="output_dir")


def tracks_paths(out_dir: Path, fmt: str) -> list[tuple[Path, str]]:
    """The tables of a video's people and their formats: tracks.csv, and with another
    --format the same table in it (tracks.jsonl)."""
    return [(out_dir / TRACKS, "csv")] + ([(out_dir / f"tracks.{FORMATS[fmt].suffix}", fmt)] * (fmt != "csv"))


def track_crop_path(out_dir: Path, track: int) -> Path:
    """Where the best face crop of track `track` goes."""
    return out_dir / TRACK_CROPS / f"track_{track:04d}.jpg"


def crop_path(out_dir: Path, name: str, face: int) -> Path:
    """Where face `face` of input `name` goes with --save-crops: the whole input name
    (extension included) keeps a.jpg's and a.png's crops apart."""
    return out_dir / CROPS_DIR / f"{name}_face{face}.jpg"


WRITABLE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


def annotated_path(out_dir: Path, name: str) -> Path:
    """Where the annotated copy of `name` goes: the same relative path and name
    (`.jpg` appended when the name has no extension OpenCV writes everywhere)."""
    return out_dir / (name if Path(name).suffix.lower() in WRITABLE_EXTENSIONS else name + ".jpg")


def encode_image(rgb: np.ndarray, suffix: str) -> bytes:
    """The image encoded by file extension (JPEG quality 95; the JPEG setting given to
    another encoder made OpenCV print a `[ WARN ]` line per image)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix.lower(), np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise OSError(f"cannot encode an image as {suffix}")
    return buf.tobytes()


def encode_outputs(res: ImageResult, name: str, save_crops: bool, labels: str = "full") -> None:
    """Draw (with `labels`: full, age or none) and encode the annotated copy (and the
    crops) into `res`, dropping the pixels: what a Ray actor sends back instead of the image."""
    from ..infer.drawing import annotate

    res.encoded = encode_image(annotate(res.image, res.faces, labels), annotated_path(Path(), name).suffix)
    if save_crops and res.crops is not None:
        res.encoded_crops = [encode_image(c, ".jpg") for c in res.crops]
    res.image = res.crops = None


def write_outputs(res: ImageResult, folder: OutputFolder, copy: Path, save_crops: bool, timer: StageTimer,
                  labels: str = "full") -> None:
    """The annotated copy of one image (and its crops), each file claimed first; the
    image is released after."""
    if res.encoded is None:
        with timer("draw"):
            encode_outputs(res, res.name, save_crops, labels)
    with timer("write"):
        write_bytes(folder.claim(copy), res.encoded)
        for i, data in enumerate(res.encoded_crops or []):
            write_bytes(folder.claim(crop_path(folder.path, res.name, i)), data)
    res.encoded = res.encoded_crops = None
