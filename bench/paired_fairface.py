"""Is one model's FairFace-540 figure really better than another's? Paired, face by face.

    python bench/paired_fairface.py --model v5=weights/agecli_default.onnx --model cand=runs/cand.pth [--test-sets]

540 faces are few: a proportion near 0.43 has a standard error of 0.02 on its own. Both
models answer the same faces, so their difference is judged pair by pair: for every
model after the first, the change in in-group rate and gender accuracy against the
first, the faces only it gets right / only the first gets right, a 95 % interval of the
change from 10,000 paired bootstrap resamples of the 540 faces (seed 0), and the change
in mean distance to the group with its interval (over the faces both models found, as
`fairface.score` reads distance over the faces found). Faces go through the detector and crop
`demo` uses (`bench/fairface.py`), each model cut with its own crop recipe. With
--test-sets, also the change in MAE on the UTKFace and All-Age-Faces test splits, face by
face with the same bootstrap: in-domain gains of 0.02 years are near their noise too.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import fairface
from cross_dataset import SETS, markdown, test_crops

RESAMPLES = 10_000


def answers(model: Path, root: Path, out: Path) -> pd.DataFrame:
    """The model's per-face figures over every labelled FairFace-540 face."""
    res, found, labels = fairface.answer(model, root, out)
    gender = res["gender_probs"].argmax(1) if "gender_probs" in res else None
    return fairface.per_face(res["age"], gender, found, labels)


def paired(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean of b - a over the faces, and the 2.5 / 97.5 % points of its paired bootstrap."""
    d = b.astype(float) - a.astype(float)
    idx = rng.integers(0, len(d), (RESAMPLES, len(d)))
    lo, hi = np.quantile(d[idx].mean(1), [0.025, 0.975])
    return float(d.mean()), float(lo), float(hi)


def test_errors(model: Path) -> dict[str, np.ndarray]:
    """The model's absolute error on every face of each in-domain test split, its own crop."""
    from agecli.infer.runners import open_runner

    runner = open_runner(model)
    out = {}
    for ds in SETS:
        data = test_crops(ds, runner.meta)
        out[ds] = np.abs(runner.predict(data.images)["age"] - data.ages)
    return out


def mae_changes(ref: dict[str, np.ndarray], other: dict[str, np.ndarray], seed: int = 0) -> dict:
    """The MAE change of `other` against `ref` on each test split, with its 95 % interval."""
    rng = np.random.default_rng(seed)
    row = {}
    for ds in ref:
        mean, lo, hi = paired(ref[ds], other[ds], rng)
        row[f"{ds} MAE change"] = f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"
    return row


def compare(ref: pd.DataFrame, other: pd.DataFrame, seed: int = 0) -> dict:
    """`other` against `ref`, face by face (both from `answers`, same faces in the same order)."""
    rng = np.random.default_rng(seed)
    row = {}
    cols = [("in-group", "inside")] + ([("gender", "gender_right")] if "gender_right" in ref and "gender_right" in other else [])
    for label, col in cols:
        a, b = ref[col].to_numpy(bool), other[col].to_numpy(bool)
        mean, lo, hi = paired(a, b, rng)
        row.update({label: round(float(b.mean()), 3), f"{label} change": f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]",
                    f"{label}: only it / only ref": f"{int((b & ~a).sum())} / {int((a & ~b).sum())}"})
    # distance as fairface.score reads it: over the faces found (here, found for both)
    both = ref["found"].to_numpy() & other["found"].to_numpy()
    mean, lo, hi = paired(ref["distance"].to_numpy()[both], other["distance"].to_numpy()[both], rng)
    row["distance change"] = f"{mean:+.2f} [{lo:+.2f}, {hi:+.2f}]"
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=PATH; the first is the reference")
    ap.add_argument("--fairface", type=Path, default=Path("../shared/data/fairface540"))
    ap.add_argument("--test-sets", action="store_true", help="also the paired MAE change on the in-domain test splits")
    args = ap.parse_args()
    if len(args.model) < 2:
        ap.error("give a reference model and at least one to compare with it")
    out = Path("data") / fairface.NAME
    models = {name: Path(path) for name, _, path in (spec.partition("=") for spec in args.model)}
    got = {name: answers(path, args.fairface, out) for name, path in models.items()}
    names = list(got)
    ref = got[names[0]]
    rows = [{"model": n, "against": names[0], **compare(ref, got[n])} for n in names[1:]]
    if args.test_sets:
        errors = {name: test_errors(path) for name, path in models.items()}
        for row in rows:
            row.update(mae_changes(errors[names[0]], errors[row["model"]]))
    print(markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
