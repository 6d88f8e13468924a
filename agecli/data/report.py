"""The short data report `prepare` writes: counts, age histograms, gender x ethnicity."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import figure_png, write_bytes, write_text
from .records import GENDERS, RACES


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
