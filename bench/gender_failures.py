"""Where a model's gender answers fail on FairFace-540 (never trained on): by age group and by
how the face was photographed.

    python bench/gender_failures.py --model v5=weights/agecli_default.onnx --model w=runs/v5_window.pth

Each FairFace face goes through the detector and the crop `demo` uses (as
`bench/cross_dataset.py` does). Besides the age group, every face gets three measures of
its photo, each split into terciles over the 540 faces so every cell holds ~180 faces:
- turn: |nose - eye midpoint| / eye distance along the eye line (0 frontal; ~0.5 a
  three-quarter view), from the detector's five landmarks;
- light: mean luminance of the crop's middle half (0-255);
- sharpness: variance of the Laplacian of that middle half (low: blurred or upscaled).
Printed per model: accuracy in each cell, and which way the errors go (women called men,
men called women).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))


def photo_measures(root: Path, frame: pd.DataFrame, crops: np.ndarray) -> pd.DataFrame:
    """turn, light and sharpness of each found face (rows of `frame`, crops in that order)."""
    from agecli.data.images import load_rgb
    from agecli.face.detector import FaceDetector, main_face

    det = FaceDetector()
    turn = []
    for photo in frame["photo"]:
        rgb = load_rgb(root / photo)
        face = main_face(det.detect(rgb), *rgb.shape[:2])
        le, re, nose = face.landmarks[0], face.landmarks[1], face.landmarks[2]
        axis = re - le
        dist = float(np.linalg.norm(axis)) or 1.0
        turn.append(abs(float(np.dot(nose - (le + re) / 2, axis / dist))) / dist)
    s = crops.shape[1]
    mid = crops[:, s // 4: 3 * s // 4, s // 4: 3 * s // 4]
    gray = [cv2.cvtColor(np.ascontiguousarray(m), cv2.COLOR_RGB2GRAY) for m in mid]
    return pd.DataFrame({"turn": turn, "light": [float(g.mean()) for g in gray],
                         "sharpness": [float(cv2.Laplacian(g, cv2.CV_64F).var()) for g in gray]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=PATH (.onnx or .pth)")
    ap.add_argument("--fairface", type=Path, default=Path("../shared/data/fairface540"))
    ap.add_argument("--out", type=Path, default=Path("data/fairface540"))
    args = ap.parse_args()

    import fairface

    from agecli.data.dataset import AlignedFaces
    from agecli.infer.runners import open_runner

    csv = fairface.prepare(args.fairface, args.out)
    measures = None
    for spec in args.model:
        name, path = spec.split("=", 1)
        runner = open_runner(Path(path))
        data = AlignedFaces.load(csv, args.fairface, runner.meta["img_size"], runner.meta["expand"],
                                 args.out / ".agecli_cache", template=runner.meta.get("template"))
        if measures is None:
            measures = photo_measures(args.fairface, data.frame, data.images)
            for col in ("turn", "light", "sharpness"):
                measures[col + " tercile"] = pd.qcut(measures[col], 3, labels=["low", "mid", "high"])
        res = runner.predict(data.images)
        df = measures.copy()
        df["group"] = pd.Categorical(data.frame["age_group"].to_numpy(), categories=fairface.GROUPS, ordered=True)
        df["truth"] = data.genders
        df["pred"] = res["gender_probs"].argmax(1)
        df["right"] = df["truth"] == df["pred"]
        df["women_as_men"] = (df["truth"] == 1) & (df["pred"] == 0)
        df["men_as_women"] = (df["truth"] == 0) & (df["pred"] == 1)
        print(f"\n## {name}: gender accuracy {df['right'].mean():.3f} on {len(df)} found faces; "
              f"women called men {df['women_as_men'].sum()}, men called women {df['men_as_women'].sum()}")
        for col in ("group", "turn tercile", "light tercile", "sharpness tercile"):
            cells = df.groupby(col, observed=True).agg(faces=("right", "size"), accuracy=("right", "mean"),
                                                       women_as_men=("women_as_men", "sum"),
                                                       men_as_women=("men_as_women", "sum"))
            if col != "group":
                edges = df.groupby(col, observed=True)[col.split()[0]].agg(["min", "max"]).round(2)
                cells["range"] = [f"{a}-{b}" for a, b in zip(edges["min"], edges["max"])]
            print(f"\n| {col} | " + " | ".join(cells.columns) + " |\n|---|" + "---|" * len(cells.columns))
            for key, *row in cells.itertuples():
                print(f"| {key} | " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
