"""The rows `demo` writes, one per face (or one per image without a face): the columns,
the streaming writer (in any of the `formats.FORMATS`), and reading them back from
predictions.csv for a resumed run; and the table of a video's tracks (`tracks.csv`),
one row per person."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .formats import FORMATS

if TYPE_CHECKING:  # the CLI's help reads COLUMNS: no numpy or OpenCV import for that
    from ..infer.pipeline import ImageResult

COLUMNS = ["file", "face", "age", "std", "x1", "y1", "x2", "y2", "score", "small_face", "gender", "gender_prob",
           "ethnicity", "ethnicity_prob", "error", "output", "track", "track_age", "track_std"]
INT_COLUMNS = {"face", "small_face", "track"}
TEXT_COLUMNS = {"file", "gender", "ethnicity", "error", "output"}


def face_rows(result: ImageResult, given: str | None = None, output: str | None = None) -> list[dict[str, Any]]:
    """Output rows of one image: one per face, or one carrying the error. `file` is the
    input as the user gave it; `output` the annotated copy's path under --output-dir."""
    file = given or result.name
    if not result.faces:
        return [{**dict.fromkeys(COLUMNS), "file": file, "error": result.error or "no_face", "output": output}]
    rows = []
    for i, f in enumerate(result.faces):
        x1, y1, x2, y2 = (round(float(v), 1) for v in f.box)
        rows.append({"file": file, "output": output, "face": i, "age": round(f.age, 1), "std": round(f.std, 2),
                     "x1": x1, "y1": y1, "x2": x2, "y2": y2, "score": round(f.score, 3),
                     "small_face": int(f.small_face),
                     "gender": f.gender, "gender_prob": None if f.gender_prob is None else round(f.gender_prob, 3),
                     "ethnicity": f.ethnicity,
                     "ethnicity_prob": None if f.ethnicity_prob is None else round(f.ethnicity_prob, 3),
                     "error": None, "track": f.track,
                     "track_age": None if f.track_age is None else round(f.track_age, 1),
                     "track_std": None if f.track_std is None else round(f.track_std, 2)})
    return rows


TRACK_COLUMNS = ["track", "first_frame", "last_frame", "first_time", "last_time", "frames", "age", "std", "gender",
                 "gender_prob", "ethnicity", "ethnicity_prob", "crop"]


def track_rows(tracks: list, crops: dict[int, str]) -> list[dict[str, Any]]:
    """One row per track (tracks.TrackSummary), `crop` the saved best face crop's path."""
    def rounded(v: float | None, digits: int) -> float | None:
        return None if v is None else round(v, digits)

    return [{**t.to_dict(), "age": rounded(t.age, 1), "std": rounded(t.std, 2),
             "gender_prob": rounded(t.gender_prob, 3), "ethnicity_prob": rounded(t.ethnicity_prob, 3),
             "crop": crops.get(t.track)} for t in tracks]


def parse_row(row: dict[str, str]) -> dict[str, Any]:
    """A row read back from CSV, with its numbers and empty fields typed again."""
    out: dict[str, Any] = {}
    for k in COLUMNS:
        v = row.get(k) or None
        if v is not None and k not in TEXT_COLUMNS:
            v = int(v) if k in INT_COLUMNS else float(v)
        out[k] = v
    return out


class RowWriter:
    """Rows in the format named `fmt` (a key of `formats.FORMATS`: CSV with its header
    once, JSON Lines, ...) on a text stream, flushed per image; no stream (None) writes
    nothing, for a run whose rows are kept only in predictions.csv.

    With `keep_going`, a stream closed by its reader (`| head`) stops the rows but not
    the run, which still has an output folder to finish; `closed` then says so."""

    def __init__(self, stream: TextIO | None, fmt: str, keep_going: bool = False) -> None:
        self.stream, self.format, self.keep_going = stream, FORMATS[fmt], keep_going
        self.closed = False
        if stream is not None:
            stream.write(self.format.header(COLUMNS))  # buffered: it reaches the reader with the first rows

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.closed or self.stream is None:
            return
        try:
            self.stream.write(self.format.lines(rows, COLUMNS))
            self.stream.flush()
        except BrokenPipeError:
            if not self.keep_going:
                raise
            self.closed = True


def read_rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Rows of a predictions file grouped by annotated copy (`output`, unique per input);
    a later block for the same image (a re-processed one) replaces the earlier."""
    groups: dict[str, list[dict[str, Any]]] = {}
    if not path.is_file():
        return groups
    prev = None
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        for raw in csv.DictReader(fh):
            if not raw.get("output") or None in raw.values():
                continue  # a line cut short by an interruption (or another version's file)
            row = parse_row(raw)
            if row["output"] != prev:
                groups[row["output"]] = []
                prev = row["output"]
            groups[row["output"]].append(row)
    return groups
