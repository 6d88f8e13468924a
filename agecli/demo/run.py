"""`agecli demo`: sources -> the AgeEstimator's pipeline -> rows on stdout, annotated
copies and predictions.csv. The jobs live in their own modules: the model and detector
in `agecli.api` (below this package), rows in `rows` and their formats in `formats`,
files and the output folder's safety in `outputs`, resume bookkeeping in `resume`,
tracking in `infer.tracks`, reading and writing video in `video`; this module checks
the options and runs the loops: images (here, in worker processes or on a Ray cluster
through `ray_backend`), or a video or the webcam frame after frame, its faces tracked
(`_run_video`)."""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TextIO

import numpy as np

from ..atomic import write_bytes, write_text
from ..errors import UsageError
from ..infer.drawing import LABELS
from ..infer.pipeline import ATTRIBUTES, ImageResult, StageTimer
from ..infer.settings import InferSettings
from ..infer.sources import Item, Source, SourceError, open_source
from ..model.meta import file_hash
from ..parallel import default_workers
from .formats import FORMATS, format_names
from .outputs import (OUTPUT_DIR_KEY, STATE, TRACK_CROPS, OutputFolder, annotated_path, check_no_overwrite,
                      check_video_outputs, encode_image, track_crop_path, tracks_paths, write_outputs)
from .rows import TRACK_COLUMNS, RowWriter, face_rows, track_rows

logger = logging.getLogger(__name__)


class DemoError(UsageError):
    """A setup problem (bad option, unusable input, an output that would replace a user's
    file): exit code 2."""


@dataclass
class DemoOptions:
    """Everything `agecli demo` takes; see the CLI help for each option. How the model and
    the detector run (runner, device, threshold, max side, expand, batch size,
    attributes, int8, detector, providers) is `settings`, the `InferSettings` the API
    and `val` take too."""

    inputs: list[str] = field(default_factory=list)
    img_dir: Path | None = None
    img_list: str | None = None
    video: Path | None = None
    every: int = 1
    model: Path | None = None
    settings: InferSettings = field(default_factory=InferSettings)
    output_dir: Path | None = None
    save_crops: bool = False
    skip_existing: bool = False
    fmt: str = "csv"
    webcam: bool = False
    workers: int | None = None  # processes each running the whole pipeline; None: default_worker_count
    ray: str | None = None  # None: run here; "local" or an address: on a Ray cluster (see ray_backend)
    labels: str = "full"  # the annotated copies' labels: full ("34 ±4"), age ("34") or none
    save_frames: bool = False  # a video's annotated frames as JPEGs too, beside the annotated video
    track_gap: float = 1.0  # seconds a face may go unseen and keep its track


@dataclass
class DemoSummary:
    """Counts of a run (images = decoded inputs, skipped not included) and stage timings."""

    images: int = 0
    faces: int = 0
    no_face: int = 0
    unreadable: int = 0
    skipped: int = 0
    ended_early: int = 0  # videos that stopped before their declared end
    stdout_closed: bool = False  # the reader closed stdout; with --output-dir the run went on
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    small_faces: int = 0
    decades: Counter[int] = field(default_factory=Counter)  # faces per decade of age (30: 30-39)
    tracks: list = field(default_factory=list)  # a video's or webcam's people (tracks.TrackSummary)
    video_out: Path | None = None  # the annotated video written


# A worker costs about a second to start (Python, its models, their first run); below
# this many inputs each, one process using every core finishes first (bench_demo.py).
MIN_INPUTS_PER_WORKER = 24


