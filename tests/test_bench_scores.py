"""The screens' own arithmetic: bench/readout_screen.py's read-outs on distributions whose
mean, median and sharpened mean are known exactly; bench/paired_fairface.py's paired
comparison on answers whose difference is known exactly."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from fairface import per_face  # noqa: E402
from paired_fairface import compare, mae_changes  # noqa: E402
from readout_screen import readouts  # noqa: E402


def test_readouts_of_known_distributions():
    p = np.zeros((3, 101))
    p[0, 30] = 1.0  # all mass on one age
    p[1, 20:30] = 0.1  # uniform over 20-29
    p[2, 10], p[2, 60] = 0.8, 0.2  # a mode and a far tail
    r = readouts(p)
    assert r["mean"] == pytest.approx([30, 24.5, 20])
    # the median interpolates inside the bin where half the mass is reached
    assert r["median"] == pytest.approx([30, 24.5, 10 - 0.5 + 0.5 / 0.8])
    # sharpening leaves a point mass and a uniform alone and pulls a tail toward the mode
    sharp = r["sharpened T=0.5"]
    assert sharp[:2] == pytest.approx([30, 24.5])
    assert sharp[2] == pytest.approx((0.64 * 10 + 0.04 * 60) / 0.68)
    assert r["median"][2] < sharp[2] < r["sharpened T=0.7"][2] < r["mean"][2]
    # dividing by a flat prior changes nothing; by one that favours 10, it moves away from 10
    flat = readouts(p, np.full(101, 1 / 101))
    assert flat["prior^1.0 divided"] == pytest.approx(r["mean"])
    favour = np.full(101, 1.0)
    favour[10] = 4.0
    moved = readouts(p, favour / favour.sum())["prior^1.0 divided"]
    assert moved[2] == pytest.approx((0.2 * 10 + 0.2 * 60) / 0.4) and moved[:2] == pytest.approx([30, 24.5])


def _answers(preds, genders):
    labels = pd.DataFrame({"photo": [f"f{i}.jpg" for i in range(4)], "age_group": ["20-29"] * 4,
                           "age_lo": 20, "age_hi": 29, "gender": [0, 1, 0, 1]})
    found = labels.iloc[:3]  # the fourth face was not found: outside its group, gender wrong
    return per_face(np.array(preds, float), np.array(genders), found, labels)


def test_per_face_scores_every_labelled_face():
    f = _answers([25, 29.4, 35], [0, 0, 0])
    assert f["inside"].tolist() == [True, True, False, False]  # 29.4 rounds into 20-29
    assert f["gender_right"].tolist() == [True, False, True, False]
    assert f["distance"].iloc[2] == pytest.approx(35 - 29.5) and np.isnan(f["distance"].iloc[3])


def test_paired_comparison_counts_the_faces_that_differ():
    ref, other = _answers([25, 35, 35], [0, 0, 0]), _answers([25, 25, 35], [0, 1, 0])
    row = compare(ref, other)
    assert row["in-group"] == 0.5 and row["in-group: only it / only ref"] == "1 / 0"
    assert row["gender: only it / only ref"] == "1 / 0"
    assert row["in-group change"].startswith("+0.250 [")  # one face of four gained
    # distance over the three faces both found: 35 -> 25 on the second is 5.5 years nearer
    assert row["distance change"].startswith("-1.83 [")
    same = compare(ref, ref)
    assert same["in-group change"] == "+0.000 [+0.000, +0.000]" and same["distance change"] == "+0.00 [+0.00, +0.00]"


def test_paired_mae_change_is_the_mean_difference_with_its_interval():
    ref = {"utkface": np.array([2.0, 4.0, 6.0, 8.0]), "aaf": np.array([1.0, 1.0])}
    other = {"utkface": ref["utkface"] - 0.5, "aaf": np.array([1.0, 1.0])}
    row = mae_changes(ref, other)
    assert row["utkface MAE change"] == "-0.500 [-0.500, -0.500]"  # every face 0.5 years nearer
    assert row["aaf MAE change"] == "+0.000 [+0.000, +0.000]"
    mixed = mae_changes({"utkface": np.array([3.0, 3.0])}, {"utkface": np.array([2.0, 4.0])})
    lo, hi = mixed["utkface MAE change"].split("[")[1].rstrip("]").split(", ")
    assert mixed["utkface MAE change"].startswith("+0.000") and float(lo) < 0 < float(hi)
