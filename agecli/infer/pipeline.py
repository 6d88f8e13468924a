"""Image -> faces -> aligned crops -> ages, with crops of many images batched together
into the age model. Time spent in each stage is collected for `bench/`."""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import ImageError, load_rgb
from ..errors import OptionError
from ..face.align import align, crop_face
from ..face.detector import Face, FaceDetector, is_small_face
from ..model.meta import ModelMeta
from .sources import Item

STAGES = ("decode", "detect", "align", "age", "draw", "write")
MAX_PENDING_PIXELS = 60_000_000  # kept images waiting for a batch: ~180 MB of RGB at most


class StageTimer:
    """Seconds spent per stage: `with timer("detect"): ...`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


@dataclass
class FaceResult:
    """One face: its age estimate and where it is."""

    age: float
    std: float
    box: np.ndarray  # x1, y1, x2, y2 in the image
    landmarks: np.ndarray = field(repr=False)  # (5, 2)
    score: float
    gender: str | None = None
    gender_prob: float | None = None
    ethnicity: str | None = None
    ethnicity_prob: float | None = None
    distribution: np.ndarray | None = field(default=None, repr=False)  # per age bin (distribution heads)
    # in a video or webcam (tracks.Tracker): the person's track and its running age and std
    track: int | None = None
    track_age: float | None = None
    track_std: float | None = None

    @property
    def small_face(self) -> bool:
        """Too small (box under SMALL_FACE_PX) for a reliable age: reported, but flagged."""
        return is_small_face(self.box)

    def to_dict(self) -> dict[str, Any]:
        """The face as plain Python types (lists, floats, str, None), ready for json.dumps:
        numpy arrays and numpy scalars are not JSON-serialisable."""
        def num(v: Any) -> float | None:
            return None if v is None else float(v)

        return {"age": float(self.age), "std": float(self.std), "box": [float(v) for v in self.box],
                "landmarks": [[float(x), float(y)] for x, y in np.asarray(self.landmarks).reshape(-1, 2)],
                "score": float(self.score), "small_face": bool(self.small_face),
                "gender": self.gender, "gender_prob": num(self.gender_prob),
                "ethnicity": self.ethnicity, "ethnicity_prob": num(self.ethnicity_prob),
                "distribution": None if self.distribution is None else [float(v) for v in self.distribution],
                "track": self.track, "track_age": num(self.track_age), "track_std": num(self.track_std)}


@dataclass
class ImageResult:
    """One input: its faces, or why it has none. `image` is kept only when asked for."""

    name: str
    faces: list[FaceResult] = field(default_factory=list)
    error: str | None = None  # "unreadable" | "no_face" | None
    detail: str = ""  # the reason behind an error, for the log
    image: np.ndarray | None = None
    crops: np.ndarray | None = None
    skipped: bool = False
    # the annotated copy and the crops already encoded (by a Ray actor), to be written as they are
    encoded: bytes | None = None
    encoded_crops: list[bytes] | None = None


def crop_faces(rgb: np.ndarray, faces: list[Face], size: int, expand: float, template=None) -> np.ndarray:
    """The aligned model input of each face, (N, size, size, 3) uint8 RGB: box-aligned,
    or fitted to `template` (a template-crop model's `meta.template`)."""
    h, w = rgb.shape[:2]
    crops = np.zeros((len(faces), size, size, 3), np.uint8)
    for i, f in enumerate(faces):
        p = align(f, h, w, template)
        crops[i] = crop_face(rgb, p.deg, p.box, expand, size)
    return crops


def _label(probs: np.ndarray, names: tuple[str, ...]) -> tuple[str, float]:
    k = int(np.argmax(probs))
    return (names[k] if k < len(names) else str(k)), float(probs[k])


@dataclass
class Prepared:
    """One input after decode, detect and align, waiting for the age model."""

    result: ImageResult
    faces: list[Face]
    crops: np.ndarray | None


ATTRIBUTES = ("age", "gender", "ethnicity")
# Ethnicity is asked for, never given by default: a sensitive attribute, and the one a
# model learns worst from collections labelled by where they came from.
DEFAULT_ATTRIBUTES = frozenset({"age", "gender"})


def parse_attributes(value: str | Iterable[str] | None) -> frozenset[str]:
    """`age,gender,ethnicity` (text or any iterable) as a set; age is always included.
    None gives the default (age, gender). OptionError (a ValueError) names an unknown attribute."""
    if value is None:
        return DEFAULT_ATTRIBUTES
    names = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in ATTRIBUTES]
    if unknown:
        raise OptionError(f"unknown attribute {unknown[0]!r}: choose from {', '.join(ATTRIBUTES)}", setting="attributes")
    return frozenset(names) | {"age"}


