"""Faces linked across the frames of a video into tracks, one per person in view, and
each track's age, std and gender combined over its frames.

A video's question is "who was in it, and how old is each?", not one row per face per
frame whose ages jump. A face is matched to the track whose box, moved on by the
track's own velocity, lies nearest and overlaps most, and whose look (a tiny thumbnail
of the aligned crop) is closest: motion carries two faces through a crossing, the look
tells them apart where their boxes meet, and a track survives a face hidden or missed
for up to `max_gap` seconds (and always one missed processed frame). After that it
ends; a face seen again later starts a new one.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:
    from .pipeline import FaceResult

THUMB = 12  # the look: a THUMB x THUMB colour thumbnail of the crop's centre
FULL_WEIGHT_PX = 64  # faces narrower than this count less (rougher ages)
MIN_STD = 1.0  # a std below this counts as this (a near-zero std must not outweigh every other frame)
SIZE_RATIO = 0.6  # a face may not shrink or grow by more than this factor from one match to the next
GATE = 1.0  # how far (in face widths) from its predicted place a face may be matched ...
NEW_GATE = 2.0  # ... or, while the track's motion is not yet known (new, or back after a miss), this far ...
GATE_PER_MISS = 0.5  # ... plus this per processed frame the track went unseen (up to MAX_GATE)
MAX_GATE = 3.0
PREDICT_STEPS = 2  # a track unseen longer is expected where this many steps of its motion took it


def look(crop: np.ndarray) -> np.ndarray:
    """A cheap appearance cue: the centre of the aligned crop (the face, not the margin
    around it) as a small float colour thumbnail."""
    s = crop.shape[0]
    m = s // 6
    return cv2.resize(crop[m:s - m, m:s - m], (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)


def look_distance(a: np.ndarray, b: np.ndarray) -> float:
    """About 0 for the same face, 0.3 and up for another: its pattern (one minus the
    correlation of the thumbnails) plus its colour (mean difference, in quarters of 255)."""
    da, db = a - a.mean(), b - b.mean()
    corr = float((da * db).sum() / (np.linalg.norm(da) * np.linalg.norm(db) + 1e-6))
    colour = float(np.abs(a.mean((0, 1)) - b.mean((0, 1))).mean()) / 64.0
    return 0.5 * (1.0 - corr) + min(colour, 1.0)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def _size_change(a: np.ndarray, b: np.ndarray) -> float:
    """1 for boxes of one size, smaller the more they differ: in width or in height,
    whichever changed less (a face at the image's edge loses part of its box one way)."""
    def ratio(x: float, y: float) -> float:
        return min(x, y) / max(x, y, 1e-6)

    return max(ratio(a[2] - a[0], b[2] - b[0]), ratio(a[3] - a[1], b[3] - b[1]))


def evidence_weight(face: FaceResult) -> float:
    """How much one frame's estimate counts in its track: the detector's score, the
    face's width (up to FULL_WEIGHT_PX) and the model's own std (inverse variance)."""
    width = float(face.box[2] - face.box[0])
    return float(face.score) * min(1.0, width / FULL_WEIGHT_PX) / max(float(face.std), MIN_STD) ** 2


@dataclass
class TrackSummary:
    """One person: when they were in view, and their combined age, std and gender.
    `crop` is the aligned crop of the frame that counted most (RGB), None without crops."""

    track: int
    first_frame: int
    last_frame: int
    first_time: float  # seconds
    last_time: float
    frames: int  # processed frames the face was seen in
    age: float
    std: float
    gender: str | None = None
    gender_prob: float | None = None
    ethnicity: str | None = None
    ethnicity_prob: float | None = None
    crop: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types, without the crop pixels."""
        return {k: v for k, v in self.__dict__.items() if k != "crop"}


class _Votes:
    """A label (gender, ethnicity) combined over frames: each frame's probability of its
    label, weighted; the answer is the label with the largest share."""

    def __init__(self) -> None:
        self.mass: dict[str, float] = {}

    def add(self, label: str | None, prob: float | None, weight: float) -> None:
        if label is not None and prob is not None:
            self.mass[label] = self.mass.get(label, 0.0) + weight * prob

    def answer(self) -> tuple[str | None, float | None]:
        total = sum(self.mass.values())
        if not total:
            return None, None
        label = max(self.mass, key=self.mass.get)
        return label, self.mass[label] / total


class Track:
    """A person's track: where the face was last seen and how it moves, its look, and
    the running weighted sums behind its age."""

    def __init__(self, track_id: int, frame: int, box: np.ndarray) -> None:
        self.id = track_id
        self.first_frame = self.last_frame = frame
        self.box = np.asarray(box, float)
        self.velocity = np.zeros(4)  # of the box's corners, pixels per frame
        self.steady = False  # velocity measured over consecutive processed frames
        self.look: np.ndarray | None = None
        self.frames = 0
        self.weight = self.age_sum = self.var_sum = 0.0
        self.gender, self.ethnicity = _Votes(), _Votes()
        self.best_weight, self.best_crop = -1.0, None

    def predicted(self, frame: int, horizon: int) -> np.ndarray:
        """Where the box should be at `frame`: moved on by the velocity, for at most
        `horizon` frames (a face unseen for long may have stopped or turned)."""
        return self.box + self.velocity * min(frame - self.last_frame, horizon)

    @property
    def age(self) -> float:
        return self.age_sum / self.weight if self.weight else float("nan")

    @property
    def std(self) -> float:
        """The typical std of one frame's estimate, not that std over sqrt(frames): the
        model's error for a face repeats from frame to frame, so more frames steady the
        age without making it that much surer."""
        return float(np.sqrt(self.var_sum / self.weight)) if self.weight else float("nan")

    def add(self, frame: int, face: FaceResult, face_look: np.ndarray | None, crop: np.ndarray | None,
            consecutive: bool = True) -> None:
        """One frame's face: motion, look and the weighted sums. `consecutive`: the track
        was seen in the processed frame before this one (else its motion is less sure)."""
        if self.frames:
            step = (np.asarray(face.box, float) - self.box) / max(frame - self.last_frame, 1)
            self.velocity = 0.5 * self.velocity + 0.5 * step if self.steady and consecutive else step
            self.steady = consecutive
        self.box, self.last_frame = np.asarray(face.box, float), frame
        if face_look is not None:
            self.look = face_look if self.look is None else 0.7 * self.look + 0.3 * face_look
        w = evidence_weight(face)
        self.frames += 1
        self.weight += w
        self.age_sum += w * float(face.age)
        self.var_sum += w * float(face.std) ** 2
        self.gender.add(face.gender, face.gender_prob, w)
        self.ethnicity.add(face.ethnicity, face.ethnicity_prob, w)
        if crop is not None and w > self.best_weight:
            self.best_weight, self.best_crop = w, crop.copy()

    def summary(self, fps: float) -> TrackSummary:
        gender, gender_prob = self.gender.answer()
        ethnicity, ethnicity_prob = self.ethnicity.answer()
        return TrackSummary(self.id, self.first_frame, self.last_frame, round(self.first_frame / fps, 3),
                            round(self.last_frame / fps, 3), self.frames, self.age, self.std, gender,
                            gender_prob, ethnicity, ethnicity_prob, self.best_crop)


class Tracker:
    """Tracks over the processed frames of one video, in frame order. `fps` turns the
    gap limit `max_gap` (seconds) into frames and frame numbers into times."""

    def __init__(self, fps: float = 30.0, max_gap: float = 1.0) -> None:
        self.fps = fps if fps > 0 else 30.0
        self.max_gap_frames = max(1, round(max_gap * self.fps))
        self.active: list[Track] = []
        self.ended: list[Track] = []
        self.next_id = 1
        self.step = 1  # frames between processed frames (--every)
        self.prev_frame: int | None = None

    def _cost(self, track: Track, frame: int, face: FaceResult, face_look: np.ndarray | None) -> float | None:
        """How well `face` continues `track` (lower is better), None when it cannot."""
        box = np.asarray(face.box, float)
        width = max(track.box[2] - track.box[0], 1.0)
        if _size_change(track.box, box) < SIZE_RATIO:
            return None
        pred = track.predicted(frame, PREDICT_STEPS * self.step)
        dist = float(np.hypot((box[0] + box[2] - pred[0] - pred[2]) / 2, (box[1] + box[3] - pred[1] - pred[3]) / 2))
        missed = max(0, round((frame - track.last_frame) / self.step) - 1)
        if dist / width > min((GATE if track.steady else NEW_GATE) + GATE_PER_MISS * missed, MAX_GATE):
            return None
        cost = dist / width + 0.5 * (1.0 - iou(pred, box))
        if face_look is not None and track.look is not None:
            cost += look_distance(track.look, face_look)
        return cost

    def update(self, frame: int, faces: Sequence[FaceResult], crops: np.ndarray | None = None) -> None:
        """Link the faces of `frame` (later than the last one) to tracks, each face's
        own estimate added to its track; sets each face's `track`, `track_age` and
        `track_std` (the running answer, this frame included). `crops` are the faces'
        aligned crops (the look, and the best crop per track), optional."""
        if self.prev_frame is not None and frame > self.prev_frame:
            self.step = frame - self.prev_frame
        self.prev_frame = frame
        gap = max(self.max_gap_frames, 2 * self.step)  # a sparse --every still forgives one missed frame
        still = [t for t in self.active if frame - t.last_frame <= gap]
        self.ended += [t for t in self.active if frame - t.last_frame > gap]
        self.active = still
        have_crops = crops is not None and len(crops) == len(faces)
        looks = [look(c) for c in crops] if have_crops else [None] * len(faces)
        pairs = sorted((c, ti, fi) for ti, t in enumerate(self.active) for fi, f in enumerate(faces)
                       if (c := self._cost(t, frame, f, looks[fi])) is not None)
        chosen: dict[int, Track] = {}
        taken: set[int] = set()
        for _, ti, fi in pairs:  # greedy, cheapest first: a few faces a frame need no more
            if ti not in taken and fi not in chosen:
                taken.add(ti)
                chosen[fi] = self.active[ti]
        for fi, f in enumerate(faces):
            track = chosen.get(fi)
            if track is None:
                track = Track(self.next_id, frame, f.box)
                self.next_id += 1
                self.active.append(track)
            track.add(frame, f, looks[fi], crops[fi] if have_crops else None,
                      consecutive=frame - track.last_frame <= self.step)
            f.track, f.track_age, f.track_std = track.id, track.age, track.std

    def summaries(self) -> list[TrackSummary]:
        """Every track so far, by id."""
        return [t.summary(self.fps) for t in sorted(self.ended + self.active, key=lambda t: t.id)]
