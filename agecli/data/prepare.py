"""`agecli prepare`: detect and align every face of a labelled set, write the aligned CSVs.

Work is checkpointed in `<name>_partial.csv` as it goes, so an interrupted run picks up
where it stopped; `<name>_partial.json` records what produced it (dataset, folders,
detector threshold, a hash of the labels), and a partial file from other settings is
discarded with a message rather than mixed in. The final CSVs are written atomically.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..atomic import check_writable_dir, write_text
from ..errors import DataError, OptionError
from ..ledger import OwnedFolder
from ..parallel import default_workers, ordered_map
from ..vocab import SPLITS
from .images import ImageError, decode_rgb, read_regular
from .readers import read_dataset
from .records import (ALIGN_COLUMNS, LANDMARK_COLUMNS, OPTIONAL_COLUMNS, Record, atomic_write_csv, csv_name, hash_split,
                      image_root_file, is_prepare_output, subject_folds)

PARTIAL_COLUMNS = ["photo", "age", "gender", "race", "subject", "split", "deg", "box1", "box2", "box3", "box4",
                   *LANDMARK_COLUMNS, "error", "md5"]

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
        data = read_regular(os.path.join(root, rec.path))
        row["md5"] = hashlib.md5(data).hexdigest()  # the same photo under two names shares one split
        img = decode_rgb(data)
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
    for col, v in zip(LANDMARK_COLUMNS, face.landmarks.reshape(-1)):
        row[col] = round(float(v), 2)
    return row


def _align_chunk(args: tuple[str, list[Record]]) -> list[dict]:
    root, recs = args
    return [align_one(root, r) for r in recs]


def split_keys(df: pd.DataFrame) -> pd.Series:
    """What each row is split by: its subject when every row has one, else its bare file
    name; rows holding the exact same image (same md5) are joined, with everything linked
    to them, under the smallest key, so one photo under two names never crosses splits."""
    known = "subject" in df and len(df) > 0 and df["subject"].notna().all()
    key = df["subject"].astype(str) if known else df["photo"].map(os.path.basename)
    if "md5" not in df or not df["md5"].notna().any():
        return key
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.get(k, k) != k:
            k = parent[k]
        return k

    for _, keys in key.groupby(df["md5"]):
        roots = sorted({find(k) for k in keys})
        for r in roots[1:]:
            parent[r] = roots[0]
    return key.map(find)


def assign_splits(df: pd.DataFrame, split: str, folds: int) -> dict[str, pd.DataFrame]:
    """Split accepted rows: the dataset's official split, the hash rule (on the subject
    when every row has one, else on the file name), or subject folds."""
    if split == "subject":
        missing = int(df["subject"].isna().sum()) if "subject" in df else len(df)
        if missing:
            raise DataError(f"`split` subject needs a subject for every image; {missing} have none "
                            "(this dataset has no subjects? use `split` hash)", setting="split")
        subj = split_keys(df)
        fold_of = subject_folds(subj.tolist(), folds)
        f = subj.map(fold_of)
        return {f"fold{k}": df[f == k] for k in range(folds)}
    if split == "official" or (split == "auto" and df["split"].notna().all()):
        if df["split"].isna().any():
            raise DataError(f"{int(df['split'].isna().sum())} of {len(df)} images have no official split; "
                            "use `split` hash or subject", setting="split")
        return {s: df[df["split"] == s] for s in SPLITS}
    s = split_keys(df).map(hash_split)
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


def check_options(split: str, folds: int, workers: int, score_threshold: float) -> None:
    """The numbers prepare takes, checked before any image is read."""
    if not math.isfinite(score_threshold) or not 0.0 < score_threshold < 1.0:
        raise OptionError(f"`score_threshold` must be between 0 and 1, not {score_threshold}",
                          setting="score_threshold")
    if not 1 <= workers <= 256:
        raise OptionError(f"`workers` must be between 1 and 256, not {workers}", setting="workers")
    if split == "subject" and folds < 2:
        raise OptionError(f"`folds` must be 2 or more, not {folds}", setting="folds")


def run_key(dataset: str, root: Path, score_threshold: float, records: list[Record]) -> dict:
    """What a partial file's rows depend on; a resumed run must match it exactly."""
    labels = hashlib.sha256()
    for r in records:
        labels.update(repr((r.path, r.age, r.gender, r.race, r.subject, r.split, r.error)).encode())
    return {"dataset": dataset, "data_dir": str(root), "threshold": score_threshold,
            "labels_sha256": labels.hexdigest()[:16], "partial_columns": PARTIAL_COLUMNS}


