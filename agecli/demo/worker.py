"""The whole age pipeline in one process, for `demo --workers N` and each `--ray` actor.

A worker holds one detector and one age model (one thread each) and takes chunks of
inputs: decode, detect and align every input, run the age model over the chunk's crops
together, draw and encode the annotated copies. The main process only writes what
comes back, so nothing it does bounds the speed as workers are added.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..infer.pipeline import DEFAULT_ATTRIBUTES, AgePipeline, ImageResult, StageTimer
from ..infer.settings import InferSettings
from ..infer.sources import Item

MAX_CHUNK = 16  # inputs a worker takes at once; their crops share age-model batches


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker needs to build its pipeline (it pickles: sent to each process):
    the run's `InferSettings` (its attributes as the main process resolved them) and
    what the worker does with the results."""

    infer: InferSettings = field(default_factory=InferSettings)
    keep_images: bool = False
    save_crops: bool = False
    labels: str = "full"  # the annotated copies' labels: full, age or none (drawing.LABELS)
    detector_model: bytes | None = None  # the face detector's network (None: the package's float one)


class PipelineWorker:
    """One detector and one age model, kept for the worker's life."""

    def __init__(self, model: Path, settings: WorkerSettings) -> None:
        import cv2

        from ..face.detector import FaceDetector
        from ..infer.runners import open_runner

        cv2.setNumThreads(1)  # one process per core: no thread pools competing inside it
        s, i = settings, settings.infer
        self.settings = s
        self.timer = StageTimer()
        self.pipe = AgePipeline(open_runner(model, i.runner, i.device, i.batch_size, threads=1, providers=i.providers),
                                FaceDetector(score_threshold=i.det_threshold, max_side=i.max_side, threads=1,
                                             model=s.detector_model),
                                i.expand, batch_faces=i.batch_size, max_pending=MAX_CHUNK,
                                keep_images=s.keep_images, keep_crops=s.save_crops, timer=self.timer,
                                attributes=i.attributes if i.attributes is not None else DEFAULT_ATTRIBUTES)

    def run(self, items: list[Item], skipped: Container[str] = ()) -> list[ImageResult]:
        """Results for one chunk, in order, annotated copies encoded (pixels dropped)."""
        from .outputs import encode_outputs

        out = []
        for res in self.pipe.run(items, skip=skipped.__contains__):
            if res.image is not None:
                with self.timer("draw"):
                    encode_outputs(res, res.name, self.settings.save_crops, self.settings.labels)
            out.append(res)
        return out


_worker: dict = {}  # this process's PipelineWorker


def _start(model: Path, settings: WorkerSettings) -> None:
    _worker["w"] = PipelineWorker(model, settings)


def _run_chunk(chunk: list[tuple[Item, bool]]) -> tuple[list[ImageResult], dict[str, float]]:
    w: PipelineWorker = _worker["w"]
    w.timer.seconds.clear()
    results = w.run([item for item, _ in chunk], {item.name for item, skip in chunk if skip})
    return results, dict(w.timer.seconds)


def chunk_size(total: int | None, workers: int) -> int:
    """Inputs per chunk: up to MAX_CHUNK, but small enough that a short list still gives
    every worker several chunks (a worker left idle is lost speed)."""
    if total is None:
        return MAX_CHUNK
    return max(1, min(MAX_CHUNK, math.ceil(total / (8 * workers))))


def _chunks(items: Iterable[Item], size: int, skip: Callable[[str], bool] | None) -> Iterator[list[tuple[Item, bool]]]:
    chunk: list[tuple[Item, bool]] = []
    for item in items:
        chunk.append((item, bool(skip and skip(item.name))))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def pool_results(items: Iterable[Item], model: Path, settings: WorkerSettings, workers: int,
                 total: int | None = None, skip: Callable[[str], bool] | None = None,
                 timer: StageTimer | None = None) -> Iterator[ImageResult]:
    """Results for `items`, in input order, from `workers` local processes; stage times
    (summed over the workers) go to `timer`. Memory stays bounded: a few chunks per
    worker are in flight."""
    from ..parallel import ordered_map

    chunks = _chunks(items, chunk_size(total, workers), skip)
    for results, seconds in ordered_map(_run_chunk, chunks, workers, _start, (Path(os.path.abspath(model)), settings),
                                        window=2 * workers):
        if timer is not None:
            for stage, sec in seconds.items():
                timer.seconds[stage] += sec
        yield from results
