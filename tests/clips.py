"""Video clips with a known truth, for the tracking tests and bench/bench_video.py: real
face crops (the group photos in ../shared, else tests/synth.py's) pasted onto a plain
textured background and moved along known paths, encoded with OpenCV's writer.

A path gives each face's centre per frame, or None where it is out of the clip; an
occluder hides a face for some frames. The truth for a detection is the face whose
centre lies nearest (within half a face width): `truth_of`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

FACE_PX = 56  # pasted faces' width in the clip
PATCH = 1.9  # the pasted patch: this many face widths across (the crop's margin included)


@lru_cache(maxsize=4)
def face_patches(photos: Path, n: int = 4, face_px: int = FACE_PX) -> tuple[np.ndarray, ...]:
    """RGBA patches of the `n` largest clear faces of the photos (each a square around the
    face scaled so the face is `face_px` wide, alpha an ellipse feathered at its edge)."""
    from agecli.data.images import load_rgb
    from agecli.face.detector import FaceDetector

    det = FaceDetector(threads=1)
    found = []
    for p in sorted(photos.glob("*.jpg")):
        rgb = load_rgb(p)
        for f in det.detect(rgb):
            if f.score >= 0.95 and f.width >= 40:
                found.append((f.width, p.name, rgb, f.box))
        if len(found) >= 3 * n:
            break
    found.sort(key=lambda t: (-t[0], t[1]))
    if len(found) < n:
        raise RuntimeError(f"only {len(found)} clear faces in {photos}")
    patches = []
    for width, _, rgb, box in found[:n]:
        side = int(round(PATCH * face_px))
        scale = face_px / width
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        m = np.array([[scale, 0, side / 2 - scale * cx], [0, scale, side / 2 - scale * cy]])
        face = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        alpha = np.zeros((side, side), np.float32)
        cv2.ellipse(alpha, (side // 2, side // 2), (int(side * 0.45), int(side * 0.48)), 0, 0, 360, 1.0, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), side * 0.04)
        patches.append(np.dstack([face.astype(np.float32), alpha]))
    return tuple(patches)


def background(width: int, height: int, seed: int = 5) -> np.ndarray:
    """A smooth colour gradient with mild noise: nothing a detector takes for a face."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    bg = np.stack([90 + 60 * x / width, 120 + 40 * y / height, 150 - 50 * x / width], axis=2)
    return np.clip(bg + rng.normal(0, 6, bg.shape), 0, 255).astype(np.float32)


def paste(canvas: np.ndarray, patch: np.ndarray, centre: tuple[float, float]) -> None:
    """Blend an RGBA patch onto the canvas (float RGB) at `centre`, clipped at the edges."""
    side = patch.shape[0]
    x0, y0 = int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2))
    h, w = canvas.shape[:2]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    if xa >= xb or ya >= yb:
        return
    p = patch[ya - y0:yb - y0, xa - x0:xb - x0]
    a = p[:, :, 3:]
    canvas[ya:yb, xa:xb] = a * p[:, :, :3] + (1 - a) * canvas[ya:yb, xa:xb]


@dataclass
class Clip:
    """What was drawn: per frame, each face's centre (None: out of the clip or hidden)."""

    path: Path
    fps: float
    size: tuple[int, int]
    frames: int
    centres: list[list[tuple[float, float] | None]]  # [face][frame]
    hidden: list[set[int]] = field(default_factory=list)  # [face]: frames it is occluded in
    face_px: float = FACE_PX

    def visible(self, face: int, frame: int) -> tuple[float, float] | None:
        c = self.centres[face][frame]
        return None if c is None or frame in self.hidden[face] else c


