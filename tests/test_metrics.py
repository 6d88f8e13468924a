"""Accuracy figures on hand-made predictions whose answers are known."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agecli.eval.metrics import (age_group, age_group_names, age_metrics, cumulative_accuracy, group_table, mae,
                                 std_error_correlation)

TRUE = np.array([10, 20, 30, 40])
PRED = np.array([12, 20, 24, 47.5])  # errors +2, 0, -6, +7.5


def test_mae_and_ca():
    assert mae(PRED, TRUE) == pytest.approx((2 + 0 + 6 + 7.5) / 4)
    assert cumulative_accuracy(PRED, TRUE, 3) == pytest.approx(0.5)
    assert cumulative_accuracy(PRED, TRUE, 5) == pytest.approx(0.5)
    assert cumulative_accuracy(PRED, TRUE, 6) == pytest.approx(0.75)  # |error| <= n counts
    assert cumulative_accuracy(PRED, TRUE, 7) == pytest.approx(0.75)
    m = age_metrics(PRED, TRUE, "tta_")
    assert set(m) == {"tta_mae", "tta_ca3", "tta_ca5", "tta_ca7"} and m["tta_ca7"] == pytest.approx(0.75)
    assert math.isnan(mae(np.array([]), np.array([])))


@pytest.mark.parametrize("age,group", [(0, "0-5"), (5, "0-5"), (6, "6-10"), (10, "6-10"), (11, "11-20"),
                                       (40, "31-40"), (41, "41-60"), (60, "41-60"), (61, "61+"), (116, "61+"),
                                       (-3, "unknown")])
def test_age_group_boundaries(age, group):
    assert age_group(age) == group


def test_age_group_names_in_order():
    assert age_group_names() == ["0-5", "6-10", "11-20", "21-30", "31-40", "41-60", "61+"]


def test_group_table():
    df = pd.DataFrame({"age": [5, 6, 6, 60, 61], "pred": [7, 6, 16, 50, 63], "g": ["a", "b", "b", "a", "a"]})
    t = group_table(df, "g").set_index("g")
    assert t.loc["a", "count"] == 3 and t.loc["b", "count"] == 2
    assert t.loc["a", "mae"] == pytest.approx((2 + 10 + 2) / 3)
    assert t.loc["a", "bias"] == pytest.approx((2 - 10 + 2) / 3)
    assert t.loc["a", "ca5"] == pytest.approx(2 / 3)
    assert t.loc["b", "mae"] == pytest.approx(5) and t.loc["b", "bias"] == pytest.approx(5)
    assert t.loc["b", "ca5"] == pytest.approx(0.5)  # errors 0 and 10
    df["age_group"] = [age_group(a) for a in df["age"]]
    by_age = group_table(df, "age_group").set_index("age_group")
    assert by_age["count"].to_dict() == {"0-5": 1, "6-10": 2, "41-60": 1, "61+": 1}


def test_std_error_correlation():
    true = np.zeros(4)
    assert std_error_correlation(np.array([1, 2, 3, 4]), np.array([1, 2, 3, 4]), true) == pytest.approx(1.0)
    assert std_error_correlation(np.array([4, 3, 2, 1]), np.array([1, 2, 3, 4]), true) == pytest.approx(-1.0)
    assert math.isnan(std_error_correlation(np.zeros(4), np.array([1, 2, 3, 4]), true))  # a reg head: no std
