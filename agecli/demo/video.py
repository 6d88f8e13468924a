"""Video plumbing for `demo`: frames decoded ahead in a reader thread (decoding overlaps
the models; a bounded queue bounds the frames in memory), and the annotated video,
encoded behind them in a writer thread and written atomically, so that no
half-written video ever sits under its final name."""
from __future__ import annotations

import os
import queue
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from ..atomic import OutputError, working_name
from ..ledger import pid_alive

T = TypeVar("T")
READ_AHEAD = 8  # frames decoded ahead of the models (and waiting to be encoded): ~22 MB at 720p
FOURCC = "mp4v"  # MPEG-4 in .mp4: written by every OpenCV wheel's FFmpeg, played by common players
_DONE = object()


def read_ahead(frames: Iterator[T], depth: int = READ_AHEAD) -> Iterator[T]:
    """`frames`, produced by a reader thread at most `depth` ahead of the consumer. An
    error in the reader is raised here; closing this generator (an interrupted run)
    stops the reader."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def put(obj: object) -> bool:
        while not stop.is_set():
            try:
                q.put(obj, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for f in frames:
                if not put(f):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            failure.append(e)
        finally:
            if hasattr(frames, "close"):
                frames.close()  # releases the capture, in the thread that used it
            put(_DONE)

    reader = threading.Thread(target=read, name="agecli-video-reader", daemon=True)
    reader.start()
    try:
        while (item := q.get()) is not _DONE:
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        reader.join()


def video_output_path(out_dir: Path, name: str) -> Path:
    """Where the annotated video of the video `name` (its stem) goes."""
    return out_dir / f"{name}.mp4"


def remove_stale_work(path: Path) -> None:
    """Remove the working folders (`.NAME.agecli-PID.tmp`) that runs killed outright
    left for `path`: their process is gone, the name is agecli's alone."""
    prefix, suffix = f".{path.name}.agecli-", ".tmp"
    for entry in path.parent.glob(f"{prefix}*{suffix}"):
        pid = entry.name[len(prefix):-len(suffix)]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


class AnnotatedVideo:
    """An annotated video, written atomically: the frames go to a file inside agecli's
    working folder for `path` (`atomic.working_name`; the file inside keeps the final
    name, since OpenCV picks the container from the extension) and it is moved to
    `path` by `finish`. `discard` removes it all. The size is the first frame's (a
    webcam may declare none). Encoding runs in a writer thread, behind the models, at
    most READ_AHEAD frames behind."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        remove_stale_work(path)
        self.work = working_name(path)
        self.inner = self.work / path.name
        self.writer: cv2.VideoWriter | None = None
        self.size = (0, 0)
        self.queue: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
        self.thread: threading.Thread | None = None
        self.failure: list[BaseException] = []

    def _open(self, size: tuple[int, int]) -> None:
        try:
            self.work.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.size = size
        self.writer = cv2.VideoWriter(str(self.inner), cv2.VideoWriter_fourcc(*FOURCC), self.fps, size)
        if not self.writer.isOpened():
            self.discard()
            raise OutputError(f"cannot write {self.path}: this OpenCV cannot encode {FOURCC} video")
        self.thread = threading.Thread(target=self._encode, name="agecli-video-writer", daemon=True)
        self.thread.start()

    def _encode(self) -> None:
        while (bgr := self.queue.get()) is not _DONE:
            if not self.failure:
                try:
                    self.writer.write(bgr)
                except BaseException as e:  # raised in the main thread by the next write or finish
                    self.failure.append(e)

    def write(self, rgb: np.ndarray) -> None:
        """Append one frame (resized to the video's size if it differs: a frame of
        another size would be dropped silently)."""
        if self.failure:
            raise OutputError(f"cannot write {self.path}: {self.failure[0]}")
        if self.writer is None:
            self._open((rgb.shape[1], rgb.shape[0]))
        if (rgb.shape[1], rgb.shape[0]) != self.size:
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
        self.queue.put(np.ascontiguousarray(rgb[:, :, ::-1]))

    def _close(self) -> None:
        if self.thread is not None:
            self.queue.put(_DONE)
            self.thread.join()
            self.thread = None
        if self.writer is not None:
            self.writer.release()

    def finish(self) -> bool:
        """Move the video into place; False (nothing written) for a video of no frames."""
        if self.writer is None:
            return False
        self._close()
        if self.failure:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {self.failure[0]}")
        try:
            os.replace(self.inner, self.path)
        except OSError as e:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        shutil.rmtree(self.work, ignore_errors=True)
        return True

    def discard(self) -> None:
        self._close()
        shutil.rmtree(self.work, ignore_errors=True)
