"""Annotated copies: a box per face and a label ("34 ±4", "34" or none) sized to the
image and the face, placed greedily so that in a crowd every label stays with its own
box: touching it, or a short leader line away, never over another face or label. A
label with no such place is left out; its box stays. Small faces (`small_face`, ages
too rough to trust) are drawn dimmer and thinner, with the age alone."""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import OptionError

BOX_RGB = (255, 196, 0)
TEXT_RGB = (0, 0, 0)
ROUGH_ALPHA = 0.5  # a small face's box and label: this much of the colour over the photo
LABELS = ("full", "age", "none")  # full: "34 ±4"; age: "34"; none: boxes only
MAX_LEADER = 2  # a label away from its box: at most this many label heights away
Rect = tuple[int, int, int, int]  # x1, y1, x2, y2, exclusive end
Point = tuple[int, int]


@lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Bold (shipped with matplotlib, has the ± glyph) at `px` pixels."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    try:
        return ImageFont.truetype(str(path), px)
    except OSError:
        return ImageFont.load_default(px)


def check_labels(labels: str) -> None:
    """Refuse an unknown label form (a typo would otherwise draw nothing)."""
    if labels not in LABELS:
        raise OptionError(f"`labels` must be full, age or none, not {labels!r}", setting="labels")


def label_text(age: float, std: float, labels: str = "full") -> str | None:
    """The label of one face in the form asked for; None for `none`."""
    if labels == "none":
        return None
    return f"{age:.0f}" if labels == "age" else f"{age:.0f} ±{std:.0f}"


def face_label(face, labels: str = "full") -> str | None:
    """A face's label; a tracked face (video, webcam) shows its id and its track's
    steadied age ("#3 34 ±4"), not the frame's own jumpy one."""
    if getattr(face, "track_age", None) is None:
        return label_text(face.age, face.std, labels)
    text = label_text(face.track_age, face.track_std, labels)
    return None if text is None else f"#{face.track} {text}"


def text_px(image_shape: tuple[int, ...], face_height: float) -> int:
    """Label font size: about a third of the face height, bounded by the image size so
    it stays readable on a thumbnail and on a 50-megapixel photo."""
    short = min(image_shape[:2])
    lo = max(11.0, 0.015 * short)
    hi = max(lo, 0.06 * short)
    return int(round(min(max(0.3 * face_height, lo), hi)))