def _resume_matches(partial: Path, key: dict, log: Callable[[str], None]) -> bool:
    """True when the partial file was made by a run with the same key; otherwise it and
    its record are removed, with a line saying what changed."""
    if not partial.exists():
        return False
    record = partial.with_suffix(".json")
    try:
        before = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}
    changed = [k for k in key if before.get(k) != key[k]]
    if not changed:
        return True
    what = ", ".join(f"{k} {before.get(k)!r} -> {key[k]!r}" for k in changed if k != "partial_columns") \
        if before else "no record of its settings"
    log(f"{partial.name} was made with other settings ({what}); starting over")
    partial.unlink()
    record.unlink(missing_ok=True)
    return False


def _read_partial(partial: Path, log: Callable[[str], None]) -> dict[str, dict]:
    """The rows an interrupted run finished, by photo. A partial file that cannot be
    read as prepare wrote it (edited, or damaged on disk) is agecli's own working file:
    it is discarded with a line saying why and the set is aligned afresh, instead of
    failing every re-run on a parser error."""
    try:
        prev = pd.read_csv(partial, dtype={"photo": str, "subject": str, "split": str, "error": str, "md5": str},
                           keep_default_na=False, na_values=[""])  # a subject "NA" stays "NA"
        if list(prev.columns) != PARTIAL_COLUMNS:
            raise ValueError("its columns are not prepare's")
        for c in ("age", "deg", "box1", "box2", "box3", "box4"):
            pd.to_numeric(prev[c])
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        log(f"{partial}: this run's earlier progress cannot be read ({why}); discarding it and starting over")
        partial.unlink()
        partial.with_suffix(".json").unlink(missing_ok=True)
        return {}
    return {r["photo"]: r for r in prev.to_dict("records")}


LEDGER = ".agecli-prepare-files"  # what prepare wrote in its --out folder (agecli.ledger)


def output_names(name: str, split: str, folds: int) -> list[str]:
    """Every file a prepare run named `name` writes in its --out folder."""
    parts = [f"fold{k}" for k in range(folds)] if split == "subject" else list(SPLITS)
    return [csv_name(name, p) for p in parts] + [
        f"{name}{suffix}" for suffix in ("_rejected.csv", "_partial.csv", "_partial.json", "_report.md",
                                         "_image_root.txt", "_age_hist.png")]


def output_folder(out: Path, name: str, split: str, folds: int) -> OwnedFolder:
    """The --out folder with its ledger; a file there under one of prepare's names that
    agecli did not write is refused (ValueError) before any work. A folder an earlier
    agecli prepared without a ledger is recognised by its aligned CSVs' header."""
    had_ledger = (out / LEDGER).is_file()
    folder = OwnedFolder(out, LEDGER, setting="out_dir")
    names = output_names(name, split, folds)
    if not had_ledger and any(_is_aligned_csv(out / n) for n in names if n.endswith("_align.csv")):
        folder.written.update(n for n in names if (out / n).exists())
    users = [n for n in names if folder.foreign(out / n)]
    if users:
        raise OptionError(f"`out_dir` {out}: {', '.join(users)} exist and were not written by agecli prepare; "
                          "not replacing them: choose another `out_dir` (or `name`)", setting="out_dir")
    return folder


