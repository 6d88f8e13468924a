"""Annotated copies: a box per face and an "age ±std" label sized to the image and the
face, placed greedily so labels do not overlap each other (or, when there is room,
other faces) in crowds. A label with no free place is left out; its box stays."""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

BOX_RGB = (255, 196, 0)
TEXT_RGB = (0, 0, 0)
Rect = tuple[int, int, int, int]  # x1, y1, x2, y2, exclusive end


@lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Bold (shipped with matplotlib, has the ± glyph) at `px` pixels."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    try:
        return ImageFont.truetype(str(path), px)
    except OSError:
        return ImageFont.load_default(px)


def label_text(age: float, std: float) -> str:
    return f"{age:.0f} ±{std:.0f}"


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


def place_labels(boxes: Sequence[Sequence[float]], sizes: Sequence[tuple[int, int]],
                 image_shape: tuple[int, ...]) -> list[Rect | None]:
    """Greedy placement, largest face first: above the box, below it, inside its top.

    A place must lie in the image and not overlap a placed label; places that also keep
    clear of other faces are preferred. None where nothing fits."""
    h, w = image_shape[:2]
    boxes_i = [tuple(int(round(v)) for v in b) for b in boxes]
    placed: list[Rect] = []
    out: list[Rect | None] = [None] * len(boxes_i)
    order = sorted(range(len(boxes_i)), key=lambda i: -(boxes_i[i][3] - boxes_i[i][1]))
    for i in order:
        x1, y1, x2, y2 = boxes_i[i]
        lw, lh = sizes[i]
        if lw > w or lh > h:
            continue
        x = min(max(x1, 0), w - lw)
        candidates = [(x, y1 - lh), (x, y2 + 1), (x, max(y1, 0))]
        rects = [(cx, cy, cx + lw, cy + lh) for cx, cy in candidates if 0 <= cy and cy + lh <= h]
        others = [boxes_i[j] for j in range(len(boxes_i)) if j != i]
        free = [r for r in rects if not any(_overlaps(r, p) for p in placed)]
        clear = [r for r in free if not any(_overlaps(r, o) for o in others)]
        choice = (clear or free or [None])[0]
        if choice is not None:
            placed.append(choice)
            out[i] = choice
    return out


def annotate(rgb: np.ndarray, faces: Sequence) -> np.ndarray:
    """A copy of `rgb` with every face's box and, where it fits, its age label.
    `faces` are pipeline FaceResults (box, age, std)."""
    img = rgb.copy()
    if not faces:
        return img
    labels = [render_label(label_text(f.age, f.std), text_px(img.shape, f.box[3] - f.box[1])) for f in faces]
    spots = place_labels([f.box for f in faces], [(p.shape[1], p.shape[0]) for p in labels], img.shape)
    for f, patch in zip(faces, labels):
        x1, y1, x2, y2 = (int(round(v)) for v in f.box)
        cv2.rectangle(img, (x1, y1), (x2, y2), BOX_RGB, max(1, round(patch.shape[0] / 10)), lineType=cv2.LINE_AA)
    for patch, spot in zip(labels, spots):
        if spot is not None:
            img[spot[1]:spot[3], spot[0]:spot[2]] = patch
    return img
