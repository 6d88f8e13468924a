"""Generalisation, not memorisation: train on one collection, test on the others.

    python bench/cross_dataset.py --epochs 3                        # every configuration
    python bench/cross_dataset.py --only utk_basic utk_photo        # some of them
    python bench/cross_dataset.py --train-none --model shipped=weights/agecli_default.onnx

Each configuration trains EfficientNet-Lite0 (ImageNet init, --aug) on the train split
of one or more prepared sets, picks its best epoch on their valid splits, and is then
tested on the test split of EVERY set (UTKFace test folds 8-9, the AAF official val
list), so each row shows in-domain and cross-dataset error side by side. `--model
NAME=PATH` adds an existing .pth/.onnx (the shipped model, a peer's predictions are in
bench_peer.py) to the table without training. Interrupted runs resume from last.pth.
Every model is also scored on FairFace-540 (bench/fairface.py: age groups, a collection
no model trains on; `--fairface ''` to skip) through the same detector and crop `demo`
uses. Writes `<out>/cross_dataset.csv` (and `fairface540.csv`) and prints markdown
tables: MAE, CA5, mean bias per age group, the share of true ages within +-1 std, gender
accuracy where predicted; FairFace's in-group rate, distance to the group, +-1 std
coverage, gender accuracy, and each group's in-group rate and median prediction.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agecli.config import apply_overrides, default_config
from agecli.data.dataset import AlignedFaces
from agecli.data.records import csv_name, resolve_image_root
from agecli.eval.metrics import age_group, age_group_names, age_metrics

SETS = {"utkface": Path("data/utkface"), "aaf": Path("data/aaf")}
CONFIGS = {  # name: (train sets, loss, overrides)
    "utk_basic": ("utkface", "ldl", ["DATA.AUG", "basic"]),
    "utk_photo": ("utkface", "ldl", ["DATA.AUG", "photo"]),
    "aaf_photo": ("aaf", "ldl", ["DATA.AUG", "photo"]),
    "both_photo": ("utkface,aaf", "ldl", ["DATA.AUG", "photo"]),
    "both_photo_mt": ("utkface,aaf", "mt", ["DATA.AUG", "photo"]),
}


def train_config(name: str, args: argparse.Namespace) -> Path:
    """Train (or resume, or reuse) one configuration; returns its best.pth."""
    from agecli.train.trainer import TrainJob, train

    sets, loss, extra = CONFIGS[name]
    ckdir = args.out / name
    last = ckdir / "last.pth"
    cfg = apply_overrides(default_config(), ["TRAIN.LOSS", loss, "MODEL.IMG_SIZE", str(args.img_size),
                                             "TRAIN.EPOCHS", str(args.epochs), "TRAIN.THREADS", str(args.threads),
                                             *extra, *args.overrides])
    names = sets.split(",")
    t0 = time.perf_counter()
    train(TrainJob(cfg, [SETS[n] for n in names], sets, ckdir, aug=True, resume=last if last.exists() else None,
                   log=lambda m: print(f"  [{name}] {m}", flush=True)))
    print(f"[{name}] trained in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return ckdir / "best.pth"


def split_crops(dataset: str, split: str, meta: dict) -> AlignedFaces:
    """A prepared set's faces of one split, cut with the crop recipe in a model's `meta`
    (size, expand, template)."""
    d = SETS[dataset]
    return AlignedFaces.load(d / csv_name(dataset, split), resolve_image_root(d, dataset), meta["img_size"],
                             meta["expand"], d / ".agecli_cache", template=meta.get("template"))


def screen_splits(meta: dict, every: int = 1) -> dict[tuple[str, str], AlignedFaces]:
    """The valid and test faces of every set (`split_crops`; every k-th face): what the
    screens (bench/second_look.py, mirror_window.py) score, keyed (set, split)."""
    out = {}
    for name in SETS:
        for split in ("valid", "test"):
            faces = split_crops(name, split, meta)
            if every > 1:
                keep = np.arange(0, len(faces), every)
                faces.images, faces.ages, faces.genders = faces.images[keep], faces.ages[keep], faces.genders[keep]
            out[(name, split)] = faces
    return out


def screen_figures(row: dict, name: str, split: str, age: np.ndarray, faces: AlignedFaces,
                   gender_p: np.ndarray | None = None) -> None:
    """A screen's figures of one set and split into `row`: MAE; on the test split also
    the 11-20 and 61+ bias and, with P(second gender class), the gender accuracy."""
    err = age - faces.ages
    row[f"{name} {split} MAE"] = round(float(np.abs(err).mean()), 3)
    if split != "test":
        return
    groups = np.array([age_group(a) for a in faces.ages])
    for grp in ("11-20", "61+"):
        row[f"{name} bias {grp}"] = round(float(err[groups == grp].mean()), 2)
    if gender_p is not None:
        known = faces.genders >= 0
        row[f"{name} gender"] = round(float(((gender_p[known] > 0.5) == faces.genders[known]).mean()), 3)


def valid_mean(row: dict) -> float:
    """The mean of the sets' valid MAEs: what the screens choose by."""
    return round(float(np.mean([row[f"{n} valid MAE"] for n in SETS])), 4)


