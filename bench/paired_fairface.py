"""Is one model's FairFace-540 figure really better than another's? Paired, face by face.

    python bench/paired_fairface.py --model v5=weights/agecli_default.onnx --model cand=runs/cand.pth

540 faces are few: a proportion near 0.43 has a standard error of 0.02 on its own. Both
models answer the same faces, so their difference is judged pair by pair: for every
model after the first, the change in in-group rate and gender accuracy against the
first, the faces only it gets right / only the first gets right, a 95 % interval of the
change from 10,000 paired bootstrap resamples of the 540 faces (seed 0), and the change
in mean distance to the group with its interval (over the faces both models found, as
`fairface.score` reads distance over the faces found). Faces go through the detector and crop
`demo` uses (`bench/fairface.py`), each model cut with its own crop recipe.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import fairface
from cross_dataset import markdown

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
    args = ap.parse_args()
    if len(args.model) < 2:
        ap.error("give a reference model and at least one to compare with it")
    out = Path("data") / fairface.NAME
    got = {name: answers(Path(path), args.fairface, out)
           for name, _, path in (spec.partition("=") for spec in args.model)}
    names = list(got)
    ref = got[names[0]]
    rows = [{"model": n, "against": names[0], **compare(ref, got[n])} for n in names[1:]]
    print(markdown(pd.DataFrame(rows)))


if __name__ == "__main__":
    main()