def write_clip(path: Path, patches: tuple[np.ndarray, ...], centres: list[list[tuple[float, float] | None]],
               hidden: list[set[int]] | None = None, size: tuple[int, int] = (320, 240), fps: float = 10.0) -> Clip:
    """Encode the faces along their paths (MJPG in .avi); occluded faces are covered by a
    grey card. Faces are pasted in order: a later face passes in front of an earlier one."""
    face_px = patches[0].shape[0] / PATCH
    hidden = hidden or [set() for _ in centres]
    frames = len(centres[0])
    bg = background(*size)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        import pytest

        pytest.skip("no MJPG video writer in this OpenCV build")
    for k in range(frames):
        canvas = bg.copy()
        for i, track in enumerate(centres):
            if track[k] is not None:
                paste(canvas, patches[i], track[k])
                if k in hidden[i]:
                    x, y = track[k]
                    half = face_px * 0.85
                    cv2.rectangle(canvas, (int(x - half), int(y - half)), (int(x + half), int(y + half)),
                                  (128, 128, 128), -1)
        writer.write(np.ascontiguousarray(np.clip(canvas, 0, 255).astype(np.uint8)[:, :, ::-1]))
    writer.release()
    return Clip(path, fps, size, frames, centres, hidden, face_px)


def line(start: tuple[float, float], end: tuple[float, float], frames: int) -> list[tuple[float, float]]:
    """Centres moving at a steady speed from `start` to `end` over `frames` frames."""
    return [(start[0] + (end[0] - start[0]) * k / (frames - 1), start[1] + (end[1] - start[1]) * k / (frames - 1))
            for k in range(frames)]


def crossing_clip(path: Path, photos: Path, frames: int = 40) -> Clip:
    """Two faces crossing: one left to right, the other right to left a little lower,
    passing in front of the first mid-clip."""
    a, b = face_patches(photos)[:2]
    return write_clip(path, (a, b), [line((50, 105), (270, 105), frames), line((270, 135), (50, 135), frames)])


def away_clip(path: Path, photos: Path, frames: int = 50) -> Clip:
    """One face walks out of the right edge at frame ~14 and comes back at ~36 (out for
    over 2 s at 10 frames/s); another, moving slowly, is hidden by a card for frames
    20-24 (0.5 s)."""
    p = face_patches(photos)
    out = [(250 + 9 * k, 80) if k < 15 else None for k in range(15)] + [None] * 21 \
        + [(340 - 6 * (k - 36), 80) for k in range(36, frames)]
    out = [c if c is None or c[0] < 320 + FACE_PX else None for c in out]
    slow = line((70, 160), (170, 160), frames)
    return write_clip(path, (p[2], p[3]), [out, slow], hidden=[set(), set(range(20, 25))])


def truth_of(clip: Clip, frame: int, box) -> int | None:
    """The face a detected box belongs to: the visible face whose centre is nearest,
    within half a face width; None for none."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    best, best_d = None, clip.face_px / 2
    for i in range(len(clip.centres)):
        c = clip.visible(i, frame)
        if c is not None and (d := float(np.hypot(c[0] - cx, c[1] - cy))) < best_d:
            best, best_d = i, d
    return best


def ids_per_face(clip: Clip, rows: list[dict]) -> dict[int, list[tuple[int, int]]]:
    """(frame, track) of every detection of each pasted face, in frame order, from demo's
    rows (CSV cells); a detection that is no pasted face raises AssertionError."""
    seen: dict[int, list[tuple[int, int]]] = {}
    for r in rows:
        if not r["track"]:
            continue  # a frame without a face
        frame = int(r["file"].rsplit("_", 1)[1][:6])
        face = truth_of(clip, frame, [float(r[k]) for k in ("x1", "y1", "x2", "y2")])
        assert face is not None, f"a detection at frame {frame} that is no pasted face: {r}"
        seen.setdefault(face, []).append((frame, int(r["track"])))
    return seen


def switches(seq: list[tuple[int, int]], within: int | None = None) -> int:
    """How often the track id changes along one face's detections (only between
    detections at most `within` frames apart, when given: a face gone for longer than
    the gap limit rightly comes back as a new track)."""
    return sum(a[1] != b[1] for a, b in zip(seq, seq[1:]) if within is None or b[0] - a[0] <= within)
