"""`agecli demo`: sources -> pipeline -> rows on stdout, annotated copies, predictions.csv.

With an output folder, rows are appended to `predictions.csv.partial` as images finish
(before their annotated copy is written, so an existing copy means saved rows);
at the end they are merged into `predictions.csv` (written atomically) and the partial
file is removed. `skip_existing` re-uses the rows of images whose annotated copy is
already there, so an interrupted run finishes only the rest.

The output folder never loses a file agecli did not write: every file a run writes is
listed in `.agecli-demo-files` first, and a copy that would replace an input or any
unlisted file is refused before work starts. `.agecli-demo.json` records the model and
settings that produced the rows, so `--skip-existing` never mixes two models' ages.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from ..atomic import OutputError, check_writable_dir, write_bytes, write_text
from ..model.checkpoint import CheckpointError
from ..parallel import default_workers
from .default_model import MissingModelError, default_model_path
from .pipeline import AgePipeline, ImageResult, StageTimer
from .sources import IMAGE_EXTENSIONS, Source, SourceError, open_source

COLUMNS = ["file", "face", "age", "std", "x1", "y1", "x2", "y2", "score", "small_face", "gender", "gender_prob",
           "ethnicity", "ethnicity_prob", "error", "output"]
INT_COLUMNS = {"face", "small_face"}
TEXT_COLUMNS = {"file", "gender", "ethnicity", "error", "output"}
PREDICTIONS = "predictions.csv"
PARTIAL = PREDICTIONS + ".partial"
CROPS_DIR = "crops"
WRITTEN = ".agecli-demo-files"  # every file a run wrote, relative to the output folder
STATE = ".agecli-demo.json"  # the model and settings behind the rows


class DemoError(Exception):
    """A setup problem (bad option, missing model, an output that would replace a user's
    file): exit code 2."""


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
    workers: int | None = None  # processes for decode, detect and align; None: one per core
    ray: str | None = None  # None: run here; "local" or an address: on a Ray cluster (see ray_backend)


@dataclass
class DemoSummary:
    """Counts of a run (images = decoded inputs, skipped not included) and stage timings."""

    images: int = 0
    faces: int = 0
    no_face: int = 0
    unreadable: int = 0
    skipped: int = 0
    ended_early: int = 0  # videos that stopped before their declared end
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)


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
    """Rows of a predictions file grouped by annotated copy (`output`, unique per input);
    a later block for the same image (a re-processed one) replaces the earlier."""
    groups: dict[str, list[dict[str, Any]]] = {}
    if not path.is_file():
        return groups
    prev = None
    with open(path, newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            if not raw.get("output") or None in raw.values():
                continue  # a line cut short by an interruption (or another version's file)
            row = parse_row(raw)
            if row["output"] != prev:
                groups[row["output"]] = []
                prev = row["output"]
            groups[row["output"]].append(row)
    return groups


class OutputFolder:
    """The --output-dir of a run: which files in it agecli wrote (so that it replaces
    only those), and the record of the model and settings behind its rows."""

    def __init__(self, path: Path) -> None:
        check_writable_dir(path, "--output-dir")
        self.path = path
        self.written: set[str] = set()
        f = path / WRITTEN
        if f.is_file():
            self.written = set(f.read_text(encoding="utf-8").splitlines())
        elif (path / PREDICTIONS).is_file() and _is_ours(path / PREDICTIONS):
            self.written = {PREDICTIONS}
        self.written.update((WRITTEN, STATE, PARTIAL, PREDICTIONS + ".tmp"))

    def rel(self, target: Path) -> str:
        return target.relative_to(self.path).as_posix()

    def foreign(self, target: Path) -> bool:
        """True when `target` exists and agecli did not write it (a user's file)."""
        return os.path.lexists(target) and self.rel(target) not in self.written

    def claim(self, target: Path) -> Path:
        """List `target` as written by agecli (before writing it); refuse a user's file."""
        if self.foreign(target):
            raise OutputError(f"{target} exists and was not written by agecli; not replacing it")
        rel = self.rel(target)
        if rel not in self.written:
            self.written.add(rel)
            with open(self.path / WRITTEN, "a", encoding="utf-8") as fh:
                fh.write(rel + "\n")
        return target

    def state(self) -> dict | None:
        try:
            return json.loads((self.path / STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def _is_ours(predictions: Path) -> bool:
    with open(predictions, encoding="utf-8", errors="replace") as fh:
        return fh.readline().startswith("file,face,age,std,")


def check_no_overwrite(folder: OutputFolder, source: Source, names: list[str]) -> None:
    """Refuse, before any work, a run whose annotated copies would replace one of its
    inputs or a file in the output folder that agecli did not write."""
    inputs = {os.path.realpath(p) for p in source.paths if p is not None}
    for name in names:
        target = annotated_path(folder.path, name)
        if os.path.realpath(target) in inputs:
            raise DemoError(f"--output-dir {folder.path}: the annotated copy of {name} would replace the input "
                            f"{target}; choose an output folder outside the inputs")
        if folder.foreign(target):
            raise DemoError(f"--output-dir {folder.path}: {target} exists and was not written by agecli; "
                            "choose an empty or new output folder")
    for f in (PREDICTIONS, PARTIAL):
        if folder.foreign(folder.path / f):
            raise DemoError(f"--output-dir {folder.path}: {folder.path / f} exists and was not written by agecli")


def model_identity(path: Path) -> str:
    """A short sha256 of the model file: what --skip-existing compares."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def annotated_path(out_dir: Path, name: str) -> Path:
    """Where the annotated copy of `name` goes: the same relative path and name
    (`.jpg` appended when the name has no writable image extension)."""
    return out_dir / (name if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name + ".jpg")


def encode_image(rgb: np.ndarray, suffix: str) -> bytes:
    """The image encoded by file extension (JPEG quality 95)."""
    ok, buf = cv2.imencode(suffix.lower(), np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise OSError(f"cannot encode an image as {suffix}")
    return buf.tobytes()


def write_image(rgb: np.ndarray, path: Path) -> None:
    """Encode by extension and write atomically."""
    write_bytes(path, encode_image(rgb, path.suffix))


def encode_outputs(res: ImageResult, name: str, save_crops: bool) -> None:
    """Draw and encode the annotated copy (and the crops) into `res`, dropping the pixels:
    what a Ray actor sends back instead of the image."""
    from .drawing import annotate

    res.encoded = encode_image(annotate(res.image, res.faces), annotated_path(Path(), name).suffix)
    if save_crops and res.crops is not None:
        res.encoded_crops = [encode_image(c, ".jpg") for c in res.crops]
    res.image = res.crops = None


def _check_options(o: DemoOptions) -> None:
    if o.fmt not in ("csv", "jsonl"):
        raise DemoError(f"--format must be csv or jsonl, not {o.fmt!r}")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", o.device):
        raise DemoError(f"--device must be cpu, cuda or cuda:N, not {o.device!r}")
    if o.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise DemoError(f"--device {o.device}: CUDA is not available on this machine")
    if not math.isfinite(o.threshold) or not 0.0 < o.threshold < 1.0:
        raise DemoError("--threshold must be between 0 and 1")
    if o.max_side < 64 or o.batch_size < 1:
        raise DemoError("--max-side must be at least 64 and --batch-size at least 1")
    if o.expand is not None and not 0 <= o.expand <= 3:
        raise DemoError(f"--expand must be between 0 and 3, not {o.expand}")
    if o.workers is not None and o.workers < 1:
        raise DemoError("--workers must be 1 or more")
    if o.ray and Path(o.ray).exists():
        raise DemoError(f"--ray takes a cluster address (auto, ray://HOST:10001), not the input {o.ray!r}: "
                        "put inputs before --ray or write --ray=ADDRESS")
    if (o.save_crops or o.skip_existing) and o.output_dir is None:
        raise DemoError("--save-crops and --skip-existing need --output-dir")


def _open_runner(o: DemoOptions, log: Callable[[str], None], threads: int = 0):
    from .runners import open_runner

    try:
        path = o.model if o.model is not None else default_model_path()
        runner = open_runner(path, o.runner, o.device, o.batch_size, threads)
    except (MissingModelError, CheckpointError, ValueError) as e:
        raise DemoError(str(e)) from None
    if o.expand is not None and abs(o.expand - float(runner.meta["expand"])) > 1e-9:
        log(f"warning: --expand {o.expand} differs from the model's {runner.meta['expand']}: "
            "the crops differ from training, expect less accurate ages")
    return runner, path


def _prior_rows(folder: OutputFolder, settings: dict, log: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    """Rows an earlier run left for --skip-existing, kept only when the same model and
    settings produced them."""
    prior = read_rows(folder.path / PREDICTIONS)
    prior.update(read_rows(folder.path / PARTIAL))
    before = folder.state()
    changed = [k for k in settings if k != "model" and (before or {}).get(k) != settings[k]]
    if prior and changed:
        what = ("no record of the model that produced them" if before is None else
                ", ".join(f"{k} {before.get(k)} -> {settings[k]}" for k in changed))
        log(f"--skip-existing: the earlier rows in {folder.path} do not match this run ({what}); "
            "processing every image again")
        return {}
    return prior


def run_demo(o: DemoOptions, stdout: TextIO, log: Callable[[str], None] = lambda m: None,
             progress: Callable[[int, int | None], None] | None = None,
             timer: StageTimer | None = None) -> DemoSummary:
    """Run the whole demo; raises DemoError for setup problems, before any work."""
    from ..face.detector import FaceDetector

    _check_options(o)
    out_dir = o.output_dir
    folder = OutputFolder(out_dir) if out_dir is not None else None
    try:
        source = open_source(o.inputs, o.img_dir, o.img_list, o.video, o.every, exclude=out_dir)
    except SourceError as e:
        raise DemoError(str(e)) from None
    if o.ray is not None and source.live:
        raise DemoError("--ray reads files or a video, not the webcam")
    items = source.items
    if folder is not None and source.total is not None and not source.live and source.paths:
        listed = list(items)  # names only: nothing is decoded yet
        check_no_overwrite(folder, source, [i.name for i in listed])
        items = iter(listed)
    # With workers, each worker's detector runs on one thread and the age model here on the cores left.
    cores, workers = default_workers(), (default_workers() if o.workers is None else o.workers)
    runner, model_path = _open_runner(o, log, threads=0 if workers == 1 else max(1, cores - workers))
    timer = timer or StageTimer()
    detector = functools.partial(FaceDetector, score_threshold=o.threshold, max_side=o.max_side, threads=int(workers > 1))
    pipe = AgePipeline(runner, detector, o.expand, batch_faces=o.batch_size, keep_images=out_dir is not None,
                       keep_crops=o.save_crops, timer=timer, workers=workers)

    prior: dict[str, list[dict[str, Any]]] = {}
    if folder is not None:
        settings = {"model": str(Path(model_path).resolve()), "model_sha256": model_identity(Path(model_path)),
                    "threshold": o.threshold, "max_side": o.max_side, "expand": o.expand}
        if o.skip_existing:
            prior = _prior_rows(folder, settings, log)
        folder.claim(out_dir / STATE)
        write_text(out_dir / STATE, json.dumps(settings, indent=1) + "\n")

    def skip(name: str) -> bool:
        return name in prior and annotated_path(out_dir, name).exists()

    given: dict[str, str] = {}

    def remember(items):  # the pipeline knows output names; rows show the input as given
        for item in items:
            given[item.name] = item.given
            yield item

    results = _results(o, pipe, remember(items), source.live, skip if prior else None, log)  # connects to Ray first
    rows_out = RowWriter(stdout, o.fmt)
    partial_fh = partial = None
    if out_dir is not None:
        keep = bool(prior) and (out_dir / PARTIAL).is_file()
        partial_fh = open(out_dir / PARTIAL, "a" if keep else "w", newline="", encoding="utf-8")
        partial = csv.DictWriter(partial_fh, fieldnames=COLUMNS, lineterminator="\n")
        if not keep:
            partial.writeheader()
        elif not _ends_with_newline(out_dir / PARTIAL):
            partial_fh.write("\n")  # the last line was cut by the interruption: start a new one
    summary, order, new_rows = DemoSummary(), [], {}
    start = time.perf_counter()
    try:
        for res in results:
            order.append(res.name)
            if res.skipped:
                summary.skipped += 1
                rows_out.write(prior[res.name])
            else:
                _record(res, summary, log)
                copy = (annotated_path(out_dir, res.name)
                        if out_dir is not None and (res.image is not None or res.encoded is not None) else None)
                rows = face_rows(res, given.get(res.name), folder.rel(copy) if copy else None)
                with timer("write"):
                    rows_out.write(rows)
                    if partial is not None:
                        partial.writerows({k: "" if r[k] is None else r[k] for k in COLUMNS} for r in rows)
                        partial_fh.flush()
                # the copy comes after the rows: an existing copy means its rows were saved
                if copy is not None:
                    _write_outputs(res, folder, copy, o.save_crops, timer)
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
    for note in source.ended_early:
        log(f"warning: {note}")
        summary.ended_early += 1
    if folder is not None:
        _merge_predictions(folder, order, new_rows, prior)
    summary.seconds = time.perf_counter() - start
    summary.stages = dict(timer.seconds)
    return summary


def _results(o: DemoOptions, pipe: AgePipeline, items, live: bool, skip: Callable[[str], bool] | None,
             log: Callable[[str], None]) -> Iterator[ImageResult]:
    """The results in input order: from this machine's pipeline, or from a Ray cluster."""
    if o.ray is None:
        return pipe.run(items, skip=skip, live=live)
    from .ray_backend import RayError, connect, ray_results

    try:
        connect(o.ray, log)
    except RayError as e:
        raise DemoError(str(e)) from None
    return ray_results(items, o.model if o.model is not None else default_model_path(), runner=o.runner,
                       device=o.device, batch_size=o.batch_size, threshold=o.threshold, max_side=o.max_side,
                       expand=o.expand, keep_images=pipe.keep_images, save_crops=o.save_crops, skip=skip,
                       actors=o.workers)


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


def _write_outputs(res: ImageResult, folder: OutputFolder, copy: Path, save_crops: bool, timer: StageTimer) -> None:

    if res.encoded is None:
        with timer("draw"):
            encode_outputs(res, res.name, save_crops)
    with timer("write"):
        write_bytes(folder.claim(copy), res.encoded)
        stem = str(Path(res.name).with_suffix(""))
        for i, data in enumerate(res.encoded_crops or []):
            write_bytes(folder.claim(folder.path / CROPS_DIR / f"{stem}_face{i}.jpg"), data)
    res.encoded = res.encoded_crops = None


def _merge_predictions(folder: OutputFolder, order: list[str], new_rows: dict[str, list[dict[str, Any]]],
                       prior: dict[str, list[dict[str, Any]]]) -> None:
    """predictions.csv = this run's images in input order (new rows, or the kept rows
    of skipped images), written atomically; then the partial file goes."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for name in order:
        for r in new_rows.get(name) or prior.get(name, []):
            w.writerow({k: "" if r[k] is None else r[k] for k in COLUMNS})
    write_bytes(folder.claim(folder.path / PREDICTIONS), buf.getvalue().encode("utf-8"))
    (folder.path / PARTIAL).unlink(missing_ok=True)
