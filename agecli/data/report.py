"""The short data report `prepare` writes: counts, age histograms, gender x ethnicity,
identical images."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import figure_png, write_bytes, write_text
from ..vocab import GENDERS, RACES
from .records import hash_split


def _plot_histograms(parts: dict[str, pd.DataFrame], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    bins = np.arange(0, 122, 2)
    for name, df in parts.items():
        ax.hist(df["age"], bins=bins, histtype="step", label=f"{name} ({len(df)})")
    ax.set_xlabel("age")
    ax.set_ylabel("faces")
    ax.legend()
    fig.tight_layout()
    write_bytes(path, figure_png(fig, dpi=100))


def duplicate_lines(parts: dict[str, pd.DataFrame]) -> list[str]:
    """Identical images (same md5) under several names: how many, and, for a test split,
    how many of its photos a model trained on a split by file name alone has seen (the
    photo itself or a copy), which flatters such a model's test figures."""
    rows = pd.concat([df.assign(_split=name) for name, df in parts.items() if "md5" in df and len(df)])
    if rows.empty or rows["md5"].isna().all():
        return []
    size = rows.groupby("md5")["photo"].transform("size")
    dup = rows[size > 1].copy()
    if dup.empty:
        return []
    lines = ["", f"Identical images: {dup['md5'].nunique()} groups, {len(dup)} files; groups across "
                 f"the splits written here: {int((dup.groupby('md5')['_split'].nunique() > 1).sum())}."]
    if "test" in parts:
        dup["_by_name"] = dup["photo"].map(lambda p: hash_split(os.path.basename(p)))
        seen = dup.groupby("md5")["_by_name"].transform(lambda s: (s == "train").any())
        lines.append(f"By file name alone {int((dup.groupby('md5')['_by_name'].nunique() > 1).sum())} groups "
                     f"would straddle splits; a model trained on such a split has seen {int((seen & (dup['_split'] == 'test')).sum())} "
                     f"of this test split's photos (itself or a copy).")
    return lines


def write_report(name: str, parts: dict[str, pd.DataFrame], rejected: pd.DataFrame, out: Path) -> str:
    """Write `<name>_report.md` and `<name>_age_hist.png`; returns the report path."""
    lines = [f"# Data report: {name}", "", "| split | faces | age mean | age median | age min | age max |",
             "|---|---|---|---|---|---|"]
    for split, df in parts.items():
        a = df["age"]
        lines.append(f"| {split} | {len(df)} | {a.mean():.1f} | {a.median():.1f} | {a.min():.0f} | {a.max():.0f} |"
                     if len(df) else f"| {split} | 0 | | | | |")
    lines += ["", f"Rejected: {len(rejected)} (see `{name}_rejected.csv`)"]
    if len(rejected):
        reasons = rejected["error"].astype(str).str.split(":").str[0].value_counts()
        lines += [f"- {r}: {n}" for r, n in reasons.items()]
    lines += duplicate_lines(parts)
    all_rows = pd.concat(parts.values()) if parts else pd.DataFrame()
    if "gender" in all_rows and all_rows["gender"].notna().any():
        g = all_rows["gender"].map(lambda v: GENDERS[int(v)] if pd.notna(v) else "unknown")
        r = all_rows["race"].map(lambda v: RACES[int(v)] if pd.notna(v) else "unknown") if "race" in all_rows else "unknown"
        table = pd.crosstab(g, r, margins=True, margins_name="total")
        lines += ["", "## Gender x ethnicity", "", "| gender | " + " | ".join(map(str, table.columns)) + " |",
                  "|---" * (len(table.columns) + 1) + "|"]
        for idx, row in table.iterrows():
            lines.append(f"| {idx} | " + " | ".join(str(v) for v in row) + " |")
    hist = out / f"{name}_age_hist.png"
    if len(all_rows):
        _plot_histograms(parts, hist)
        lines += ["", f"![age histogram]({hist.name})"]
    path = out / f"{name}_report.md"
    write_text(path, "\n".join(lines) + "\n")
    return str(path)
