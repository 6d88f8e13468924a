"""Age error as a user meets it: `agecli demo` over a test set's original photos.

    python bench/demo_accuracy.py --dataset aaf [--data-dir data/aaf] [--model M.onnx] [--limit N]
    python bench/demo_accuracy.py --dataset utkface

`bench/cross_dataset.py` scores the aligned crops `prepare` cached; this runs the whole
user path instead: `agecli demo --img-list` over the photos of `<name>_test_align.csv`
(the detector at demo's settings, its alignment, the default worker count), reads the
rows it prints, and takes the largest face of each photo as the labelled person.
Photos where demo finds no face count as misses (reported, not scored). Prints MAE,
CA5 and the mean bias per age group; the two scripts should agree within a few
hundredths when the crop path is one. `--limit N` scores every k-th photo (N in all).
"""
from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from agecli.data.records import csv_name, resolve_image_root  # noqa: E402
from agecli.eval.metrics import age_group, age_group_names, age_metrics  # noqa: E402
from agecli.demo.rows import parse_row  # noqa: E402


def labelled_photos(data_dir: Path, dataset: str, limit: int) -> dict[str, float]:
    """Absolute photo path -> true age, for the test split (every k-th when limited)."""
    root = resolve_image_root(data_dir, dataset)
    with open(data_dir / csv_name(dataset, "test"), newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if limit and limit < len(rows):
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, limit).round().astype(int)]
    return {str((root / r["photo"]).resolve()): float(r["age"]) for r in rows}


def demo_ages(photos: list[str], model: str | None) -> dict[str, float]:
    """Photo -> the age demo gives its largest face (photos without a face are absent)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as lst:
        lst.write("\n".join(photos) + "\n")
    cmd = [sys.executable, "-m", "agecli", "demo", "--img-list", lst.name, "--format", "csv"]
    if model:
        cmd += ["--resume", model]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    Path(lst.name).unlink()
    if out.returncode not in (0, 1):  # 1: some inputs failed (named on stderr); the rest still count
        sys.exit(f"demo failed ({out.returncode}): {out.stderr[-2000:]}")
    best: dict[str, tuple[float, float]] = {}
    for raw in csv.DictReader(io.StringIO(out.stdout)):
        row = parse_row(raw)
        if row["age"] is None:
            continue
        area = (row["x2"] - row["x1"]) * (row["y2"] - row["y1"])
        if area > best.get(row["file"], (-1.0, 0.0))[0]:
            best[row["file"]] = (area, row["age"])
    return {f: age for f, (_, age) in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="prepared set name: utkface, aaf, ...")
    ap.add_argument("--data-dir", type=Path, default=None, help="its prepared folder (default data/<dataset>)")
    ap.add_argument("--model", default=None, help=".onnx or .pth (default: the shipped model)")
    ap.add_argument("--limit", type=int, default=0, help="score N photos spread over the split (0: all)")
    args = ap.parse_args()
    data_dir = args.data_dir or REPO / "data" / args.dataset
    truth = labelled_photos(data_dir, args.dataset, args.limit)
    ages = demo_ages(list(truth), args.model)
    found = [f for f in truth if f in ages]
    pred = np.array([ages[f] for f in found])
    true = np.array([truth[f] for f in found])
    m = age_metrics(pred, true)
    print(f"{args.dataset} test through `agecli demo` ({args.model or 'shipped model'}): {len(truth)} photos, "
          f"a face in {len(found)} ({len(truth) - len(found)} without one, not scored)")
    print(f"MAE {m['mae']:.3f}  CA5 {m['ca5']:.3f}")
    groups = np.array([age_group(a) for a in true])
    print("| " + " | ".join(f"bias {g}" for g in age_group_names()) + " |")
    print("|" + "---|" * len(age_group_names()))
    print("| " + " | ".join(f"{(pred[groups == g] - true[groups == g]).mean():+.2f}" if (groups == g).any() else ""
                            for g in age_group_names()) + " |")


if __name__ == "__main__":
    main()
