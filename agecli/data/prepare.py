"""`agecli prepare`: detect and align every face of a labelled set, write the aligned CSVs.

Work is checkpointed in `<name>_partial.csv` as it goes, so an interrupted run picks up
where it stopped; the final CSVs are written atomically at the end.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..atomic import write_text
from ..parallel import default_workers, ordered_map
from .images import ImageError, load_rgb
from .readers import read_dataset
from .records import (ALIGN_COLUMNS, OPTIONAL_COLUMNS, SPLITS, Record, atomic_write_csv, csv_name,
                      hash_split, image_root_file, is_prepare_output, subject_folds)

PARTIAL_COLUMNS = ["photo", "age", "gender", "race", "subject", "split", "deg", "box1", "box2", "box3", "box4", "error"]

_detector = None


def _init_worker(score_threshold: float) -> None:
    global _detector
    import cv2

    from ..face.detector import FaceDetector

    cv2.setNumThreads(1)
    _detector = FaceDetector(score_threshold=score_threshold, threads=1)


def align_one(root: str, rec: Record) -> dict:
    """Detect and align the main face of one record; never raises."""
    from ..face.align import align_face
    from ..face.detector import main_face

    row = {k: v for k, v in asdict(rec).items() if k != "path"}
    row["photo"] = rec.path
    if rec.error:
        return row
    try:
        img = load_rgb(os.path.join(root, rec.path))
    except ImageError as e:
        row["error"] = str(e)
        return row
    h, w = img.shape[:2]
    face = main_face(_detector.detect(img), h, w)
    if face is None:
        row["error"] = "no_face"
        return row
    p = align_face(face, h, w)
    row["deg"] = round(p.deg, 3)
    for i, v in enumerate(p.box, 1):
        row[f"box{i}"] = round(float(v), 2)
    return row


def _align_chunk(args: tuple[str, list[Record]]) -> list[dict]:
    root, recs = args
    return [align_one(root, r) for r in recs]


def assign_splits(df: pd.DataFrame, split: str, folds: int) -> dict[str, pd.DataFrame]:
    """Split accepted rows: the dataset's official split, the hash rule, or subject folds."""
    if split == "subject":
        missing = int(df["subject"].isna().sum()) if "subject" in df else len(df)
        if missing:
            raise ValueError(f"--split subject needs a subject for every image; {missing} have none "
                             "(this dataset has no subjects? use --split hash)")
        subj = df["subject"].astype(str)
        fold_of = subject_folds(subj.tolist(), folds)
        f = subj.map(fold_of)
        return {f"fold{k}": df[f == k] for k in range(folds)}
    if split == "official" or (split == "auto" and df["split"].notna().all()):
        if df["split"].isna().any():
            raise ValueError(f"{int(df['split'].isna().sum())} of {len(df)} images have no official split; "
                             "use --split hash or subject")
        return {s: df[df["split"] == s] for s in SPLITS}
    s = df["photo"].map(hash_split)
    return {name: df[s == name] for name in SPLITS}


def _drop_cut_row(partial: Path) -> None:
    """Cut a row that an interruption left half-written, so it is redone rather than misread."""
    data = partial.read_bytes()
    end = data.rfind(b"\n") + 1
    if end == 0:  # not even a whole header: start afresh
        partial.unlink()
    elif end < len(data):
        with open(partial, "r+b") as fh:
            fh.truncate(end)


def prepare(dataset: str, data_dir: str | Path, out_dir: str | Path | None = None, split: str = "auto",
            folds: int = 5, workers: int | None = None, score_threshold: float = 0.8, name: str | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """Run the whole prepare step; returns a summary dict (counts, file paths).
    `workers` processes run the detector (default: one per core)."""
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError("--workers must be 1 or more")
    root = Path(data_dir).resolve()
    out = Path(out_dir).resolve() if out_dir else root
    out.mkdir(parents=True, exist_ok=True)
    name = name or dataset
    partial = out / f"{name}_partial.csv"

    # With --out left at the data dir, a re-run finds the previous run's histogram among the images.
    records = [r for r in read_dataset(dataset, root)
               if not ((root / r.path).parent == out and is_prepare_output(r.path))]
    if not records:
        raise ValueError(f"no images found for dataset {dataset!r} under {root}")
    done: dict[str, dict] = {}
    if partial.exists():
        _drop_cut_row(partial)
    if partial.exists():
        prev = pd.read_csv(partial, dtype={"photo": str, "subject": str, "split": str, "error": str},
                           keep_default_na=False, na_values=[""])  # a subject "NA" stays "NA"
        done = {r["photo"]: r for r in prev.to_dict("records")}
    todo = [r for r in records if r.path not in done]

    new_file = not partial.exists()
    with open(partial, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=PARTIAL_COLUMNS)
        if new_file:
            writer.writeheader()
        chunks = [todo[i:i + 64] for i in range(0, len(todo), 64)]
        total, finished = len(records), len(records) - len(todo)
        if progress:
            progress(finished, total)
        if workers > 1 and len(chunks) > 1:
            results = ordered_map(_align_chunk, [(str(root), c) for c in chunks], workers,
                                  _init_worker, (score_threshold,))
        else:
            _init_worker(score_threshold)
            results = (_align_chunk((str(root), c)) for c in chunks)
        with closing(results):  # an interruption stops the workers at once
            for rows in results:
                for row in rows:
                    writer.writerow({k: row.get(k) for k in PARTIAL_COLUMNS})
                    done[row["photo"]] = row
                fh.flush()
                finished += len(rows)
                if progress:
                    progress(finished, total)

    keep = {r.path for r in records}
    df = pd.DataFrame([done[p] for p in sorted(done) if p in keep], columns=PARTIAL_COLUMNS)
    rejected = df[df["error"].notna() & (df["error"].astype(str) != "")]
    accepted = df.drop(rejected.index)
    cols = ALIGN_COLUMNS + [c for c in OPTIONAL_COLUMNS if accepted[c].notna().any()]
    parts = assign_splits(accepted, split, folds)
    files = {}
    for part, frame in parts.items():
        frame = frame[cols].copy()
        for c in ("gender", "race"):
            if c in frame:
                frame[c] = frame[c].astype("Int64")
        path = out / csv_name(name, part)
        atomic_write_csv(frame, path)
        files[part] = str(path)
    atomic_write_csv(rejected[["photo", "age", "error"]].rename(columns={"error": "reason"}), out / f"{name}_rejected.csv")
    if out != root:
        write_text(image_root_file(out, name), str(root) + "\n")
    from .report import write_report

    summary = {"dataset": name, "total": len(records), "accepted": len(accepted), "rejected": len(rejected),
               "splits": {k: len(v) for k, v in parts.items()}, "files": files,
               "rejected_file": str(out / f"{name}_rejected.csv")}
    summary["report"] = write_report(name, parts, rejected, out)
    partial.unlink(missing_ok=True)
    return summary