def render_label(text: str, px: int) -> np.ndarray:
    """The label as an RGB patch: dark text on the box colour, a small margin around."""
    font = _font(px)
    x1, y1, x2, y2 = font.getbbox(text)
    pad = max(2, px // 6)
    patch = Image.new("RGB", (x2 - x1 + 2 * pad, y2 - y1 + 2 * pad), BOX_RGB)
    ImageDraw.Draw(patch).text((pad - x1, pad - y1), text, font=font, fill=TEXT_RGB)
    return np.asarray(patch)


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _box_rect(box: Sequence[float]) -> Rect:
    """A drawn box as a Rect: cv2.rectangle draws both corners, so the end is +1."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    return x1, y1, x2 + 1, y2 + 1


def _span(a1: int, a2: int, b1: int, b2: int) -> tuple[int, int]:
    """The nearest coordinates of two intervals [a1, a2) and [b1, b2) on one axis."""
    if a2 <= b1:
        return a2 - 1, b1
    if b2 <= a1:
        return a1, b2 - 1
    mid = (max(a1, b1) + min(a2, b2) - 1) // 2
    return mid, mid


def leader(label: Rect, box: Rect) -> tuple[Point, Point] | None:
    """The short line from a label to its box (nearest points of the two), or None when
    the label touches the box (adjacent or overlapping) and needs none."""
    (lx, bx), (ly, by) = _span(label[0], label[2], box[0], box[2]), _span(label[1], label[3], box[1], box[3])
    if abs(lx - bx) <= 1 and abs(ly - by) <= 1:
        return None
    return (lx, ly), (bx, by)


def _crosses(line: tuple[Point, Point], rect: Rect) -> bool:
    (x1, y1), (x2, y2) = line
    n = max(abs(x2 - x1), abs(y2 - y1), 1)
    return any(rect[0] <= x1 + (x2 - x1) * t / n < rect[2] and rect[1] <= y1 + (y2 - y1) * t / n < rect[3]
               for t in range(n + 1))


def _candidates(box: Rect, lw: int, lh: int, leaders: bool) -> list[tuple[int, int]]:
    """Top-left corners to try, nearest first: touching the box (above, below, beside,
    inside its top), then, with `leaders`, a little further up, down or aside."""
    x1, y1, x2, y2 = box
    xs = (x1, x2 - lw)  # left-aligned, right-aligned with the box
    out = [(x, y1 - lh) for x in xs] + [(x, y2) for x in xs]
    top = max(y1, 0)  # a face cut by the image's top edge: level with what is shown
    out += [(x1 - lw, top), (x2, top), (x1, top)]
    if leaders:
        for gap in (lh // 2, lh, MAX_LEADER * lh):
            out += [(x1, y1 - lh - gap), (x1, y2 + gap), (x1 - lw - gap, y1), (x2 + gap, y1)]
    return out


def place_labels(boxes: Sequence[Sequence[float]], sizes: Sequence[tuple[int, int]],
                 image_shape: tuple[int, ...], rough: Sequence[bool] | None = None) -> list[Rect | None]:
    """Greedy placement, largest face first and small (`rough`) faces last.

    A place lies in the image and overlaps no placed label and no other face's box, so a
    label is never read as another face's: it touches its own box or, for a face that is
    not rough, sits a short leader line away (see `leader`) that crosses no other box.
    None where nothing fits."""
    h, w = image_shape[:2]
    rough = rough or [False] * len(boxes)
    rects = [_box_rect(b) for b in boxes]
    placed: list[Rect] = []
    out: list[Rect | None] = [None] * len(rects)
    order = sorted(range(len(rects)), key=lambda i: (rough[i], -(rects[i][3] - rects[i][1])))
    for i in order:
        lw, lh = sizes[i]
        if lw > w or lh > h:
            continue
        others = [r for j, r in enumerate(rects) if j != i]
        for cx, cy in _candidates(rects[i], lw, lh, leaders=not rough[i]):
            cx = min(max(cx, 0), w - lw)
            r = (cx, cy, cx + lw, cy + lh)
            if cy < 0 or cy + lh > h or any(_overlaps(r, p) for p in placed) or any(_overlaps(r, o) for o in others):
                continue
            line = leader(r, rects[i])
            if line is not None and (rough[i] or any(_crosses(line, o) for o in others)):
                continue
            placed.append(r)
            out[i] = r
            break
    return out


def annotate(rgb: np.ndarray, faces: Sequence, labels: str = "full") -> np.ndarray:
    """A copy of `rgb` with every face's box and, where it fits, its label (`labels`:
    full "34 ±4", age "34", none). Small faces are drawn dimmer and thinner with the age
    alone, so the faces whose ages can be trusted stand out in a crowd.
    `faces` are pipeline FaceResults (box, age, std, small_face; track_age when tracked)."""
    check_labels(labels)
    img = rgb.copy()
    if not faces:
        return img
    rough = [bool(f.small_face) for f in faces]
    px = [text_px(img.shape, f.box[3] - f.box[1]) for f in faces]
    patches = [None if labels == "none" else
               render_label(face_label(f, "age" if r else labels), p) for f, r, p in zip(faces, rough, px)]
    spots = (place_labels([f.box for f in faces], [(q.shape[1], q.shape[0]) for q in patches], img.shape, rough)
             if labels != "none" else [None] * len(faces))
    for small in (True, False):  # small faces first, blended in, so the others are drawn over them
        if small and not any(rough):
            continue  # the blend compares every pixel: 23 of annotate's 32 ms on a 720p frame
        canvas = img.copy() if small else img
        for f, r, p, patch, spot in zip(faces, rough, px, patches, spots):
            if r != small:
                continue
            x1, y1, x2, y2 = (int(round(v)) for v in f.box)
            thick = 1 if r else max(1, round(p / 8))
            cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_RGB, thick, lineType=cv2.LINE_AA)
            if spot is None:
                continue
            line = leader(spot, _box_rect(f.box))
            if line is not None:
                cv2.line(canvas, line[0], line[1], BOX_RGB, thick, lineType=cv2.LINE_AA)
            canvas[spot[1]:spot[3], spot[0]:spot[2]] = patch
        if small:
            drawn = (canvas != img).any(axis=2)
            img[drawn] = (ROUGH_ALPHA * canvas[drawn] + (1 - ROUGH_ALPHA) * img[drawn]).round().astype(np.uint8)
    return img
