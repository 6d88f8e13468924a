"""What `agecli val` leaves on disk (the figures come from `evaluate`, computed without
writing anything), every file written atomically (temp, then rename):

summary.json          flat headline figures + where they came from (model hash, split, expand)
predictions.csv       one row per face
by_age_group.csv, by_gender.csv, by_ethnicity.csv, by_gender_age_group.csv
                      count, MAE, bias (mean signed error), CA(5) per group
worst.csv, worst.png  faces off by more than the threshold, worst first, and a contact sheet
mae_by_age.png        MAE and bias by true age
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd

from ..atomic import figure_png, write_bytes
from ..data.records import atomic_write_csv
from .metrics import GROUPINGS, worst_faces

if TYPE_CHECKING:
    from rich.table import Table

    from .evaluate import Evaluation

WORST_SHEET = 24


def write_json(obj: Any, path: Path) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def write_png(img_bgr: np.ndarray, path: Path) -> None:
    ok, buf = cv2.imencode(".png", img_bgr)
    if not ok:
        raise OSError(f"{path}: could not encode the image")
    write_bytes(path, buf.tobytes())


# ---------------------------------------------------------------- tables

def _rounded(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    return df.round({c: digits for c in df.columns if pd.api.types.is_float_dtype(df[c])})


# ---------------------------------------------------------------- images

def _fit_text(text: str, width: int, scale: float = 0.5, thickness: int = 1) -> float:
    """The largest font scale (<= scale) at which `text` fits in `width` pixels."""
    w = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
    return scale if w <= width else scale * width / w


def contact_sheet(crops: np.ndarray, labels: list[str], title: str = "", cols: int = 6, tile: int = 144) -> np.ndarray:
    """A BGR grid of RGB crops, each with its label in a strip beneath it."""
    strip, head = 22, 28 if title else 0
    rows = max(1, math.ceil(len(crops) / cols))
    ncols = min(cols, max(1, len(crops)))
    sheet = np.full((head + rows * (tile + strip), ncols * tile, 3), 255, np.uint8)
    if title:
        cv2.putText(sheet, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, _fit_text(title, sheet.shape[1] - 12, 0.55),
                    (0, 0, 0), 1, cv2.LINE_AA)
    for i, (crop, label) in enumerate(zip(crops, labels)):
        r, c = divmod(i, cols)
        y, x = head + r * (tile + strip), c * tile
        interp = cv2.INTER_AREA if crop.shape[0] > tile else cv2.INTER_LINEAR
        img = cv2.resize(np.ascontiguousarray(crop), (tile, tile), interpolation=interp)
        sheet[y:y + tile, x:x + tile] = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        cv2.putText(sheet, label, (x + 4, y + tile + 16), cv2.FONT_HERSHEY_SIMPLEX,
                    _fit_text(label, tile - 8), (0, 0, 160), 1, cv2.LINE_AA)
        cv2.rectangle(sheet, (x, y), (x + tile - 1, y + tile + strip - 1), (200, 200, 200), 1)
    return sheet


def worst_sheet(worst: pd.DataFrame, images: np.ndarray, threshold: float, n_total: int) -> np.ndarray:
    """The contact sheet of the worst faces (a one-line note when there are none)."""
    top = worst.head(WORST_SHEET)
    if top.empty:
        sheet = np.full((60, 640, 3), 255, np.uint8)
        msg = f"no face of {n_total} is off by more than {threshold:g} years"
        cv2.putText(sheet, msg, (10, 36), cv2.FONT_HERSHEY_SIMPLEX, _fit_text(msg, 620, 0.6), (0, 0, 0), 1, cv2.LINE_AA)
        return sheet
    labels = [f"true {a:g} / pred {p:.0f}" for a, p in zip(top["age"], top["pred"])]
    title = f"worst {len(top)} of {len(worst)} faces off by more than {threshold:g} years (of {n_total})"
    return contact_sheet(images[top.index.to_numpy()], labels, title)


def plot_mae_by_age(df: pd.DataFrame, title: str) -> bytes:
    """PNG bytes: MAE and bias per true age, the number of faces per age behind them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    by = df.assign(true=df["age"].round().astype(int), abs_err=df["error"].abs()).groupby("true")
    stats = pd.DataFrame({"mae": by["abs_err"].mean(), "bias": by["error"].mean(), "count": by.size()})
    fig, ax = plt.subplots(figsize=(9, 4.5))
    counts = ax.twinx()
    counts.bar(stats.index, stats["count"], width=1.0, color="0.85", label="faces")
    counts.set_ylabel("faces per age", color="0.5")
    counts.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(stats.index, stats["mae"], marker=".", color="C0", label="MAE")
    ax.plot(stats.index, stats["bias"], marker=".", color="C3", label="bias (pred - true)")
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set(xlabel="true age (years)", ylabel="years", title=title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return figure_png(fig)


# ---------------------------------------------------------------- everything

LEDGER = ".agecli-val-files"  # what val wrote in its folder (agecli.ledger)
REPORTS = ("predictions.csv", *(f"{stem}.csv" for stem in GROUPINGS), "worst.csv", "worst.png",
           "mae_by_age.png", "summary.json")


def default_output_dir(ev: "Evaluation") -> Path:
    """val_<dataset>_<split>/ in the current folder, or the first free val_..._<split>2,
    3, ...: a second run never replaces the first one's reports."""
    base = Path(f"val_{ev.summary['dataset']}_{ev.summary['split']}")
    path, n = base, 1
    while os.path.lexists(path):
        n += 1
        path = base.with_name(f"{base.name}{n}")
    return path


def check_output_dir(out_dir: Path, default: bool = False) -> None:
    """Refuse (UsageError, exit 2) a folder holding a report name val did not write
    there; with `default`, `out_dir` is the current folder, where the next free
    val_<dataset>_<split>/ goes: it must be writable (found before the run, not after)."""
    from ..atomic import check_writable_dir
    from ..errors import UsageError
    from ..ledger import OwnedFolder

    if default:
        check_writable_dir(out_dir, "the current folder (where val_<dataset>_<split>/ goes; or give `output_dir`)")
        return
    if not out_dir.exists():
        check_writable_dir(out_dir, "`output_dir`")
        return
    folder = OwnedFolder(out_dir, LEDGER)
    users = [name for name in REPORTS if folder.foreign(out_dir / name)]
    if users:
        raise UsageError(f"`output_dir` {out_dir}: {', '.join(users)} exist and were not written by agecli val; "
                         "choose an empty or new folder", setting="output_dir")


def write_reports(ev: "Evaluation", out_dir: Path) -> dict[str, Path]:
    """Write every report of `ev` into out_dir (summary.json last, with the run's seconds).
    A file there that val did not write (its ledger says) is never replaced or removed:
    such a folder is refused before anything is written (OutputFolderError, exit 2)."""
    from ..ledger import OwnedFolder

    check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = OwnedFolder(out_dir, LEDGER)
    df, s = ev.frame, ev.summary
    files: dict[str, Path] = {}

    def put(name: str) -> Path:
        files[name] = folder.claim(out_dir / name)
        return files[name]

    atomic_write_csv(_rounded(df), put("predictions.csv"))
    for stem in GROUPINGS:
        if stem in ev.groups:
            atomic_write_csv(_rounded(ev.groups[stem], 4), put(f"{stem}.csv"))
        elif (out_dir / f"{stem}.csv").exists():  # this set lacks the labels: an earlier run's
            (out_dir / f"{stem}.csv").unlink()  # table (ours: checked above) must not look current
    worst = worst_faces(df, s["worst_threshold"])
    cols = ["photo", "age", "pred", "error", "std"] + (["tta_pred"] if "tta_pred" in df else [])
    atomic_write_csv(_rounded(worst[cols]), put("worst.csv"))
    write_png(worst_sheet(worst, ev.images, s["worst_threshold"], len(df)), put("worst.png"))
    mae_txt = f"MAE {s['mae']:.2f}" if s.get("mae") is not None else ""
    title = f"{s.get('dataset')} {s.get('split')}: {len(df)} faces, {mae_txt}"
    write_bytes(put("mae_by_age.png"), plot_mae_by_age(df, title))
    s["n_worst"] = int(len(worst))
    s["output_dir"] = str(out_dir)
    s["warnings"] = list(ev.warnings)
    s["seconds"] = round(time.perf_counter() - ev.started, 2) if ev.started is not None else s.get("seconds")
    write_json(s, put("summary.json"))
    ev.files = files
    return files


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{100 * x:.1f}%" if pct else f"{x:.2f}"


def terminal_tables(ev: "Evaluation") -> list["Table"]:
    """The short rich tables val prints on stderr: headline figures (plain, TTA, baseline)
    and MAE / bias per age group."""
    from rich.table import Table

    s = ev.summary
    main = Table(title=f"{s['dataset']} {s['split']}  ({s['n']} faces)", title_justify="left")
    for col in ("", "MAE", "CA(3)", "CA(5)", "CA(7)", "mean std"):
        main.add_column(col, justify="left" if not col else "right")

    def row(label: str, prefix: str, std: Any = None) -> None:
        main.add_row(label, _fmt(s.get(f"{prefix}mae")), *(_fmt(s.get(f"{prefix}ca{n}"), True) for n in (3, 5, 7)),
                     _fmt(std))

    row("model", "", s.get("mean_std"))
    if s.get("tta_mae") is not None:
        row(f"model + tta {s['tta']}", "tta_", s.get("tta_mean_std"))
    if "baseline_mae" in s:
        label = f"baseline (median {s['baseline_age']:g})" if s.get("baseline_age") is not None \
            else "baseline (no train split)"
        row(label, "baseline_")
    tables = [main]
    groups = ev.groups.get("by_age_group")
    if groups is not None and len(groups):
        t = Table(title="by true age", title_justify="left")
        for col in ("age", "faces", "MAE", "bias", "CA(5)"):
            t.add_column(col, justify="left" if col == "age" else "right")
        for r in groups.itertuples(index=False):
            t.add_row(str(r.age_group), str(r.count), _fmt(r.mae), f"{r.bias:+.2f}", _fmt(r.ca5, True))
        tables.append(t)
    return tables
