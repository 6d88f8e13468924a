"""The Python API: the ages of the faces in an image, without the command line.

    from agecli import AgeEstimator, draw
    est = AgeEstimator()                       # the shipped model, ONNX Runtime on CPU
    faces = est.predict("group.jpg")           # or an RGB/BGR numpy array, or a PIL image
    for f in faces:
        print(f.age, f.std, f.box, f.score)
    annotated = draw("group.jpg", faces)       # RGB array with a box and "34 ±4" per face

    tracking = est.track(frames, fps=25)       # a video: any iterable of frames, in order
    for faces in tracking:                     # each frame's faces, with f.track and f.track_age
        ...
    for t in tracking.tracks:                  # then one summary per person
        print(t.track, t.age, t.std, t.first_time, t.last_time)

`AgeEstimator` only wires the pieces (model runner, face detector, the one crop
function) the way `agecli demo` and `agecli val` use them: the commands are thin users
of this module. Nothing here imports torch unless a .pth model is asked for; errors are
the typed ones in `agecli.errors`; messages go to the `logging` module, never stdout.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from .data.images import ImageError, load_rgb
from .errors import MissingModelError, ModelError, OptionError, UsageError
from .face.detector import FaceDetector
from .infer.default_model import INT8_MODEL_NAME, default_model_path, int8_detector_path, int8_model_path, stale_int8
from .infer.pipeline import DEFAULT_ATTRIBUTES, AgePipeline, FaceResult, StageTimer
from .infer.runners import Runner, open_runner, runner_kind
from .infer.settings import InferSettings
from .infer.sources import Item
from .infer.tracks import Tracker, TrackSummary
from .model.meta import ModelMeta

if TYPE_CHECKING:
    from PIL.Image import Image

logger = logging.getLogger(__name__)
COLORS = ("rgb", "bgr")
ImageLike = Union[str, Path, np.ndarray, "Image"]
__all__ = ["AgeEstimator", "FaceResult", "Tracking", "TrackSummary", "draw", "to_rgb"]


def to_rgb(image: ImageLike, color: str = "rgb") -> np.ndarray:
    """Any supported image as an RGB uint8 (H, W, 3) array.

    A path is decoded (EXIF orientation applied; raises ImageError when unreadable); a
    PIL image is converted to RGB; a uint8 numpy array is read in `color` order ("rgb",
    or "bgr" as OpenCV gives it), gray (H, W) and 4-channel arrays are accepted."""
    _check_color(color)
    if isinstance(image, (str, Path)):
        return load_rgb(image)
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float gray: scaled, not clipped
            image = np.asarray(image)
        else:
            return np.array(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a path, a numpy array or a PIL image, not {type(image).__name__}")
    arr = _to_uint8(image)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise OptionError(f"`image` array must be (H, W), (H, W, 3) or (H, W, 4), not {image.shape}", setting="image")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = arr[:, :, :3]
    return np.ascontiguousarray(arr[:, :, ::-1] if color == "bgr" else arr)


def _check_color(color: str) -> None:
    """OptionError (a ValueError) unless `color` is one of COLORS."""
    if color not in COLORS:
        raise OptionError(f"`color` must be 'rgb' or 'bgr', not {color!r}", setting="color")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """8 bits per channel, scaled as the file reader scales a 16-bit photo: integers
    other than uint8 as 16-bit values (their top 8 bits), floats in 0-1 times 255
    (floats beyond 1 are read as 0-255)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.integer):
        return (np.clip(image.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        f = np.nan_to_num(image.astype(np.float64))
        return np.clip(np.rint(f * (255.0 if f.max(initial=0) <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    raise TypeError(f"image arrays must hold numbers, not {image.dtype}")


class AgeEstimator:
    """Face detector + aligned crop + age model, ready to run.

    model: a .onnx (ONNX Runtime, no torch) or .pth checkpoint (needs the `train` extra);
    default: the shipped model. providers / threads: passed to ONNX Runtime (default: CPU,
    or CUDA first with device="cuda" where this onnxruntime has it). expand: override the
    model's crop expansion (changes accuracy; logged). det_threshold / max_side: the
    face detector's score threshold and the side large photos are scaled to for detection.
    attributes: what each face carries besides its age: by default its gender where the
    model has a gender head; ("age", "gender", "ethnicity") asks for ethnicity too, which
    only a model with an ethnicity head can give (otherwise UsageError).
    int8: run the shipped int8 models: the age model unless `model` names another
    (MissingModelError where none ships) and the face detector where one ships (else the
    float one), statically quantized: faster on CPU, answers within the model card's
    int8 table. detector: a face
    detector network file (.onnx, RetinaFace's inputs and outputs) in place of the
    package's float one or, with int8, the shipped int8 one. settings: all of these in one
    `InferSettings` (what `demo` and `val` pass), in place of the separate keywords.
    A value out of bounds raises OptionError, a ValueError whose `setting` names it
    (`InferSettings` holds the one set of bounds).
    """

    def __init__(self, model: str | Path | None = None, *, providers: str | Sequence[str] | None = None,
                 threads: int = 0, device: str = "cpu", runner: str = "auto", det_threshold: float = 0.8,
                 max_side: int = 1280, expand: float | None = None, batch_size: int = 64,
                 attributes: str | Sequence[str] | None = None, int8: bool = False,
                 detector: str | Path | None = None, settings: InferSettings | None = None) -> None:
        given = InferSettings(runner=runner, device=device, batch_size=batch_size, det_threshold=det_threshold,
                              max_side=max_side, expand=expand, threads=threads, providers=providers,
                              attributes=attributes, int8=int8, detector=detector)
        if settings is not None and given != InferSettings():
            raise TypeError("AgeEstimator takes settings= or the separate options, not both")
        s = self.settings = settings if settings is not None else given
        self.int8 = s.int8
        self.detector_model: Path | None = s.detector
        if s.int8 and s.detector is None:
            try:
                self.detector_model = int8_detector_path()
            except MissingModelError:  # none passed its check (the model card): the float detector runs
                logger.info("no int8 face detector ships; the float one runs")
        if model is None:
            model = int8_model_path() if s.int8 else default_model_path()
        self.model_path = Path(model)
        if s.device.startswith("cuda"):
            _check_cuda(runner_kind(self.model_path, s.runner, s.device), s.device)
        self.runner: Runner = open_runner(self.model_path, s.runner, s.device, s.batch_size, s.threads, s.providers)
        self.meta: ModelMeta = self.runner.meta
        stale = stale_int8(self.meta, self.model_path) if s.int8 and self.model_path.name == INT8_MODEL_NAME else None
        if stale:
            raise ModelError(stale)
        has = self.meta.attributes
        # the default gives what the model has of age and gender; an explicit request must be met
        self.attributes = DEFAULT_ATTRIBUTES & has if s.attributes is None else s.attributes
        missing = sorted(self.attributes - has)
        withheld = [a for a in missing if a in self.meta.withheld]
        if withheld:
            raise UsageError(f"{self.model_path.name} withholds {withheld[0]}: {self.meta.withheld[withheld[0]]}; "
                             f"it gives {', '.join(sorted(has))}", setting="attributes")
        if missing:
            raise UsageError(f"{self.model_path.name} has no {' or '.join(missing)} head to answer "
                             f"{', '.join(missing)}; it gives {', '.join(sorted(has))}", setting="attributes")
        self.img_size = self.meta.img_size
        # the crop expansion: the model's unless overridden (warned: the crops then differ from training)
        self.expand, self.expand_warning = self.meta.crop_expand(s.expand)
        if self.expand_warning:
            logger.warning("%s", self.expand_warning)
        self.det_threshold, self.max_side, self.threads = s.det_threshold, s.max_side, s.threads
        self.batch_size = s.batch_size
        self._detector: FaceDetector | None = None

    @property
    def detector(self) -> FaceDetector:
        """The face detector, created on first use (evaluating aligned crops needs none)."""
        if self._detector is None:
            self._detector = FaceDetector(score_threshold=self.det_threshold, max_side=self.max_side,
                                          threads=self.threads, model=self.detector_model)
        return self._detector

    def pipeline(self, keep_images: bool = False, keep_crops: bool = False,
                 timer: StageTimer | None = None) -> AgePipeline:
        """The batched image -> faces -> ages pipeline `predict` and `agecli demo` run."""
        return AgePipeline(self.runner, self.detector, self.expand, batch_faces=self.batch_size,
                           keep_images=keep_images, keep_crops=keep_crops, timer=timer,
                           attributes=self.attributes)

    def predict(self, image: ImageLike, color: str = "rgb") -> list[FaceResult]:
        """One result per face found (highest detector score first): box (x1, y1, x2, y2),
        landmarks (5, 2), score (the detector's), age, std, distribution (probability of
        each age, for distribution models), gender and its probability (and ethnicity,
        when asked for in `attributes`), for models with those heads. `color` says how to read a numpy array: "rgb" or "bgr"."""
        rgb = to_rgb(image, color)
        result = next(self.pipeline().run([Item("image", lambda: rgb)]))
        return result.faces

    def predict_many(self, images: Sequence[ImageLike], color: str = "rgb") -> list[list[FaceResult]]:
        """`predict` for several images, their faces batched together into the model.
        Like `predict`, an image that cannot be read raises ImageError naming it (an
        empty list means "no face", never "unreadable")."""
        if isinstance(images, (str, Path, np.ndarray)) or hasattr(images, "convert"):
            raise TypeError("predict_many takes a list of images; for one image use predict")
        images = list(images)
        items = [Item(str(i), lambda im=im: to_rgb(im, color)) for i, im in enumerate(images)]
        out = []
        for r in self.pipeline().run(items):
            if r.error == "unreadable":
                im = images[int(r.name)]
                what = str(im) if isinstance(im, (str, Path)) else f"image {r.name}"
                raise ImageError(f"{what}: {r.detail}" if what not in str(r.detail) else str(r.detail))
            out.append(r.faces)
        return out

    def track(self, frames: Iterable[ImageLike], color: str = "rgb", *, fps: float = 30.0,
              max_gap: float = 1.0) -> Tracking:
        """Faces tracked through `frames` (any iterable of images, in order, every one
        processed): iterate the result for each frame's faces, each with `track` (the
        person's id), `track_age` and `track_std` (their age so far); `tracks` then holds
        one TrackSummary per person (frames seen, first and last time, age ± std, gender,
        best crop). `fps` gives the times; a face unseen for more than `max_gap` seconds
        comes back as a new track. Frames are read one at a time, so a long video never
        sits in memory."""
        _check_color(color)
        if not fps > 0 or not max_gap > 0:
            raise OptionError("`fps` and `max_gap` must be above 0", setting="fps" if not fps > 0 else "max_gap")
        return Tracking(self, frames, color, Tracker(fps, max_gap))

    def predict_crops(self, crops: np.ndarray, color: str = "rgb") -> dict[str, np.ndarray]:
        """Ages of already-aligned face crops, uint8 (N, S, S, 3) or one (S, S, 3), S the
        model's img_size, cut by the model card's recipe. Returns arrays `age`, `std` and,
        where the model has them, `probs`, `gender_probs`, `race_probs`."""
        _check_color(color)
        arr = np.asarray(crops)
        if arr.ndim == 3:
            arr = arr[None]
        s = self.img_size
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (s, s, 3):
            raise OptionError(f"`crops` must be uint8 (N, {s}, {s}, 3), not {arr.dtype} {arr.shape}", setting="crops")
        if color == "bgr":
            arr = arr[..., ::-1]
        return self.runner.predict(np.ascontiguousarray(arr))


class Tracking:
    """What `AgeEstimator.track` returns: iterate it once for each frame's faces (with
    their tracks); `tracks` holds one summary per person seen so far."""

    def __init__(self, est: AgeEstimator, frames: Iterable[ImageLike], color: str, tracker: Tracker) -> None:
        self.est, self.frames, self.color, self.tracker = est, frames, color, tracker

    def __iter__(self) -> Iterator[list[FaceResult]]:
        pipe = self.est.pipeline(keep_crops=True)
        for index, frame in enumerate(self.frames):
            rgb = to_rgb(frame, self.color)
            res = next(pipe.run([Item(f"frame {index}", lambda: rgb)], live=True))
            self.tracker.update(index, res.faces, res.crops)
            yield res.faces

    @property
    def tracks(self) -> list[TrackSummary]:
        return self.tracker.summaries()


def draw(image: ImageLike, faces: Sequence[FaceResult], color: str = "rgb", *, labels: str = "full") -> np.ndarray:
    """A copy of `image` with a box and a label per face (`labels`: full "34 ±4", age
    "34", none: boxes only; small faces dimmer, age alone), in the colour order asked
    for (`color` also says how a numpy input is to be read). An unknown `labels` raises
    UsageError."""
    from .infer.drawing import annotate

    out = annotate(to_rgb(image, color), faces, labels)
    return np.ascontiguousarray(out[:, :, ::-1]) if color == "bgr" else out


def _check_cuda(kind: str, device: str) -> None:
    """torch must see a GPU for a torch runner; ONNX Runtime without CUDA falls back to CPU."""
    if kind == "torch":
        from .errors import require_torch

        require_torch(f"`device` {device} with a .pth model")
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"`device` {device}: torch sees no CUDA device here; use `device` cpu", setting="device")
        return
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        logger.warning("ONNX Runtime has no CUDA provider here; running on CPU")
