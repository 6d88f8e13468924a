"""Other read-outs of one model's age distribution, on the three collections.

    python bench/readout_screen.py --model weights/agecli_default.onnx

The shipped head reads a face's age as the mean of its distribution over 0-100. On faces
unlike the training ones the distribution spreads, and its mean drifts toward the middle
of the range: the young placed too old, the old too young. This scores the same
probabilities read as the mean, the median, and the mean of the sharpened distribution
(p^(1/T), T 0.7 and 0.5), and divided by the training faces' age prior (p / prior^tau,
tau 0.25 / 0.5 / 1: the label-shift correction toward a flat age distribution; the prior
is the histogram of the train splits' ages, smoothed by a Gaussian of 2 years) on the
UTKFace and AAF test sets (MAE, the 11-20 and 61+ bias)
and FairFace-540 (in-group, distance, worst group, each group's rate), so a read-out is
chosen from one run of the model.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import cross_dataset
import fairface
from agecli.data.records import csv_name
from agecli.eval.metrics import age_group
from agecli.infer.runners import open_runner

TEMPERATURES = (0.7, 0.5)
PRIOR_POWERS = (0.25, 0.5, 1.0)


def train_prior(bins: int) -> np.ndarray:
    """The train splits' age histogram over 0..bins-1, smoothed (sigma 2 years), +1 per bin."""
    ages = np.concatenate([pd.read_csv(d / csv_name(n, "train"))["age"].to_numpy() for n, d in cross_dataset.SETS.items()])
    hist = np.bincount(np.clip(np.round(ages), 0, bins - 1).astype(int), minlength=bins).astype(float)
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    prior = np.convolve(np.pad(hist, 6, mode="edge"), kernel / kernel.sum(), "valid") + 1
    return prior / prior.sum()


def readouts(probs: np.ndarray, prior: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each read-out's ages from (N, bins) probabilities over ages 0..bins-1 (with
    `prior`, the training prior, the prior-divided ones too)."""
    bins = np.arange(probs.shape[1], dtype=float)
    rows = np.arange(len(probs))
    cum = probs.cumsum(1)
    i = (cum < 0.5).sum(1)  # the bin where half the mass is reached, interpolated inside it
    before = np.where(i > 0, cum[rows, np.maximum(i - 1, 0)], 0.0)
    out = {"mean": probs @ bins, "median": i - 0.5 + (0.5 - before) / np.maximum(probs[rows, i], 1e-9)}
    for t in TEMPERATURES:
        sharp = probs ** (1 / t)
        out[f"sharpened T={t}"] = (sharp / sharp.sum(1, keepdims=True)) @ bins
    for tau in PRIOR_POWERS if prior is not None else ():
        flat = probs / prior ** tau
        out[f"prior^{tau} divided"] = (flat / flat.sum(1, keepdims=True)) @ bins
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("weights/agecli_default.onnx"))
    ap.add_argument("--fairface", type=Path, default=Path("../shared/data/fairface540"))
    args = ap.parse_args()
    runner = open_runner(args.model)
    meta = runner.meta
    if meta.get("age_min", 0) != 0:
        raise SystemExit("the read-outs assume age bins 0..N-1")
    prior = train_prior(meta["age_max"] + 1)
    rows: dict[str, dict] = {}
    for name in cross_dataset.SETS:
        data = cross_dataset.test_crops(name, meta)
        groups = np.array([age_group(a) for a in data.ages])
        for how, pred in readouts(runner.predict(data.images)["probs"], prior).items():
            err = pred - data.ages
            rows.setdefault(how, {"read-out": how})[f"{name} MAE"] = round(float(np.abs(err).mean()), 3)
            for g in ("11-20", "61+"):
                rows[how][f"{name} bias {g}"] = round(float(err[groups == g].mean()), 2)
    res, found, labels = fairface.answer(args.model, args.fairface, Path("data") / fairface.NAME)
    for how, pred in readouts(res["probs"], prior).items():
        s = fairface.score(pred, None, None, found, labels)
        rows[how].update({k: v for k, v in s.items() if k in ("in-group", "distance", "worst group")
                          or k.startswith("in ")})
    print(cross_dataset.markdown(pd.DataFrame(rows.values())))


if __name__ == "__main__":
    main()
