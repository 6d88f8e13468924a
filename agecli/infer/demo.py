"""`agecli demo`: sources -> the AgeEstimator's pipeline -> rows on stdout, annotated
copies and predictions.csv. The jobs live in their own modules: the model and detector
in `agecli.api`, rows in `rows`, files in `outputs`, resume bookkeeping in `resume`;
this module checks the options and runs the loop."""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..errors import UsageError
from .pipeline import ImageResult, StageTimer
from .rows import RowWriter, face_rows
from .sources import SourceError, open_source

logger = logging.getLogger(__name__)


class DemoError(UsageError):
    """A setup problem (bad option, unusable input): exit code 2."""


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
    webcam: bool = False


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


def _check_options(o: DemoOptions) -> None:
    if o.fmt not in ("csv", "jsonl"):
        raise DemoError(f"--format must be csv or jsonl, not {o.fmt!r}")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", o.device):
        raise DemoError(f"--device must be cpu, cuda or cuda:N, not {o.device!r}")
    if (o.save_crops or o.skip_existing) and o.output_dir is None:
        raise DemoError("--save-crops and --skip-existing need --output-dir")


def run_demo(o: DemoOptions, stdout: TextIO, progress: Callable[[int, int | None], None] | None = None,
             timer: StageTimer | None = None) -> DemoSummary:
    """Run the whole demo; raises DemoError / AgecliError for setup problems, before any work."""
    from ..api import AgeEstimator
    from .outputs import check_output_dir, write_outputs
    from .resume import PredictionsLog

    _check_options(o)
    out_dir = o.output_dir
    if out_dir is not None:
        check_output_dir(out_dir)
    try:
        source = open_source(o.inputs, o.img_dir, o.img_list, o.video, o.every, exclude=out_dir, webcam=o.webcam)
    except SourceError as e:
        raise DemoError(str(e)) from None
    est = AgeEstimator(o.model, runner=o.runner, device=o.device, det_threshold=o.threshold,
                       max_side=o.max_side, expand=o.expand, batch_size=o.batch_size)
    timer = timer or StageTimer()
    pipe = est.pipeline(keep_images=out_dir is not None, keep_crops=o.save_crops, timer=timer)
    plog = PredictionsLog(out_dir, o.skip_existing) if out_dir is not None else None
    skip = plog.done_before if plog is not None and o.skip_existing else None
    rows_out = RowWriter(stdout, o.fmt)
    summary, done = DemoSummary(), 0
    start = time.perf_counter()
    try:
        for res in pipe.run(source.items, skip=skip, live=source.live):
            done += 1
            if res.skipped:
                summary.skipped += 1
                rows_out.write(plog.kept(res.name))
            else:
                _record(res, summary)
                rows = face_rows(res)
                with timer("write"):
                    rows_out.write(rows)
                    if plog is not None:
                        plog.record(res.name, rows)
                # the copy comes after the rows: an existing copy means its rows were saved
                if out_dir is not None and res.image is not None:
                    write_outputs(res, out_dir, o.save_crops, timer)
            if progress:
                progress(done, source.total)
    except KeyboardInterrupt:
        if not source.live:
            raise
        logger.info("webcam stopped")  # Ctrl-C is how a live run ends: finish the outputs normally
    finally:
        if plog is not None:
            plog.close()
    if plog is not None:
        plog.merge()
    summary.seconds = time.perf_counter() - start
    summary.stages = dict(timer.seconds)
    return summary


def _record(res: ImageResult, summary: DemoSummary) -> None:
    if res.error == "unreadable":
        summary.unreadable += 1
        logger.warning("%s: %s", res.name, res.detail)
        return
    summary.images += 1
    summary.faces += len(res.faces)
    summary.no_face += res.error == "no_face"
