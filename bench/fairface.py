"""FairFace-540: the one collection no agecli model trains on, scored as age groups.

`../shared/data/fairface540/labels.csv` gives `path,age_group,gender` for 540 faces of
224 x 224 (FairFace's margin-0.25 crops): 9 age groups (0-2 ... 70+) x 2 genders x 30.
Labels are groups, not years, so a prediction is scored against its interval [lo, hi]
(70+ = 70-100), read in whole years as users read ages (a prediction p is in the group
when round(p) is, i.e. p in [lo - 0.5, hi + 0.5)):

- in-group: share of faces whose rounded prediction lies inside the group;
- distance: mean years from the prediction to that interval (0 inside);
- within 1 std: share whose pred +- std overlaps the interval (aim: near 68 %);
- gender accuracy; per group: in-group rate, median prediction and gender accuracy.

Faces go through the detector and the crop `demo` uses (the largest, most central face
of each photo); a photo where no face is found counts as outside its group. The
detections are written once to `<out>/fairface540_test_align.csv` (age: the group's
middle, for the CSV's schema only) with `age_lo`/`age_hi` columns, and the crops are
cached like any aligned set. Only for judging: never train, fit a std scale or pick
epochs on it (../shared/data/README.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from agecli.data.dataset import AlignedFaces

NAME = "fairface540"
GROUPS = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]
TOP = 100  # the upper end of "70+"


def interval(group: str) -> tuple[int, int]:
    lo, _, hi = group.rstrip("+").partition("-")
    return int(lo), int(hi) if hi else TOP


def prepare(root: Path, out: Path) -> Path:
    """Detect and align every labelled face once; returns the aligned CSV."""
    from agecli.data.images import ImageError, load_rgb
    from agecli.data.records import atomic_write_csv, csv_name, image_root_file
    from agecli.face.align import align_face
    from agecli.face.detector import FaceDetector, main_face

    csv = out / csv_name(NAME, "test")
    if csv.exists() and "lm10" in csv.read_text(encoding="utf-8").split("\n", 1)[0].split(","):
        return csv  # made once; one without the landmarks (template crops) is made again
    labels = pd.read_csv(root / "labels.csv")
    det = FaceDetector()
    rows = []
    for r in labels.itertuples(index=False):
        lo, hi = interval(r.age_group)
        row = {"photo": r.path, "age": (lo + hi) / 2, "gender": 0 if r.gender == "Male" else 1,
               "age_group": r.age_group, "age_lo": lo, "age_hi": hi}
        try:
            rgb = load_rgb(root / r.path)
        except ImageError:
            rgb = None
        face = main_face(det.detect(rgb), *rgb.shape[:2]) if rgb is not None else None
        if face is not None:
            a = align_face(face, *rgb.shape[:2])
            row.update(deg=a.deg, box1=a.box[0], box2=a.box[1], box3=a.box[2], box4=a.box[3])
            row.update({f"lm{i}": float(v) for i, v in enumerate(face.landmarks.reshape(-1), 1)})
        rows.append(row)
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    image_root_file(out, NAME).write_text(str(root.resolve()))
    atomic_write_csv(df[df["deg"].notna()], csv)
    atomic_write_csv(df, out / f"{NAME}_labels.csv")  # every face, found or not: the denominator
    return csv


def load(root: Path, out: Path, meta) -> tuple[AlignedFaces, pd.DataFrame]:
    """The faces found, cut with a model's crop recipe (`meta`: img_size, expand, template),
    and every labelled face (the denominator)."""
    from agecli.data.dataset import AlignedFaces

    faces = AlignedFaces.load(prepare(root, out), root, meta["img_size"], meta["expand"], out / ".agecli_cache",
                              template=meta.get("template"))
    return faces, pd.read_csv(out / f"{NAME}_labels.csv")


def answer(model: Path, root: Path, out: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """One model's raw answers on the faces found, cut with its own crop recipe: (the
    runner's outputs, the found rows in order, every labelled face)."""
    from agecli.infer.runners import open_runner

    runner = open_runner(model)
    faces, labels = load(root, out, runner.meta)
    return runner.predict(faces.images), faces.frame, labels


def per_face(pred: np.ndarray, gender_pred: np.ndarray | None, found: pd.DataFrame,
             labels: pd.DataFrame) -> pd.DataFrame:
    """One row per labelled face (`labels`' order): found, inside its group, distance to
    it, the prediction, and (with `gender_pred`) whether the gender is right; `found` are
    the rows predicted, in order. A face not found is outside its group."""
    full = labels.set_index("photo")
    pr = pd.Series(pred, index=found["photo"].values).reindex(full.index).to_numpy(float)  # NaN: not found
    lo, hi = full["age_lo"].to_numpy(float) - 0.5, full["age_hi"].to_numpy(float) + 0.5
    has = ~np.isnan(pr)
    out = pd.DataFrame({"group": full["age_group"].to_numpy(), "found": has, "pred": pr,
                        "inside": has & (pr >= lo) & (pr < hi),
                        "distance": np.where(has, np.maximum(np.maximum(lo - pr, pr - hi), 0), np.nan),
                        "lo": lo, "hi": hi}, index=full.index)
    if gender_pred is not None:
        g = pd.Series(gender_pred, index=found["photo"].values).reindex(full.index).to_numpy(float)
        out["gender_right"] = has & (g == full["gender"].to_numpy())
    return out


def score(pred: np.ndarray, std: np.ndarray | None, gender_pred: np.ndarray | None, found: pd.DataFrame,
          labels: pd.DataFrame) -> dict:
    """Figures over ALL labelled faces (`labels`); `found` are the rows predicted, in order."""
    f = per_face(pred, gender_pred, found, labels)
    has, inside, pr, groups = f["found"].to_numpy(), f["inside"].to_numpy(), f["pred"].to_numpy(), f["group"].to_numpy()
    row = {"faces": int(has.sum()), "of": len(f), "in-group": round(float(inside.mean()), 3),
           "distance": round(float(np.nanmean(f["distance"])), 2)}
    if std is not None:
        s = pd.Series(std, index=found["photo"].values).reindex(f.index).to_numpy(float)
        lo, hi = f["lo"].to_numpy(), f["hi"].to_numpy()
        row["within 1 std"] = round(float((has & (pr + s >= lo) & (pr - s < hi)).mean()), 3)
    if gender_pred is not None:
        right = f["gender_right"].to_numpy()
        row["gender acc"] = round(float(right.mean()), 3)
        for name in GROUPS:
            row[f"gender {name}"] = round(float(right[groups == name].mean()), 2)
    for name in GROUPS:
        m = groups == name
        row[f"in {name}"] = round(float(inside[m].mean()), 2) if m.any() else float("nan")
    row["worst group"] = min(row[f"in {g}"] for g in GROUPS)
    for name in GROUPS:
        m = (groups == name) & has
        row[f"median {name}"] = round(float(np.median(pr[m])), 1) if m.any() else float("nan")
    return row
