"""Accuracy figures: MAE, cumulative accuracy CA(n), and per-group tables."""
from __future__ import annotations

import numpy as np
import pandas as pd

AGE_GROUPS = [(0, 5), (6, 10), (11, 20), (21, 30), (31, 40), (41, 60), (61, 200)]


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, float) - np.asarray(true, float)))) if len(true) else float("nan")


def cumulative_accuracy(pred: np.ndarray, true: np.ndarray, years: float) -> float:
    """Share of faces whose |error| <= `years`."""
    err = np.abs(np.asarray(pred, float) - np.asarray(true, float))
    return float(np.mean(err <= years)) if len(err) else float("nan")


def age_group(age: float) -> str:
    for lo, hi in AGE_GROUPS:
        if lo <= round(age) <= hi:
            return f"{lo}-{hi}" if hi < 200 else f"{lo}+"
    return "unknown"


def group_table(df: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """count, MAE, bias (mean signed error) and CA(5) per group of `by` (columns of df
    that also holds `age` and `pred`)."""
    err = df["pred"] - df["age"]
    g = df.assign(err=err, abs_err=err.abs(), ok5=err.abs() <= 5).groupby(by, sort=False, observed=True)
    out = pd.DataFrame({"count": g.size(), "mae": g["abs_err"].mean(), "bias": g["err"].mean(), "ca5": g["ok5"].mean()})
    return out.reset_index()