class AgePipeline:
    """Detect, align and crop faces, and run the age model over batches of crops.

    `runner` is any object with `predict(crops) -> dict` and `meta` (a `ModelMeta`, or a
    dict with img_size and expand), see `runners.Runner`; `detector` any object with
    `detect(rgb) -> [Face]`. `expand` None crops with the model's own.
    Results come back in input order. (Several processes: `worker.pool_results`.)
    `attributes` says what each face result carries besides the age (gender, ethnicity).
    """

    def __init__(self, runner, detector, expand: float | None = None, batch_faces: int = 64,
                 max_pending: int = 16, keep_images: bool = False, keep_crops: bool = False,
                 timer: StageTimer | None = None, attributes: frozenset[str] = DEFAULT_ATTRIBUTES) -> None:
        self.runner = runner
        self.detector = detector
        meta = ModelMeta.from_dict(runner.meta)
        self.size = meta.img_size
        self.template = meta.template
        self.expand, _ = meta.crop_expand(expand)  # the caller (AgeEstimator) warns of an override
        self.batch_faces = batch_faces
        self.max_pending = max_pending
        self.keep_images = keep_images
        self.keep_crops = keep_crops
        self.timer = timer or StageTimer()
        self.attributes = attributes

    def faces_and_crops(self, rgb: np.ndarray) -> tuple[list[Face], np.ndarray]:
        """Detected faces and their aligned crops (N, S, S, 3) uint8 RGB."""
        with self.timer("detect"):
            faces = self.detector.detect(rgb)
        with self.timer("align"):
            crops = crop_faces(rgb, faces, self.size, self.expand, self.template)
        return faces, crops

    def _prepare(self, item: Item) -> Prepared:
        """Decode, detect and align one input; an unreadable one comes back with its error."""
        result = ImageResult(item.name)
        try:
            with self.timer("decode"):
                rgb = item.load()
        except ImageError as e:
            result.error, result.detail = "unreadable", str(e)
            return Prepared(result, [], None)
        faces, crops = self.faces_and_crops(rgb)
        if self.keep_images:
            result.image = rgb
        if not faces:
            result.error = "no_face"
        return Prepared(result, faces, crops)

    def _finish(self, pending: list[Prepared]) -> list[ImageResult]:
        from ..vocab import GENDERS, RACES

        batches = [p.crops for p in pending if p.faces]
        if batches:
            with self.timer("age"):
                out = self.runner.predict(np.concatenate(batches))
        start = 0
        for p in pending:
            for j, f in enumerate(p.faces):
                k = start + j
                fr = FaceResult(age=float(out["age"][k]), std=float(out["std"][k]), box=np.asarray(f.box, float),
                                landmarks=np.asarray(f.landmarks, float), score=float(f.score))
                if "probs" in out:
                    fr.distribution = out["probs"][k]
                if "gender_probs" in out and "gender" in self.attributes:
                    fr.gender, fr.gender_prob = _label(out["gender_probs"][k], GENDERS)
                if "race_probs" in out and "ethnicity" in self.attributes:
                    fr.ethnicity, fr.ethnicity_prob = _label(out["race_probs"][k], RACES)
                p.result.faces.append(fr)
            start += len(p.faces)
            if self.keep_crops and p.faces:
                p.result.crops = p.crops
        return [p.result for p in pending]

    def run(self, items: Iterable[Item], skip: Callable[[str], bool] | None = None,
            live: bool = False) -> Iterator[ImageResult]:
        """Results for `items` in order. Crops are pooled until `batch_faces` faces or
        `max_pending` images (or MAX_PENDING_PIXELS of kept images) wait; every image
        when `live`. Items for which `skip` is true come back with `skipped=True`, undecoded."""
        pending: list[Prepared] = []
        n_faces = n_pixels = 0
        for item in items:
            p = (Prepared(ImageResult(item.name, skipped=True), [], None) if skip is not None and skip(item.name)
                 else self._prepare(item))
            pending.append(p)
            n_faces += len(p.faces)
            if p.result.image is not None:
                n_pixels += p.result.image.shape[0] * p.result.image.shape[1]
            if (live or n_faces >= self.batch_faces or len(pending) >= self.max_pending
                    or n_pixels >= MAX_PENDING_PIXELS):
                yield from self._finish(pending)
                pending, n_faces, n_pixels = [], 0, 0
        if pending:
            yield from self._finish(pending)


def face_crops(images: Iterable[Path], detector: FaceDetector, size: int, expand: float,
               limit: int = 32, template=None) -> np.ndarray:
    """Aligned crops of up to `limit` faces found in image files (unreadable files skipped)."""
    crops: list[np.ndarray] = []
    for path in images:
        try:
            rgb = load_rgb(path)
        except ImageError:
            continue
        crops.extend(crop_faces(rgb, detector.detect(rgb), size, expand, template))
        if len(crops) >= limit:
            break
    return np.stack(crops[:limit]) if crops else np.zeros((0, size, size, 3), np.uint8)
