"""`--folds K`: K-fold cross-validation.

When `prepare --split subject --folds K` wrote `<dataset>_fold{k}_align.csv`, those
folds are used as they are (fold k validates, the others train). Otherwise the train
and valid CSVs are pooled and faces are assigned to folds by the md5 hash of their file
name (or by subject when the CSV has one). Each fold is trained in
`<checkpoint>/fold<k>/`, and the mean and standard deviation of the best validation
MAE are reported and saved.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_text
from ..data.records import atomic_write_csv, csv_name, hash_fold, image_root_file, read_align_csv, resolve_image_root
from .trainer import TrainingError, TrainJob, train


def prepared_folds(data_dir: Path, dataset: str) -> list[Path]:
    """The fold CSVs `prepare --split subject` wrote, in order (empty when none)."""
    found = []
    while (data_dir / csv_name(dataset, f"fold{len(found)}")).is_file():
        found.append(data_dir / csv_name(dataset, f"fold{len(found)}"))
    return found


def cross_validate(job: TrainJob, k: int) -> dict:
    sets = job.sets()
    if len(sets) != 1:
        raise TrainingError("`folds` cross-validates one dataset; give a single `dataset`", setting="dataset")
    (dataset, data_dir), = sets
    prepared = prepared_folds(data_dir, dataset)
    if prepared:
        if len(prepared) != k:
            raise TrainingError(f"{data_dir} holds {len(prepared)} prepared folds "
                                f"({prepared[0].name} ...); use `folds` {len(prepared)}", setting="folds")
        frames = [read_align_csv(p) for p in prepared]
        df = pd.concat(frames, ignore_index=True)
        fold = pd.Series(np.repeat(np.arange(k), [len(f) for f in frames]))
        job.log(f"using the {k} folds prepare wrote ({prepared[0].name} ...)")
    else:
        missing = [csv_name(dataset, s) for s in ("train", "valid") if not (data_dir / csv_name(dataset, s)).is_file()]
        if missing:
            raise TrainingError(f"{data_dir}: no {' or '.join(missing)} and no prepared folds; "
                                f"run `agecli prepare --dataset {dataset} ...` first")
        frames = [read_align_csv(data_dir / csv_name(dataset, s)) for s in ("train", "valid")]
        df = pd.concat(frames, ignore_index=True)
        key = df["subject"].astype(str) if "subject" in df else df["photo"].map(lambda p: os.path.basename(p))
        fold = key.map(lambda s: hash_fold(s, k))
    sizes = np.bincount(fold.to_numpy(int), minlength=k)
    if (sizes == 0).any():  # found before any fold trains, not after the first ones have
        among = f"{len(df)} faces" + (f" of {df['subject'].nunique()} subjects" if "subject" in df else "")
        raise TrainingError(f"`folds` {k}: {int((sizes == 0).sum())} of the {k} folds would hold no face "
                            f"({among}); use fewer folds", setting="folds")
    root = resolve_image_root(data_dir, dataset)
    results = []
    for i in range(k):
        fdir = job.checkpoint_dir / f"fold{i}"
        name = f"{dataset}_fold{i}"
        atomic_write_csv(df[fold != i], fdir / csv_name(name, "train"))
        atomic_write_csv(df[fold == i], fdir / csv_name(name, "valid"))
        write_text(image_root_file(fdir, name), str(root) + "\n")
        job.log(f"fold {i + 1}/{k}: {int((fold != i).sum())} train, {int((fold == i).sum())} valid")
        best = train(dataclasses.replace(job, data_dir=fdir, dataset=name, checkpoint_dir=fdir, resume=None))
        results.append(best)
    maes = np.array([r["mae"] for r in results])
    summary = {"folds": k, "mae_mean": float(maes.mean()), "mae_std": float(maes.std(ddof=1)) if k > 1 else 0.0,
               "per_fold": results}
    path = job.checkpoint_dir / "folds.json"
    write_text(path, json.dumps(summary, indent=2))
    summary["summary"] = str(path)
    return summary
