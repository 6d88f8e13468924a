"""What `demo` reads: image folders, files and globs, path lists (a file or stdin), a
video, or the webcam. Image sources yield `Item`s whose `name` is the relative path the
outputs are written under; decoding is deferred to `Item.load()` so that a re-run can
skip an image without reading it. A video or the webcam is a `Video`, read frame after
frame in order, since its faces are tracked from one frame to the next.
"""
from __future__ import annotations

import glob
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from ..data.images import IMAGE_EXTENSIONS, ImageError, load_rgb, unreadable_folder
from ..errors import AgecliError, UsageError

logger = logging.getLogger(__name__)
GLOB_CHARS = frozenset("*?[")


class SourceError(UsageError):
    """Inputs that cannot be used at all (bad combination, no video, no webcam)."""


class UnreadableVideo(AgecliError):
    """A video file that is there but cannot be decoded (cut short before its index, not
    a video): an input that failed, exit 1, as an unreadable photo is."""


@dataclass
class Item:
    """One image to process: `name` is its unique relative output path, `given` the path
    as the user gave it, `load()` decodes it (RGB uint8) or raises ImageError."""

    name: str
    load: Callable[[], np.ndarray]
    given: str = ""  # the input path as the user gave it (the `file` column); default: name

    def __post_init__(self) -> None:
        self.given = self.given or self.name


@dataclass
class Source:
    """The items to process; `total` is None for a webcam or an unknown frame count;
    `live` sources (webcam) want each frame's result at once, not batched."""

    items: Iterator[Item]
    total: int | None
    live: bool = False
    paths: list[Path | None] = field(default_factory=list)  # the input files, when known up front
    video: Video | None = None  # a video or the webcam: read frame by frame, not as items


def _missing(reason: str) -> np.ndarray:
    raise ImageError(f"unreadable: {reason}")


def output_name(path: Path) -> str:
    """The relative name a given path is written under: the path as given when it is
    relative and stays inside the working folder, else its file name."""
    parts = PurePosixPath(path.as_posix()).parts
    if path.is_absolute() or ".." in parts:
        return path.name
    return PurePosixPath(*[p for p in parts if p != "."]).as_posix()


def walk_images(root: Path, exclude: Path | None = None) -> Iterator[Path]:
    """Image names under `root`, recursively, sorted; hidden files and folders and
    anything under `exclude` (the output folder) are left out. FIFOs and dangling links
    with an image name are kept: they get an `unreadable` row rather than vanish."""
    skip = exclude.resolve() if exclude else None
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable_folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (skip is None or (here / d).resolve() != skip))
        for f in sorted(filenames):
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                yield here / f


Entry = tuple[str, Path | None, str]  # (output name, path or None when nothing matched, path as given)


def _in_folder(folder: Path, exclude: Path | None) -> list[Entry]:
    return [(p.relative_to(folder).as_posix(), p, str(p)) for p in walk_images(folder, exclude)]


def _expand(arg: str, exclude: Path | None) -> list[Entry]:
    """Entries for one positional argument: a file, a folder or a glob."""
    path = Path(arg)
    if path.is_dir():
        return _in_folder(path, exclude)
    if os.path.lexists(path) or not GLOB_CHARS & set(arg):
        return [(output_name(path), path, arg)]
    matches = sorted(glob.glob(arg, recursive=True))
    skip = exclude.resolve() if exclude else None
    files = [Path(m) for m in matches if not Path(m).is_dir()
             and not (skip is not None and skip in Path(m).resolve().parents)]  # not the run's own copies
    return [(output_name(p), p, str(p)) for p in files] or [(arg, None, arg)]


def _unique(entries: Iterable[Entry]) -> list[Entry]:
    """Keep output names distinct: a repeated name gets `~2`, `~3`... before its suffix."""
    seen: dict[str, int] = {}
    out = []
    for name, path, given in entries:
        n = seen.get(name, 0) + 1
        seen[name] = n
        if n > 1:
            stem, dot, ext = name.rpartition(".")
            name = f"{stem}~{n}.{ext}" if dot and "/" not in ext else f"{name}~{n}"
        out.append((name, path, given))
    return out


def read_list(spec: str) -> list[str]:
    """Paths from a list file, or from stdin for '-': one a line, blank lines and
    '#' comments ignored."""
    if spec == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = Path(spec).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise SourceError(f"`img_list` {spec}: cannot read ({e})", setting="img_list") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def file_source(inputs: list[str], img_dir: Path | None = None, img_list: str | None = None,
                exclude: Path | None = None) -> Source:
    """Images from a folder, positional files/folders/globs and a path list, in that order."""
    entries: list[Entry] = []
    if img_dir is not None:
        if not img_dir.is_dir():
            raise SourceError(f"`img_dir` {img_dir}: not a folder", setting="img_dir")
        entries += _in_folder(img_dir, exclude)
    for arg in inputs:
        entries += _expand(arg, exclude)
    if img_list is not None:
        entries += [(output_name(Path(p)), Path(p), p) for p in read_list(img_list)]
    if not entries:
        given = [f"`img_dir` {img_dir}"] * (img_dir is not None) + inputs + [f"`img_list` {img_list}"] * (img_list is not None)
        raise SourceError(f"no images in {', '.join(given)}")
    entries = _unique(entries)
    items = (Item(name, partial(load_rgb, path) if path else partial(_missing, "no file matches"), given)
             for name, path, given in entries)
    return Source(items, len(entries), paths=[p for _, p, _ in entries])