def default_worker_count(total: int | None, device: str = "cpu") -> int:
    """One worker per core, but not for a handful of inputs, and one process for a GPU
    (one model on the device, not one per core)."""
    if device.startswith("cuda"):
        return 1
    cores = default_workers()
    return cores if total is None else max(1, min(cores, total // MIN_INPUTS_PER_WORKER))


def _check_options(o: DemoOptions) -> None:
    if o.fmt not in FORMATS:
        raise DemoError(f"`fmt` must be {format_names()}, not {o.fmt!r}", setting="fmt")
    if o.workers is not None and o.workers < 1:
        raise DemoError("`workers` must be 1 or more", setting="workers")
    if o.ray and Path(o.ray).exists():
        raise DemoError(f"`ray` takes a cluster address (auto, ray://HOST:10001), not the input {o.ray!r}: "
                        "put inputs before `ray` or write `ray`=ADDRESS", setting="ray")
    if o.labels not in LABELS:
        raise DemoError(f"`labels` must be full, age or none, not {o.labels!r}", setting="labels")
    if (o.save_crops or o.skip_existing or o.save_frames) and o.output_dir is None:
        raise DemoError("`save_crops`, `save_frames` and `skip_existing` need `output_dir`", setting="output_dir")
    moving = o.video is not None or o.webcam
    if o.save_frames and not moving:
        raise DemoError("`save_frames` is for `video` and `webcam`", setting="save_frames")
    if moving and o.save_crops and not o.save_frames:
        raise DemoError("`save_crops` with a video saves the crops of the frames kept by `save_frames`; add it "
                        f"(each track's best crop is in {TRACK_CROPS}/ anyway)", setting="save_frames")
    if not math.isfinite(o.track_gap) or o.track_gap <= 0:
        raise DemoError("`track_gap` must be a number of seconds above 0", setting="track_gap")


def run_demo(o: DemoOptions, stdout: TextIO | None, progress: Callable[[int, int | None], None] | None = None,
             timer: StageTimer | None = None) -> DemoSummary:
    """Run the whole demo; raises DemoError / AgecliError for setup problems, before any work.
    `stdout` None keeps the rows off any stream (with an output folder they are in its
    predictions.csv): the CLI's choice for a terminal."""
    _check_options(o)
    folder = OutputFolder(o.output_dir) if o.output_dir is not None else None
    with folder.lock() if folder is not None else contextlib.nullcontext():
        return _run(o, folder, stdout, progress, timer)


def _run(o: DemoOptions, folder: OutputFolder | None, stdout: TextIO | None,
         progress: Callable[[int, int | None], None] | None, timer: StageTimer | None) -> DemoSummary:
    from ..api import AgeEstimator
    from .resume import PredictionsLog, prior_rows

    out_dir = o.output_dir
    try:
        source = open_source(o.inputs, o.img_dir, o.img_list, o.video, o.every, exclude=out_dir, webcam=o.webcam)
    except SourceError as e:
        raise DemoError(str(e), setting=e.setting) from None
    if o.ray is not None and source.video is not None:
        raise DemoError("`ray` reads image files; a video or the webcam is read here, frame after frame, "
                        "its faces tracked from one frame to the next", setting="ray")
    items = source.items
    if folder is not None and source.video is None and source.paths:
        listed = list(items)  # names only: nothing is decoded yet
        check_no_overwrite(folder, source, [i.name for i in listed], error=DemoError, save_crops=o.save_crops)
        items = iter(listed)
    workers = 1 if source.video is not None else (o.workers or default_worker_count(source.total, o.settings.device))
    if source.total is not None:
        workers = max(1, min(workers, source.total))  # no process started for nothing to do
    est = AgeEstimator(o.model, settings=o.settings)
    timer = timer or StageTimer()
    if source.video is not None:
        return _run_video(o, folder, source, est, stdout, progress, timer)

    plog = None
    if folder is not None:
        settings = _settings(est, o)
        prior = prior_rows(folder, settings) if o.skip_existing else {}  # read before this run's state replaces it
        _write_state(folder, settings)
        plog = PredictionsLog(folder, prior)
    skip = plog.done_before if plog is not None and plog.prior else None

    given: dict[str, str] = {}  # inputs in flight: output name -> the input as given (the rows show it)

    def remember(items):
        for item in items:
            given[item.name] = item.given
            yield item

    results = _results(o, est, remember(items), source, workers, skip, timer)  # connects to Ray first
    # with an output folder, a closed stdout (`| head`) stops the rows, not the run: the
    # folder is finished (copies, predictions.csv), never left half-written
    rows_out = RowWriter(stdout, o.fmt, keep_going=folder is not None)
    summary, done = DemoSummary(), 0
    start = time.perf_counter()
    try:
        for res in results:
            done += 1
            shown = given.pop(res.name, None)
            if res.skipped:
                summary.skipped += 1
                rows_out.write(plog.kept(res.name))
            else:
                _record(res, summary)
                copy = (annotated_path(out_dir, res.name)
                        if out_dir is not None and (res.image is not None or res.encoded is not None) else None)
                rows = face_rows(res, shown, copy.as_posix() if copy else None)
                with timer("write"):
                    rows_out.write(rows)
                    if plog is not None:
                        plog.record(res.name, rows)
                if rows_out.closed and not summary.stdout_closed:
                    summary.stdout_closed = True
                    logger.info("stdout was closed by the reader: no more rows there; finishing %s", out_dir)
                # the copy comes after the rows: an existing copy means its rows were saved
                if copy is not None:
                    write_outputs(res, folder, copy, o.save_crops, timer, o.labels)
            if progress:
                progress(done, source.total)
    finally:
        if plog is not None:
            plog.close()
    if plog is not None:
        plog.merge()
    summary.seconds = time.perf_counter() - start
    summary.stages = dict(timer.seconds)
    return summary


def _settings(est, o: DemoOptions) -> dict:
    """The model and settings behind a run's rows: what --skip-existing compares."""
    settings = {"model": str(Path(est.model_path).resolve()), "model_sha256": file_hash(Path(est.model_path)),
                "threshold": o.settings.det_threshold, "max_side": o.settings.max_side, "expand": o.settings.expand,
                "attributes": ",".join(a for a in ATTRIBUTES if a in est.attributes)}
    if est.detector_model is not None:  # only then: folders of float runs keep resuming
        settings["detector_sha256"] = file_hash(est.detector_model)
    return settings


def _write_state(folder: OutputFolder, settings: dict) -> None:
    """Record the settings and where this run's rows say the copies are (resume reads
    the names back from them)."""
    folder.claim(folder.path / STATE)
    write_text(folder.path / STATE, json.dumps({**settings, OUTPUT_DIR_KEY: folder.path.as_posix()}, indent=1) + "\n")


def _run_video(o: DemoOptions, folder: OutputFolder | None, source: Source, est, stdout: TextIO | None,
               progress: Callable[[int, int | None], None] | None, timer: StageTimer) -> DemoSummary:
    """A video or the webcam, frame after frame in this process (tracking needs the
    frames in order; a reader thread decodes ahead): every face's row carries its track
    and the track's running age. With an output folder: the annotated video (every
    frame; those between processed ones keep the last boxes), tracks.csv with each
    track's best face crop, and with --save-frames the annotated frames as JPEGs."""
    from ..infer.drawing import annotate
    from .resume import PredictionsLog
    from ..infer.tracks import Tracker
    from .video import READ_AHEAD, AnnotatedVideo, read_ahead, video_output_path

    video, out_dir = source.video, o.output_dir
    if o.workers not in (None, 1):
        logger.info("`workers`: a video runs in this process (its faces are tracked from frame to frame)")
    movie_path = plog = movie = None
    if folder is not None:
        movie_path = video_output_path(out_dir, video.name)
        tracks_files = [path for path, _ in tracks_paths(out_dir, o.fmt)]
        check_video_outputs(folder, o.video, [movie_path, *tracks_files],
                            [out_dir / TRACK_CROPS] + [out_dir / video.name] * o.save_frames, error=DemoError)
        if o.skip_existing:
            logger.info("`skip_existing`: a video is tracked from its first frame; processing %s again", video.name)
        _write_state(folder, _settings(est, o))
        plog = PredictionsLog(folder, {})
        movie = AnnotatedVideo(folder.claim(movie_path), video.fps)
    tracker = Tracker(video.fps, o.track_gap)
    pipe = est.pipeline(keep_crops=True, timer=timer)
    rows_out = RowWriter(stdout, o.fmt, keep_going=folder is not None)
    summary, done, shown = DemoSummary(), 0, []
    start = time.perf_counter()
    # a webcam's frames are wanted fresh: one waiting, not a queue of old ones
    frames = read_ahead(video.frames(decode_all=movie is not None), depth=1 if source.live else READ_AHEAD)
    read_all = False
    try:
        try:
            for index, rgb, processed in frames:
                if processed:
                    name = video.frame_name(index)
                    res = next(pipe.run([Item(name, partial(np.asarray, rgb))], live=True))
                    tracker.update(index, res.faces, res.crops)
                    shown = res.faces
                    _record(res, summary)
                    copy = annotated_path(out_dir, name) if o.save_frames else movie_path
                    rows = face_rows(res, name, copy.as_posix() if copy else None)
                    with timer("write"):
                        rows_out.write(rows)
                        if plog is not None:
                            plog.record(name, rows)
                    if rows_out.closed and not summary.stdout_closed:
                        summary.stdout_closed = True
                        logger.info("stdout was closed by the reader: no more rows there; finishing %s", out_dir)
                    if o.save_frames:
                        res.image = rgb
                        write_outputs(res, folder, copy, o.save_crops, timer, o.labels)
                    done += 1
                    if progress:
                        progress(done, source.total)
                if movie is not None:
                    with timer("draw"):
                        drawn = annotate(rgb, shown, o.labels) if shown else rgb
                    with timer("write"):
                        movie.write(drawn)
            read_all = not video.ended_early
        except KeyboardInterrupt:
            if not source.live:
                raise
            logger.info("webcam stopped")  # Ctrl-C is how a live run ends: finish the outputs normally
            read_all = True
    finally:
        frames.close()
        if plog is not None:
            plog.close()
        if movie is not None and not read_all:
            movie.discard()  # never a video of part of the input under its final name
    for note in video.ended_early:
        logger.warning("%s", note)
        summary.ended_early += 1
    summary.tracks = tracker.summaries()
    if folder is not None:
        if read_all:
            summary.video_out = movie_path if movie.finish() else None
        else:
            logger.warning("%s not written: the video could not be read to its end (the rows of the frames read "
                           "are in %s)", movie_path, out_dir / "predictions.csv")
        _write_tracks(folder, summary.tracks, o.fmt)
        plog.merge()
    summary.seconds = time.perf_counter() - start
    summary.stages = dict(timer.seconds)
    return summary


def _write_tracks(folder: OutputFolder, tracks: list, fmt: str) -> None:
    """tracks.csv (and the same table in another --format: tracks.jsonl) and each track's best face crop."""
    crops = {}
    for t in tracks:
        if t.crop is not None:
            path = track_crop_path(folder.path, t.track)
            write_bytes(folder.claim(path), encode_image(t.crop, ".jpg"))
            crops[t.track] = path.as_posix()
    crop_dir = folder.path / TRACK_CROPS
    for old in crop_dir.glob("track_*.jpg") if crop_dir.is_dir() else ():
        if old.as_posix() not in crops.values() and not folder.foreign(old):
            old.unlink()  # an earlier run's track that this run does not have
    rows = track_rows(tracks, crops)
    for path, kind in tracks_paths(folder.path, fmt):
        write_text(folder.claim(path), FORMATS[kind].table(rows, TRACK_COLUMNS))


def _results(o: DemoOptions, est, items, source, workers: int, skip: Callable[[str], bool] | None,
             timer: StageTimer) -> Iterator[ImageResult]:
    """The results in input order: from this process, from `workers` local processes,
    or from a Ray cluster."""
    from .worker import WorkerSettings, pool_results

    # the workers get what the estimator resolved: its attributes, and the detector's bytes (Ray nodes lack the file)
    infer = replace(o.settings, attributes=est.attributes, int8=False, detector=None)
    settings = WorkerSettings(infer=infer, keep_images=o.output_dir is not None, save_crops=o.save_crops,
                              labels=o.labels,
                              detector_model=est.detector_model.read_bytes() if est.detector_model else None)
    if o.ray is not None:
        from .ray_backend import RayError, connect, ray_results

        try:
            connect(o.ray, logger.info)
        except RayError as e:
            raise DemoError(str(e), setting=e.setting) from None
        return ray_results(items, est.model_path, settings, skip=skip, actors=o.workers)
    if workers > 1:
        return pool_results(items, est.model_path, settings, workers, source.total, skip, timer)
    pipe = est.pipeline(keep_images=settings.keep_images, keep_crops=o.save_crops, timer=timer)
    return pipe.run(items, skip=skip)


def _record(res: ImageResult, summary: DemoSummary) -> None:
    if res.error == "unreadable":
        summary.unreadable += 1
        logger.warning("%s: %s", res.name, res.detail)
        return
    summary.images += 1
    summary.faces += len(res.faces)
    summary.no_face += res.error == "no_face"
    summary.small_faces += sum(f.small_face for f in res.faces)
    summary.decades.update(int(max(f.age, 0.0) // 10) * 10 for f in res.faces)
