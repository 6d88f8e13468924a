"""`agecli demo`: sources -> pipeline -> rows on stdout, annotated copies, predictions.csv.

With an output folder, rows are appended to `predictions.csv.partial` as images finish
(before their annotated copy is written, so an existing copy means saved rows);
at the end they are merged into `predictions.csv` (written atomically) and the partial
file is removed. `skip_existing` re-uses the rows of images whose annotated copy is
already there, so an interrupted run finishes only the rest.
"""
from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from ..model.checkpoint import CheckpointError
from .default_model import MissingModelError, default_model_path
from .pipeline import AgePipeline, ImageResult, StageTimer
from .sources import IMAGE_EXTENSIONS, SourceError, open_source

COLUMNS = ["file", "face", "age", "std", "x1", "y1", "x2", "y2", "score", "small_face", "gender", "gender_prob",
           "ethnicity", "ethnicity_prob", "error"]
INT_COLUMNS = {"face", "small_face"}
TEXT_COLUMNS = {"file", "gender", "ethnicity", "error"}
PREDICTIONS = "predictions.csv"
PARTIAL = PREDICTIONS + ".partial"
CROPS_DIR = "crops"


class DemoError(Exception):
    """A setup problem (bad option, missing model, unwritable output): exit code 2."""


@dataclass
class DemoOptions:
    """Everything `agecli demo` takes; see the CLI help for each option."""

    inputs: list[str] = field(default_factory=list)
    img_dir: Path | None = None
    img_list: str | None = None
    video: Path | None = None
    every: int = 1
    model: Path | None = None
    runner: str = "auto"
    device: str = "cpu"
    output_dir: Path | None = None
    save_crops: bool = False
    skip_existing: bool = False
    fmt: str = "csv"
    threshold: float = 0.8
    max_side: int = 1280
    expand: float | None = None
    batch_size: int = 64


@dataclass
class DemoSummary:
    """Counts of a run (images = decoded inputs, skipped not included) and stage timings."""

    images: int = 0
    faces: int = 0
    no_face: int = 0
    unreadable: int = 0
    skipped: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)


