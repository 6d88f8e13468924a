"""`--folds K`: K-fold cross-validation over the train and valid CSVs together.

Faces are assigned to folds by the md5 hash of their file name (or by subject when the
CSV has one), each fold is trained in `<checkpoint>/fold<k>/`, and the mean and
standard deviation of the best validation MAE are reported and saved.
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pandas as pd

from ..data.records import atomic_write_csv, csv_name, hash_fold, image_root_file, read_align_csv, resolve_image_root
from .trainer import TrainingError, TrainJob, train


def cross_validate(job: TrainJob, k: int) -> dict:
    sets = job.sets()
    if len(sets) != 1:
        raise TrainingError("--folds cross-validates one dataset; give a single --dataset")
    (dataset, data_dir), = sets
    frames = [read_align_csv(data_dir / csv_name(dataset, s)) for s in ("train", "valid")]
    df = pd.concat(frames, ignore_index=True)
    key = df["subject"].astype(str) if "subject" in df else df["photo"].map(lambda p: os.path.basename(p))
    fold = key.map(lambda s: hash_fold(s, k))
    root = resolve_image_root(data_dir, dataset)
    results = []
    for i in range(k):
        fdir = job.checkpoint_dir / f"fold{i}"
        name = f"{dataset}_fold{i}"
        atomic_write_csv(df[fold != i], fdir / csv_name(name, "train"))
        atomic_write_csv(df[fold == i], fdir / csv_name(name, "valid"))
        image_root_file(fdir, name).write_text(str(root) + "\n")
        job.log(f"fold {i + 1}/{k}: {int((fold != i).sum())} train, {int((fold == i).sum())} valid")
        best = train(dataclasses.replace(job, data_dir=fdir, dataset=name, checkpoint_dir=fdir, resume=None))
        results.append(best)
    maes = np.array([r["mae"] for r in results])
    summary = {"folds": k, "mae_mean": float(maes.mean()), "mae_std": float(maes.std(ddof=1)) if k > 1 else 0.0,
               "per_fold": results}
    path = job.checkpoint_dir / "folds.json"
    path.write_text(json.dumps(summary, indent=2))
    summary["summary"] = str(path)
    return summary
