"""Face detection recall against face size, and what it costs, for the detector's settings.

    python bench/bench_detector_recall.py [--utk-dir ../shared/data/utkface/UTKFace]
        [--photos ../shared/photos] [--canvases 12] [--model weights/agecli_default.onnx]

Real UTKFace faces are pasted, at known face-box widths (8..64 px) and positions, in
rows like a crowd's (small at the back, large in front) onto real photos whose own faces
are blurred away (every photo but group_25, which is kept to check the choice on).
Each canvas is searched in one pass at several input scales (score thresholds applied
to the same detections), and by the detector's two-pass rule. Printed: recall per face
size, extra detections per canvas (unlabelled: false positives, or real faces the blur
missed), detection time per canvas; the age model's MAE on the same faces shrunk to each
size (why faces under SMALL_FACE_PX are flagged); and the faces found on group_25 and the
whole photo folder, and the time, one pass against the two-pass settings.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from agecli.data.images import load_rgb
from agecli.face.detector import SMALL_FACE_PX, Face, FaceDetector, main_face
from agecli.infer.default_model import default_model_path
from agecli.infer.pipeline import crop_faces
from agecli.infer.runners import open_runner
from agecli.infer.sources import walk_images

SIZES = (8, 10, 12, 14, 16, 20, 24, 32, 48, 64)
HELD_OUT = "group_25.jpg"
CANVAS_W, CANVAS_H = 1024, 768


def chip_faces(utk_dir: Path, n: int, det: FaceDetector) -> list[tuple[np.ndarray, Face, float]]:
    """(chip RGB, its face, age) for n chips spread over the sorted listing."""
    files = sorted(p for p in utk_dir.iterdir() if p.name.endswith(".jpg") and " " not in p.name)
    out = []
    for p in files[:: max(1, len(files) // n)][:n]:
        rgb = load_rgb(p)
        f = main_face(det.detect(rgb), *rgb.shape[:2])
        if f is not None and f.width > 100:
            out.append((rgb, f, float(p.name.split("_")[0])))
    return out


def background(path: Path, det: FaceDetector) -> np.ndarray:
    """A photo resized to the canvas with every face the detector can find blurred away."""
    rgb = cv2.resize(load_rgb(path), (CANVAS_W, CANVAS_H), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(rgb, (0, 0), 12)
    for f in det.detect_at_scale(rgb, 3.0):
        cx, cy, r = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2, max(f.width, f.height) * 0.7
        x1, y1 = int(max(0, cx - r)), int(max(0, cy - r))
        x2, y2 = int(min(CANVAS_W, cx + r)), int(min(CANVAS_H, cy + r))
        rgb[y1:y2, x1:x2] = blurred[y1:y2, x1:x2]
    return rgb


def paste(canvas: np.ndarray, chip: np.ndarray, box: np.ndarray, width: int, cx: float, cy: float) -> np.ndarray | None:
    """Paste the whole chip (a tight UTKFace crop) scaled so its face box is `width` px
    wide, face centred at (cx, cy), with a feathered oval edge; returns the face box on
    the canvas (None if it does not fit)."""
    k = width / (box[2] - box[0])
    small = cv2.resize(chip, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    fb = box * k
    dx1, dy1 = int(round(cx - (fb[0] + fb[2]) / 2)), int(round(cy - (fb[1] + fb[3]) / 2))
    if dx1 < 0 or dy1 < 0 or dx1 + w > CANVAS_W or dy1 + h > CANVAS_H:
        return None
    yy, xx = np.mgrid[:h, :w]
    d = np.hypot((xx - w / 2 + 0.5) / (w / 2), (yy - h / 2 + 0.5) / (h / 2))
    alpha = np.clip((1.0 - d) / 0.2, 0, 1)[..., None]
    region = canvas[dy1:dy1 + h, dx1:dx1 + w].astype(np.float32)
    canvas[dy1:dy1 + h, dx1:dx1 + w] = (alpha * small + (1 - alpha) * region).astype(np.uint8)
    return fb + [dx1, dy1, dx1, dy1]


def make_canvas(bg: np.ndarray, chips, rng: np.random.Generator):
    """Rows of faces, SIZES from the top down, each row's faces 2.2 widths apart."""
    canvas, truth = bg.copy(), []
    y = 4.0
    for s in SIZES:
        cell = 2.2 * s
        cy = y + cell / 2
        for i in range(int(CANVAS_W // cell)):
            chip, face, age = chips[rng.integers(len(chips))]
            jx, jy = rng.uniform(-0.2, 0.2, 2) * s
            b = paste(canvas, chip, face.box, s, (i + 0.5) * cell + jx, cy + jy)
            if b is not None:
                truth.append((b, s, age))
        y += cell
    return canvas, truth


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes a (N,4) and b (M,4)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def match(faces: list[Face], truth) -> tuple[list[Face | None], int]:
    """For each true face the detection covering it (IoU >= 0.4) or None; and the extras."""
    if not faces:
        return [None] * len(truth), 0
    m = iou(np.stack([t[0] for t in truth]), np.stack([f.box for f in faces]))
    hit = [faces[int(np.argmax(row))] if row.max() >= 0.4 else None for row in m]
    return hit, int((m.max(0) < 0.4).sum())


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def recall_row(name: str, hits_by_size: dict, extras: int, seconds: float, n_canvas: int) -> str:
    cells = [f"{100 * np.mean(hits_by_size[s]):.0f}" for s in SIZES]
    return f"| {name} | " + " | ".join(cells) + f" | {extras / n_canvas:.1f} | {1000 * seconds / n_canvas:.0f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utk-dir", type=Path, default=Path("../shared/data/utkface/UTKFace"))
    ap.add_argument("--photos", type=Path, default=Path("../shared/photos"))
    ap.add_argument("--canvases", type=int, default=12)
    ap.add_argument("--chips", type=int, default=300)
    ap.add_argument("--scales", default="1,1.5,2,3")
    ap.add_argument("--thresholds", default="0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--rules", default="2:24,2:32,1.5:24", help="two-pass settings UPSCALE:RESCAN_BELOW")
    ap.add_argument("--rule-thresholds", default="0.7,0.8")
    ap.add_argument("--model", type=Path, default=None, help="age model (default: the shipped one)")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = its default)")
    args = ap.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    rng = np.random.default_rng(0)

    det = FaceDetector(threads=args.threads)
    chips = chip_faces(args.utk_dir, args.chips, det)
    photos = [p for p in walk_images(args.photos) if p.name != HELD_OUT]
    sensitive = FaceDetector(score_threshold=0.5, threads=args.threads)
    canvases = [make_canvas(background(photos[i % len(photos)], sensitive), chips, rng) for i in range(args.canvases)]
    n_true = {s: sum(1 for _, truth in canvases for t in truth if t[1] == s) for s in SIZES}
    print(f"{len(canvases)} canvases {CANVAS_W}x{CANVAS_H}, {len(chips)} UTKFace faces; faces per size: {n_true}\n")
    head = "| setting | " + " | ".join(f"{s}px" for s in SIZES) + " | extra/canvas | ms/canvas |"
    print("Recall (%) by face-box width in the photo\n\n" + head + "\n|" + "---|" * (len(SIZES) + 3))

    low = FaceDetector(score_threshold=min(thresholds), threads=args.threads)
    for scale in scales:
        runs = [timed(low.detect_at_scale, c, scale) for c, _ in canvases]
        seconds = sum(t for _, t in runs)
        for th in thresholds:
            hits, extras = {s: [] for s in SIZES}, 0
            for (faces, _), (_, truth) in zip(runs, canvases):
                h, e = match([f for f in faces if f.score > th], truth)
                extras += e
                for t, f in zip(truth, h):
                    hits[t[1]].append(f is not None)
            print(recall_row(f"one pass x{scale:g}, threshold {th:g}", hits, extras, seconds, len(canvases)))

    rules = [tuple(float(v) for v in r.split(":")) for r in args.rules.split(",")]
    for up, below in rules:
        for th in [float(t) for t in args.rule_thresholds.split(",")]:
            rule = FaceDetector(score_threshold=th, upscale=up, rescan_below=below, threads=args.threads)
            runs = [timed(rule.detect, c) for c, _ in canvases]
            hits, extras = {s: [] for s in SIZES}, 0
            for (faces, _), (_, truth) in zip(runs, canvases):
                h, e = match(faces, truth)
                extras += e
                for t, f in zip(truth, h):
                    hits[t[1]].append(f is not None)
            print(recall_row(f"two passes: x1, then x{up:g} if a face < {below:g} px, threshold {th:g}",
                             hits, extras, sum(t for _, t in runs), len(canvases)))

    # Age error against face size, without paste artefacts: each chip shrunk so its face
    # box is s px wide (what a face that small in a photo carries), cropped as demo does.
    runner = open_runner(args.model or default_model_path())
    size, expand = int(runner.meta["img_size"]), float(runner.meta["expand"])
    truth_ages = np.array([a for _, _, a in chips])
    full = runner.predict(np.concatenate([crop_faces(c, [f], size, expand) for c, f, _ in chips]))["age"]
    print(f"\nAge MAE (years) of the {len(chips)} faces shrunk to a face-box width (default model, "
          f"{size} px input); at the chips' own ~{np.mean([f.width for _, f, _ in chips]):.0f} px: "
          f"{np.mean(np.abs(full - truth_ages)):.2f}. SMALL_FACE_PX = {SMALL_FACE_PX:g}\n")
    print("| " + " | ".join(f"{s}px" for s in SIZES) + " |\n|" + "---|" * len(SIZES))
    maes = []
    for s in SIZES:
        crops = []
        for chip, f, _ in chips:
            k = s / f.width
            small = cv2.resize(chip, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            crops.append(crop_faces(small, [Face(f.box * k, f.score, f.landmarks * k)], size, expand))
        maes.append(np.mean(np.abs(runner.predict(np.concatenate(crops))["age"] - truth_ages)))
    print("| " + " | ".join(f"{m:.2f}" for m in maes) + " |")

    print("\nReal photos: faces found and detection time\n")
    print(f"| setting | {HELD_OUT}: faces | ms | all {len(list(walk_images(args.photos)))} photos: faces | ms |"
          "\n|---|---|---|---|---|")
    settings = [("one pass (before)", FaceDetector(upscale=1.0, threads=args.threads))]
    settings += [(f"two passes x{up:g} below {below:g} px, threshold {th}",
                  FaceDetector(score_threshold=float(th), upscale=up, rescan_below=below, threads=args.threads))
                 for up, below in rules for th in args.rule_thresholds.split(",")]
    images = {p.name: load_rgb(p) for p in walk_images(args.photos)}
    for name, d in settings:
        d.detect(images[HELD_OUT])  # warm-up
        row = []
        for group in ([images[HELD_OUT]], list(images.values())):
            counts, t = timed(lambda ims: [len(d.detect(im)) for im in ims], group)
            row += [sum(counts), 1000 * t]
        print(f"| {name} | {row[0]} | {row[1]:.0f} | {row[2]} | {row[3]:.0f} |")


if __name__ == "__main__":
    main()