def face_rows(result: ImageResult) -> list[dict[str, Any]]:
    """Output rows of one image: one per face, or one carrying the error."""
    if not result.faces:
        return [{**dict.fromkeys(COLUMNS), "file": result.name, "error": result.error or "no_face"}]
    rows = []
    for i, f in enumerate(result.faces):
        x1, y1, x2, y2 = (round(float(v), 1) for v in f.box)
        rows.append({"file": result.name, "face": i, "age": round(f.age, 1), "std": round(f.std, 2),
                     "x1": x1, "y1": y1, "x2": x2, "y2": y2, "score": round(f.score, 3),
                     "small_face": int(f.small_face),
                     "gender": f.gender, "gender_prob": None if f.gender_prob is None else round(f.gender_prob, 3),
                     "ethnicity": f.ethnicity,
                     "ethnicity_prob": None if f.ethnicity_prob is None else round(f.ethnicity_prob, 3),
                     "error": None})
    return rows


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
    """Rows as CSV (header once) or JSON Lines on a text stream, flushed per image."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        self.stream, self.fmt = stream, fmt
        if fmt == "csv":
            self.writer = csv.DictWriter(stream, fieldnames=COLUMNS, lineterminator="\n")
            self.writer.writeheader()

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if self.fmt == "csv":
                self.writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})
            else:
                self.stream.write(json.dumps({k: row[k] for k in COLUMNS}, ensure_ascii=False) + "\n")
        self.stream.flush()


def read_rows(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Rows of a predictions file grouped by image; a later block for the same image
    (a re-processed one) replaces the earlier."""
    groups: dict[str, list[dict[str, Any]]] = {}
    if not path.is_file():
        return groups
    prev = None
    with open(path, newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            if not raw.get("file") or None in raw.values():
                continue  # a line cut short by an interruption
            row = parse_row(raw)
            if row["file"] != prev:
                groups[row["file"]] = []
                prev = row["file"]
            groups[row["file"]].append(row)
    return groups


def check_output_dir(path: Path) -> None:
    """Create the folder and prove it is writable, before any work starts."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".agecli-write-test-"):
            pass
    except OSError as e:
        raise DemoError(f"--output-dir {path}: cannot write there ({e.strerror or e})") from None


def annotated_path(out_dir: Path, name: str) -> Path:
    """Where the annotated copy of `name` goes: the same relative path and name
    (`.jpg` appended when the name has no writable image extension)."""
    return out_dir / (name if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name + ".jpg")


def write_image(rgb: np.ndarray, path: Path) -> None:
    """Encode by extension and write atomically."""
    from ..atomic import write_bytes

    ok, buf = cv2.imencode(path.suffix.lower(), np.ascontiguousarray(rgb[:, :, ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f"cannot encode {path.name}")
    write_bytes(path, buf.tobytes())


def _check_options(o: DemoOptions) -> None:
    if o.fmt not in ("csv", "jsonl"):
        raise DemoError(f"--format must be csv or jsonl, not {o.fmt!r}")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", o.device):
        raise DemoError(f"--device must be cpu, cuda or cuda:N, not {o.device!r}")
    if o.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise DemoError(f"--device {o.device}: CUDA is not available on this machine")
    if not 0.0 < o.threshold < 1.0:
        raise DemoError("--threshold must be between 0 and 1")
    if o.max_side < 64 or o.batch_size < 1:
        raise DemoError("--max-side must be at least 64 and --batch-size at least 1")
    if o.expand is not None and o.expand < 0:
        raise DemoError("--expand must be 0 or more")
    if (o.save_crops or o.skip_existing) and o.output_dir is None:
        raise DemoError("--save-crops and --skip-existing need --output-dir")


def _open_runner(o: DemoOptions, log: Callable[[str], None]):
    from .runners import open_runner

    try:
        path = o.model if o.model is not None else default_model_path()
        runner = open_runner(path, o.runner, o.device, o.batch_size)
    except (MissingModelError, CheckpointError, ValueError) as e:
        raise DemoError(str(e)) from None
    if o.expand is not None and abs(o.expand - float(runner.meta["expand"])) > 1e-9:
        log(f"warning: --expand {o.expand} differs from the model's {runner.meta['expand']}: "
            "the crops differ from training, expect less accurate ages")
    return runner


def run_demo(o: DemoOptions, stdout: TextIO, log: Callable[[str], None] = lambda m: None,
             progress: Callable[[int, int | None], None] | None = None,
             timer: StageTimer | None = None) -> DemoSummary:
    """Run the whole demo; raises DemoError for setup problems, before any work."""
    from ..face.detector import FaceDetector

    _check_options(o)
    out_dir = o.output_dir
    if out_dir is not None:
        check_output_dir(out_dir)
    try:
        source = open_source(o.inputs, o.img_dir, o.img_list, o.video, o.every, exclude=out_dir)
    except SourceError as e:
        raise DemoError(str(e)) from None
    runner = _open_runner(o, log)
    timer = timer or StageTimer()
    pipe = AgePipeline(runner, FaceDetector(score_threshold=o.threshold, max_side=o.max_side), o.expand,
                       batch_faces=o.batch_size, keep_images=out_dir is not None, keep_crops=o.save_crops,
                       timer=timer)

    prior: dict[str, list[dict[str, Any]]] = {}
    if out_dir is not None and o.skip_existing:
        prior = read_rows(out_dir / PREDICTIONS)
        prior.update(read_rows(out_dir / PARTIAL))

    def skip(name: str) -> bool:
        return name in prior and annotated_path(out_dir, name).exists()

    rows_out = RowWriter(stdout, o.fmt)
    partial_fh = partial = None
    if out_dir is not None:
        keep = o.skip_existing and (out_dir / PARTIAL).is_file()
        partial_fh = open(out_dir / PARTIAL, "a" if keep else "w", newline="", encoding="utf-8")
        partial = csv.DictWriter(partial_fh, fieldnames=COLUMNS, lineterminator="\n")
        if not keep:
            partial.writeheader()
        elif not _ends_with_newline(out_dir / PARTIAL):
            partial_fh.write("\n")  # the last line was cut by the interruption: start a new one
    summary, order, new_rows = DemoSummary(), [], {}
    start = time.perf_counter()
    try:
        for res in pipe.run(source.items, skip=skip if o.skip_existing else None, live=source.live):
            order.append(res.name)
            if res.skipped:
                summary.skipped += 1
                rows_out.write(prior[res.name])
            else:
                _record(res, summary, log)
                rows = face_rows(res)
                with timer("write"):
                    rows_out.write(rows)
                    if partial is not None:
                        partial.writerows({k: "" if r[k] is None else r[k] for k in COLUMNS} for r in rows)
                        partial_fh.flush()
                # the copy comes after the rows: an existing copy means its rows were saved
                if out_dir is not None and res.image is not None:
                    _write_outputs(res, out_dir, o.save_crops, timer)
                new_rows[res.name] = rows
            if progress:
                progress(len(order), source.total)
    except KeyboardInterrupt:
        if not source.live:
            raise
        log("webcam stopped")  # Ctrl-C is how a live run ends: finish the outputs normally
    finally:
        if partial_fh is not None:
            partial_fh.close()
    if out_dir is not None:
        _merge_predictions(out_dir, order, new_rows, prior)
    summary.seconds = time.perf_counter() - start
    summary.stages = dict(timer.seconds)
    return summary


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _record(res: ImageResult, summary: DemoSummary, log: Callable[[str], None]) -> None:
    if res.error == "unreadable":
        summary.unreadable += 1
        log(f"warning: {res.name}: {res.detail}")
        return
    summary.images += 1
    summary.faces += len(res.faces)
    summary.no_face += res.error == "no_face"


def _write_outputs(res: ImageResult, out_dir: Path, save_crops: bool, timer: StageTimer) -> None:
    from .drawing import annotate

    with timer("draw"):
        img = annotate(res.image, res.faces)
    with timer("write"):
        write_image(img, annotated_path(out_dir, res.name))
        if save_crops and res.crops is not None:
            stem = str(Path(res.name).with_suffix(""))
            for i, crop in enumerate(res.crops):
                write_image(crop, out_dir / CROPS_DIR / f"{stem}_face{i}.jpg")
    res.image = res.crops = None


def _merge_predictions(out_dir: Path, order: list[str], new_rows: dict[str, list[dict[str, Any]]],
                       prior: dict[str, list[dict[str, Any]]]) -> None:
    """predictions.csv = this run's images in input order (new rows, or the kept rows
    of skipped images), written atomically; then the partial file goes."""
    path = out_dir / PREDICTIONS
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for name in order:
            for r in new_rows.get(name) or prior.get(name, []):
                w.writerow({k: "" if r[k] is None else r[k] for k in COLUMNS})
    os.replace(tmp, path)
    (out_dir / PARTIAL).unlink(missing_ok=True)