def _is_aligned_csv(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline().startswith(",".join(ALIGN_COLUMNS))
    except OSError:
        return False


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # os.fsdecode's surrogate escapes of undecodable bytes
        return False


def _shown(name: str) -> str:
    """A file name as UTF-8 text, undecodable bytes written as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def prepare(dataset: str, data_dir: str | Path, out_dir: str | Path | None = None, split: str = "auto",
            folds: int = 5, workers: int | None = None, score_threshold: float = 0.8, name: str | None = None,
            progress: Callable[[int, int], None] | None = None,
            log: Callable[[str], None] = logging.getLogger("agecli.prepare").info) -> dict:
    """Run the whole prepare step; returns a summary dict (counts, file paths).
    `workers` processes run the detector (default: one per core). Notes (a resumed
    run started over, a file name that cannot be stored) go to `log`: the CLI prints
    them, a Python caller gets log records."""
    workers = default_workers() if workers is None else workers
    check_options(split, folds, workers, score_threshold)
    name = name or dataset
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):  # `../x` wrote beside --out, not in it
        raise OptionError(f"`name` {name!r}: a plain name (letters, digits, '.', '_', '-'), the prefix of "
                          "the files in `out_dir` and what `dataset` names later", setting="name")
    root = Path(data_dir).resolve()
    out = Path(out_dir).resolve() if out_dir else root
    check_writable_dir(out, "`out_dir`")
    folder = output_folder(out, name, split, folds)
    partial = out / f"{name}_partial.csv"

    # With --out left at the data dir, a re-run finds the previous run's histogram among the images.
    records = [r for r in read_dataset(dataset, root)
               if not ((root / r.path).parent == out and is_prepare_output(r.path))]
    if not records:
        raise DataError(f"no images found for dataset {dataset!r} under {root}")
    # The aligned CSVs are UTF-8 text: a name that is not (caf\xe9.jpg from an old
    # Latin-1 disk) cannot be written there, so it is rejected by name, not fatal to the set.
    bad_names = [{"photo": _shown(r.path), "age": r.age, "error": "bad_name: not UTF-8"}
                 for r in records if not _is_utf8(r.path)]
    for row in bad_names:
        log(f"{root / row['photo']}: the file name is not UTF-8, so it cannot be stored in the aligned CSV; "
            "rename the file to use it")
    n_images = len(records)
    records = [r for r in records if _is_utf8(r.path)]
    key = run_key(dataset, root, score_threshold, records)
    done: dict[str, dict] = {}
    if _resume_matches(partial, key, log):
        _drop_cut_row(partial)
    if partial.exists():
        done = _read_partial(partial, log)
    todo = [r for r in records if r.path not in done]

    new_file = not partial.exists()
    for n in output_names(name, split, folds):
        folder.claim(out / n)  # listed before anything is written
    if new_file:
        write_text(partial.with_suffix(".json"), json.dumps(key, indent=1) + "\n")
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
    df = pd.DataFrame([done[p] for p in sorted(done) if p in keep] + bad_names, columns=PARTIAL_COLUMNS)
    rejected = df[df["error"].notna() & (df["error"].astype(str) != "")]
    accepted = df.drop(rejected.index)
    if accepted.empty:  # nothing to split: say why per file, and leave no half-made set behind
        listing = out / f"{name}_rejected.csv"
        atomic_write_csv(rejected[["photo", "age", "error"]].rename(columns={"error": "reason"}), listing)
        partial.unlink(missing_ok=True)
        partial.with_suffix(".json").unlink(missing_ok=True)
        counts = rejected["error"].astype(str).str.split(":").str[0].value_counts()
        why = ", ".join(f"{n} {reason}" for reason, n in counts.items())
        raise DataError(f"no image of {n_images} under {root} was accepted ({why}); nothing to split. "
                         f"The reason for each file is in {listing}")
    cols = ALIGN_COLUMNS + [c for c in OPTIONAL_COLUMNS if accepted[c].notna().any()] + LANDMARK_COLUMNS
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

    reasons = rejected["error"].astype(str)
    failed = int((~reasons.str.startswith("no_face")).sum())  # unreadable files and bad labels
    summary = {"dataset": name, "total": n_images, "accepted": len(accepted), "rejected": len(rejected),
               "failed": failed,
               "splits": {k: len(v) for k, v in parts.items()}, "files": files,
               "rejected_file": str(out / f"{name}_rejected.csv")}
    summary["report"] = write_report(name, parts, rejected, out)
    partial.unlink(missing_ok=True)
    partial.with_suffix(".json").unlink(missing_ok=True)
    return summary
