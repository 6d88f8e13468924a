"""Accuracy figures: MAE, cumulative accuracy CA(n), and per-group tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..vocab import AGE_GROUPS

GROUPINGS = {  # report name -> columns of the prediction frame it groups by
    "by_age_group": ["age_group"],
    "by_gender": ["gender"],
    "by_ethnicity": ["race"],
    "by_gender_age_group": ["gender", "age_group"],
}
RENAME = {"race": "ethnicity"}  # frame column -> its name in the tables
CA_YEARS = (3, 5, 7)


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, float) - np.asarray(true, float)))) if len(true) else float("nan")


def cumulative_accuracy(pred: np.ndarray, true: np.ndarray, years: float) -> float:
    """Share of faces whose |error| <= `years`."""
    err = np.abs(np.asarray(pred, float) - np.asarray(true, float))
    return float(np.mean(err <= years)) if len(err) else float("nan")


def age_metrics(pred: np.ndarray, true: np.ndarray, prefix: str = "") -> dict[str, float]:
    """{prefix}mae and {prefix}ca3/ca5/ca7 in one dict."""
    out = {f"{prefix}mae": mae(pred, true)}
    out.update({f"{prefix}ca{n}": cumulative_accuracy(pred, true, n) for n in CA_YEARS})
    return out


def age_group_names() -> list[str]:
    """The age-group labels in age order: 0-5, 6-10, ..., 61+."""
    return [f"{lo}-{hi}" if hi < 200 else f"{lo}+" for lo, hi in AGE_GROUPS]


def age_group(age: float) -> str:
    for lo, hi in AGE_GROUPS:
        if lo <= round(age) <= hi:
            return f"{lo}-{hi}" if hi < 200 else f"{lo}+"
    return "unknown"


def std_error_correlation(std: np.ndarray, pred: np.ndarray, true: np.ndarray) -> float:
    """Pearson correlation between the model's predicted std and its |error|: how well
    "how sure" tracks "how right" (NaN when either side is constant, e.g. a reg head)."""
    std = np.asarray(std, float)
    abs_err = np.abs(np.asarray(pred, float) - np.asarray(true, float))
    if len(std) < 2 or np.std(std) == 0 or np.std(abs_err) == 0:
        return float("nan")
    r = float(np.corrcoef(std, abs_err)[0, 1])
    return r if math.isfinite(r) else float("nan")


def group_table(df: pd.DataFrame, by: str | list[str]) -> pd.DataFrame:
    """count, MAE, bias (mean signed error) and CA(5) per group of `by` (columns of df
    that also holds `age` and `pred`)."""
    err = df["pred"] - df["age"]
    g = df.assign(err=err, abs_err=err.abs(), ok5=err.abs() <= 5).groupby(by, sort=False, observed=True)
    out = pd.DataFrame({"count": g.size(), "mae": g["abs_err"].mean(), "bias": g["err"].mean(), "ca5": g["ok5"].mean()})
    return out.reset_index()


def group_tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per-group tables, groups in their natural order (ages ascending, male/female, ...);
    a grouping whose labels the set does not have is left out."""
    out = {}
    for stem, by in GROUPINGS.items():
        if not all(c in df for c in by):
            continue
        t = group_table(df, by).sort_values(by, kind="stable").reset_index(drop=True)
        for c in by:
            t[c] = t[c].astype(str)
        out[stem] = t.rename(columns=RENAME)
    return out


def worst_faces(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Faces with |error| > threshold, worst first (the frame's index kept, for the crops)."""
    bad = df[df["error"].abs() > threshold]
    return bad.reindex(bad["error"].abs().sort_values(ascending=False, kind="stable").index)