def test_crops(dataset: str, meta: dict) -> AlignedFaces:
    """A prepared set's test faces (`split_crops`)."""
    return split_crops(dataset, "test", meta)


def score(model_path: Path, dataset: str) -> dict:
    """One model on one test set: the figures of the tables."""
    from agecli.infer.runners import open_runner

    runner = open_runner(model_path)
    meta = runner.meta
    data = test_crops(dataset, meta)
    out = runner.predict(data.images)
    pred, true = out["age"], data.ages
    row = {"set": dataset, "faces": len(true), **{k: round(v, 3) for k, v in age_metrics(pred, true).items()}}
    groups = np.array([age_group(a) for a in true])
    for g in age_group_names():
        m = groups == g
        row[f"bias {g}"] = round(float((pred[m] - true[m]).mean()), 2) if m.any() else float("nan")
    if "std" in out:
        row["within 1 std"] = round(float((np.abs(pred - true) <= out["std"]).mean()), 3)
    if "gender_probs" in out and (data.genders >= 0).any():
        known = data.genders >= 0
        row["gender acc"] = round(float((out["gender_probs"].argmax(1)[known] == data.genders[known]).mean()), 3)
    return row


def score_fairface(model_path: Path, root: Path, out: Path) -> dict:
    """One model on FairFace-540 (found faces predicted, every labelled face counted)."""
    import fairface

    res, found, labels = fairface.answer(model_path, root, out)
    gender = res["gender_probs"].argmax(1) if "gender_probs" in res else None
    return fairface.score(res["age"], res.get("std"), gender, found, labels)


def markdown(df: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--img-size", type=int, default=112)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads per training (0: torch's default)")
    ap.add_argument("--out", type=Path, default=Path("runs/cross"))
    ap.add_argument("--only", nargs="*", default=None, choices=list(CONFIGS), help="train only these configurations")
    ap.add_argument("--train-none", action="store_true", help="train nothing; score the --model files")
    ap.add_argument("--model", action="append", default=[], help="NAME=PATH of an existing model to score too")
    ap.add_argument("--fairface", type=Path, default=Path("../shared/data/fairface540"),
                    help="FairFace-540 folder (labels.csv, images/); '' to skip")
    ap.add_argument("overrides", nargs="*", help="KEY VALUE pairs for every training (TRAIN.LR 0.002 ...)")
    args = ap.parse_args()
    models = {}
    if not args.train_none:
        for name in args.only if args.only is not None else CONFIGS:
            models[name] = train_config(name, args)
    for spec in args.model:
        name, _, path = spec.partition("=")
        models[name] = Path(path)
    rows, ff_rows = [], []
    use_ff = str(args.fairface) not in ("", ".") and (args.fairface / "labels.csv").exists()
    for name, path in models.items():
        for dataset in SETS:
            rows.append({"model": name, **score(path, dataset)})
            print(rows[-1], flush=True)
        if use_ff:
            ff_rows.append({"model": name, **score_fairface(path, args.fairface, Path("data") / "fairface540")})
            print(ff_rows[-1], flush=True)
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "cross_dataset.csv"
    if csv.exists():  # keep earlier models' rows, replace re-scored ones
        old = pd.read_csv(csv)
        df = pd.concat([old[~old["model"].isin(df["model"])], df], ignore_index=True)
    df.to_csv(csv, index=False)
    cols = ["model", "set", "faces", "mae", "ca5"] + [c for c in ("within 1 std", "gender acc") if c in df]
    print(f"\nTest MAE (years); training: {args.epochs} epochs, {args.img_size} px, EfficientNet-Lite0\n")
    print(markdown(df[cols]))
    print("\nMean bias (prediction - truth, years) per true-age group\n")
    print(markdown(df[["model", "set"] + [c for c in df if c.startswith("bias ")]]))
    if ff_rows:
        ff = pd.DataFrame(ff_rows)
        ff_csv = args.out / "fairface540.csv"
        if ff_csv.exists():
            old = pd.read_csv(ff_csv)
            ff = pd.concat([old[~old["model"].isin(ff["model"])], ff], ignore_index=True)
        ff.to_csv(ff_csv, index=False)
        head = ["model", "faces", "in-group", "distance"] + [c for c in ("within 1 std", "gender acc") if c in ff]
        print("\nFairFace-540 (never trained on): in-group rate, mean distance to the group (years)\n")
        print(markdown(ff[head + ["worst group"] + [c for c in ff if c.startswith("in ")]]))
        print("\nFairFace-540: median prediction per group\n")
        print(markdown(ff[["model"] + [c for c in ff if c.startswith("median ")]]))
        if any(c.startswith("gender ") for c in ff):
            print("\nFairFace-540: gender accuracy per age group\n")
            print(markdown(ff[["model"] + [c for c in ff if c.startswith("gender ") and c != "gender acc"]]))


if __name__ == "__main__":
    main()