@dataclass
class Video:
    """A video file or the webcam, read in order by `frames`. `fps` is the declared rate
    (30 when the container gives none), `count` the declared frame count (0: unknown,
    as for a webcam)."""

    cap: cv2.VideoCapture
    name: str  # the video's stem: frames are named <name>/frame_NNNNNN.jpg
    fps: float
    count: int
    every: int = 1
    ended_early: list[str] = field(default_factory=list)  # set when it stops before `count`

    def frame_name(self, index: int) -> str:
        return f"{self.name}/frame_{index:06d}.jpg"

    def frames(self, decode_all: bool = False) -> Iterator[tuple[int, np.ndarray | None, bool]]:
        """(index, RGB frame, processed) for every frame, `processed` for every `every`-th;
        the others are grabbed without decoding (their frame None) unless `decode_all`
        (an annotated video needs them all). A video that stops before the frame count
        its header declares is noted in `ended_early`."""
        index = 0
        try:
            while True:
                processed = not index % self.every
                if processed or decode_all:
                    ok, frame = self.cap.read()
                    ok = ok and frame is not None
                else:
                    ok, frame = self.cap.grab(), None
                if not ok:
                    if 0 < index < self.count:
                        self.ended_early.append(f"{self.name}: the video ended at frame {index} of the {self.count} "
                                                "its header declares (truncated or damaged?)")
                    return
                yield index, None if frame is None else np.ascontiguousarray(frame[:, :, ::-1]), processed
                index += 1
        finally:
            self.cap.release()


def _video(cap: cv2.VideoCapture, name: str, every: int) -> Video:
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
    return Video(cap, name, fps if 0 < fps < 1000 else 30.0, count, every)


def video_source(path: Path, every: int = 1) -> Source:
    """Frames of a video file, named `<video stem>/frame_NNNNNN.jpg` (`Source.video`)."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise SourceError(f"`video` {path}: not a regular file", setting="video")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        if os.path.isfile(path):
            raise UnreadableVideo(f"`video` {path}: unreadable: not a video, or cut short (an MP4 copied "
                                  "only in part lacks the index at its end)", setting="video")
        raise SourceError(f"`video` {path}: cannot open it as a video", setting="video")
    video = _video(cap, path.stem or "video", every)
    total = (video.count + every - 1) // every if video.count else None
    return Source(iter(()), total, paths=[path], video=video)


def webcam_source(every: int = 1, index: int = 0) -> Source:
    """Frames of the webcam until it stops or the user presses Ctrl-C."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # no camera: one line of ours, not OpenCV's 8
    try:
        cap = cv2.VideoCapture(index)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if not cap.isOpened():
        cap.release()
        raise SourceError("`webcam`: no webcam could be opened", setting="webcam")
    return Source(iter(()), None, live=True, video=_video(cap, "webcam", every))


def sample_image() -> Path:
    """The photo `demo` runs on when given no input: matplotlib's public-domain portrait
    of Grace Hopper (`grace_hopper.jpg` in its sample data), so a fresh install shows
    its job without the user finding a photo first; nothing third-party ships with agecli."""
    import matplotlib
    from matplotlib import cbook

    try:
        return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    except (OSError, ValueError):
        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if not path.is_file():
            raise SourceError("no input given and matplotlib's sample photo is missing; "
                              "pass image files, `img_dir`, `img_list`, `video` or `webcam`") from None
        return path


def open_source(inputs: list[str], img_dir: Path | None = None, img_list: str | None = None,
                video: Path | None = None, every: int = 1, exclude: Path | None = None,
                webcam: bool = False) -> Source:
    """The one source a demo run reads; raises SourceError for unusable combinations.
    With no input at all it is the sample photo (`sample_image`)."""
    if every < 1:
        raise SourceError("`every` must be 1 or more", setting="every")
    files_given = bool(inputs) or img_dir is not None or img_list is not None
    if sum((files_given, video is not None, webcam)) > 1:
        raise SourceError("choose one kind of input: image files/folders/lists, `video` or `webcam`")
    if video is not None:
        return video_source(video, every)
    if webcam:
        return webcam_source(every)
    if files_given:
        return file_source(inputs, img_dir, img_list, exclude)
    sample = sample_image()
    logger.info("no input given: running on the sample photo %s (matplotlib's public-domain portrait "
                "of Grace Hopper); pass files, `img_dir`, `img_list`, `video` or `webcam`", sample.name)
    return file_source([str(sample)])
