"""What a teacher would teach: its age distribution mixed into a model's, before training.

    python bench/teacher_mix.py --model v8.onnx --teacher runs/starts/dlib_age_tmpl.pth

`TRAIN.TEACHER_WEIGHT w` makes each age target `(1 - w) * label + w * teacher`. Mixing
the teacher's distribution into the model's at inference with the same weights shows,
before a run, which way the teacher pulls: the MAE and the 11-20 / 61+ bias on every
--every-th test face and every --train-every-th train face of UTKFace and All-Age-Faces,
and FairFace-540's in-group rate and worst group. Each model cuts the faces with its own
crop recipe (a template teacher on its template crops).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import cross_dataset
import fairface
from agecli.data.dataset import AlignedFaces
from agecli.data.records import csv_name, resolve_image_root
from agecli.eval.metrics import age_group
from agecli.infer.runners import open_runner


def probs(runner, faces: AlignedFaces, every: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(age distributions over 0-100, true ages, rows) of every `every`-th face."""
    keep = np.arange(0, len(faces), every)
    p = runner.predict(faces.images[keep])["probs"]
    full = np.zeros((len(p), 101), np.float32)
    lo = int(runner.meta.get("age_min", 0))
    full[:, lo:lo + p.shape[1]] = p
    return full, faces.ages[keep], faces.frame.iloc[keep]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="the model to be taught (.onnx or .pth)")
    ap.add_argument("--teacher", type=Path, required=True, help="the teacher (.onnx or .pth)")
    ap.add_argument("--weights", type=float, nargs="+", default=[0, 0.15, 0.3, 0.5, 1.0])
    ap.add_argument("--every", type=int, default=3, help="every Nth test face")
    ap.add_argument("--train-every", type=int, default=12, help="every Nth train face")
    ap.add_argument("--fairface", type=Path, default=Path("../shared/data/fairface540"))
    args = ap.parse_args()
    runners = {"model": open_runner(args.model), "teacher": open_runner(args.teacher)}
    sets = {}
    for name, d in cross_dataset.SETS.items():
        for split, every in (("train", args.train_every), ("test", args.every)):
            got = {k: probs(r, AlignedFaces.load(d / csv_name(name, split), resolve_image_root(d, name),
                                                 r.meta["img_size"], r.meta["expand"], d / ".agecli_cache",
                                                 template=r.meta.get("template")), every)
                   for k, r in runners.items()}
            sets[f"{name} {split}"] = (got["model"][0], got["teacher"][0], got["model"][1])
    ff = {}
    for k, r in runners.items():
        faces, labels = fairface.load(args.fairface, Path("data") / fairface.NAME, r.meta)
        ff[k] = probs(r, faces, 1)
    bins = np.arange(101)
    rows = []
    for w in args.weights:
        row = {"teacher weight": w}
        for key, (pm, pt, ages) in sets.items():
            err = ((1 - w) * pm + w * pt) @ bins - ages
            groups = np.array([age_group(a) for a in ages])
            row[f"{key} MAE"] = round(float(np.abs(err).mean()), 3)
            for g in ("11-20", "61+"):
                row[f"{key} bias {g}"] = round(float(err[groups == g].mean()), 2)
        (pm, _, rows_m), (pt, _, rows_t) = ff["model"], ff["teacher"]
        assert (rows_m["photo"].to_numpy() == rows_t["photo"].to_numpy()).all()
        s = fairface.score(((1 - w) * pm + w * pt) @ bins, None, None, rows_m, labels)
        row.update({"FairFace in-group": s["in-group"], "worst group": s["worst group"]})
        rows.append(row)
    print(cross_dataset.markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
