"""`agecli val` and `agecli.evaluate`: run a model over one aligned split and compute
the per-face frame, the headline figures and the per-group tables, writing no files.

The flow: the caller opens the model (an `AgeEstimator`, the same one `demo` uses),
the flags are checked against what the model records (head, expand), the split's crops
come from the same crop function (and cache) training uses, predictions run in batches
(optionally with a mirrored twin); `reports` writes the files when asked (`agecli val`).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np
import pandas as pd

from ..data.records import GENDERS, RACES, csv_name, read_align_csv, resolve_image_root
from ..errors import UsageError
from ..infer.settings import InferSettings
from ..model.meta import ModelMeta, file_hash
from .metrics import (age_group, age_group_names, age_metrics, cumulative_accuracy, group_tables, mae,
                      std_error_correlation, worst_faces)

if TYPE_CHECKING:
    from ..api import AgeEstimator

logger = logging.getLogger(__name__)
Log = Callable[[str], None]
Progress = Callable[[int, int], None]
DIST_HEADS = ("dist", "mt", "range")
TTA_MODES = ("none", "flip")


class ValError(UsageError):
    """A setup problem (missing data, contradictory flags): one line, exit 2."""


@dataclass
class ValOptions:
    """What `agecli val` was asked; None means "from the model or the default". How the
    model runs (runner, device, batch size, expand, providers) is `settings`, the one
    `InferSettings` the API and `demo` take too."""

    model: Optional[Path] = None
    data_dir: Optional[Path] = None
    dataset: Optional[str] = None
    split: str = "test"
    ldl: bool = False
    output_dir: Optional[Path] = None
    settings: InferSettings = field(default_factory=InferSettings)
    tta: str = "none"
    baseline: bool = False
    worst_threshold: float = 10.0
    cache_dir: Optional[Path] = None
    workers: int = 2
    cache: bool = True  # cache the crops (in cache_dir, default <data-dir>/.agecli_cache)


@dataclass
class Evaluation:
    """Everything a val run produced: the per-face frame, its crops, the figures, the files."""

    frame: pd.DataFrame
    images: np.ndarray
    summary: dict[str, Any]
    groups: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    started: Optional[float] = None  # perf_counter at the start, for the run's seconds


# ---------------------------------------------------------------- options

def check_options(opts: ValOptions) -> None:
    """Flags that cannot work, before any model or data is opened."""
    if opts.tta not in TTA_MODES:
        raise ValError(f"`tta` must be none or flip, not {opts.tta!r}", setting="tta")
    if not math.isfinite(opts.worst_threshold) or opts.worst_threshold < 0:
        raise ValError(f"`worst_threshold` must be a number >= 0, not {opts.worst_threshold}", setting="worst_threshold")
    if opts.workers < 1:
        raise ValError(f"`workers` must be at least 1, not {opts.workers}", setting="workers")


def check_head(meta: Mapping[str, Any], ldl: bool) -> list[str]:
    """Check `ldl` against the head the model records; returns warnings, raises ValError
    when the model has no distribution to take the expectation of."""
    head, loss = meta.get("head"), meta.get("loss")
    if not ldl:
        return []
    if head is None:
        return ["`ldl`: the model does not record its head; its age output is used as it is"]
    if head not in DIST_HEADS:
        raise ValError(f"`ldl`: this model has a {head!r} head (loss {loss!r}) that outputs one number, "
                       "not a distribution; drop `ldl`", setting="ldl")
    if loss != "ldl":
        return [f"`ldl`: the model was trained with loss {loss!r}, not ldl; its {head!r} head still gives "
                "a distribution, read by its expectation as `ldl` asks"]
    return []


# ---------------------------------------------------------------- data

def available_splits(data_dir: Path, dataset: str) -> list[str]:
    """The splits `<dataset>_<split>_align.csv` present in data_dir."""
    prefix, suffix = f"{dataset}_", "_align.csv"
    return sorted(p.name[len(prefix):-len(suffix)] for p in Path(data_dir).glob(f"{prefix}*{suffix}"))


def val_sets(model: Optional[Path], dataset: Optional[str],
             data_dirs: list[Path]) -> list[tuple[Optional[str], Optional[Path]]]:
    """(dataset, data dir) pairs to report one by one: `dataset` may name several sets
    (utkface,aaf), as may the model's record of what it was trained on when it is None
    (read from the file's metadata: no runner is opened for it)."""
    if dataset is None and not data_dirs:
        from ..errors import AgecliError
        from ..infer.default_model import default_model_path
        from ..infer.runners import read_meta

        try:
            path = Path(model) if model is not None else default_model_path()
            trained = read_meta(path).dataset or ""
        except (AgecliError, ValueError, OSError):
            trained = ""  # evaluate reports the problem with the model itself
        if "," in trained:
            dataset = trained
    names = [n.strip() for n in dataset.split(",") if n.strip()] if dataset else [None]
    if len(data_dirs) > 1 and len(data_dirs) != len(names):
        raise ValError(f"{len(names)} dataset(s) but {len(data_dirs)} `data_dir` folders: give one per set, or one",
                       setting="data_dir")
    dirs = data_dirs if len(data_dirs) == len(names) else (data_dirs or [None]) * len(names)
    return list(zip(names, dirs))


def _prepare_hint(dataset: str, out: Path) -> str:
    """The command that makes the aligned CSVs val reads: a newcomer has the images, not them."""
    return f"run agecli prepare --dataset {dataset} --data-dir PATH_TO_IMAGES --out {out.as_posix()}"


def resolve_data(data_dir: Optional[Path], dataset: Optional[str], split: str,
                 meta: ModelMeta) -> tuple[Path, str, Path]:
    """(data dir, dataset name, split CSV). The dataset defaults to the one the model was
    trained on; the data dir to data/<dataset>/ or the current folder, where the CSV is."""
    if dataset is None:
        dataset = meta.dataset
        if not dataset:
            raise ValError("`dataset` is required (the model does not record the dataset it was trained on)",
                           setting="dataset")
        if "," in dataset:
            raise ValError(f"the model was trained on {dataset}: name the set(s) with `dataset`", setting="dataset")
    name = csv_name(dataset, split)
    if data_dir is None:
        candidates = [Path(p) for p in (meta.data_dir, Path("data") / dataset, Path(".")) if p]
        found = [c for c in candidates if (c / name).is_file()]
        if not found:
            raise ValError(f"`data_dir` is required: no {name} in {', '.join(str(c) for c in candidates)}; "
                           f"to make it, {_prepare_hint(dataset, Path('data') / dataset)}", setting="data_dir")
        data_dir = found[0]
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValError(f"`data_dir` {data_dir}: no such folder", setting="data_dir")
    csv = data_dir / name
    if not csv.is_file():
        have = available_splits(data_dir, dataset)
        hint = f"; splits present: {', '.join(have)}" if have else f"; to make it, {_prepare_hint(dataset, data_dir)}"
        raise ValError(f"{csv} not found{hint}")
    return data_dir, dataset, csv


def load_faces(csv: Path, data_dir: Path, dataset: str, size: int, expand: float,
               cache_dir: Optional[Path] = None, workers: int = 2, log: Log = logger.warning, template=None):
    """The split's crops at the model's size and expand, cut by the crop function
    training uses; from (or into) `cache_dir` when one is given."""
    from ..data.dataset import AlignedFaces

    try:
        faces = AlignedFaces.load(csv, resolve_image_root(data_dir, dataset), size, expand, cache_dir,
                                  workers=workers, log=log, template=template)
    except ValueError as e:
        raise ValError(str(e)) from None
    if len(faces) == 0:
        raise ValError(f"{csv}: no faces to evaluate")
    return faces


def training_median(data_dir: Path, dataset: str) -> Optional[float]:
    """Median age of the training split, the predict-a-constant baseline; None if absent."""
    path = Path(data_dir) / csv_name(dataset, "train")
    if not path.is_file():
        return None
    try:
        ages = read_align_csv(path)["age"].to_numpy(float)
    except ValueError as e:
        raise ValError(str(e)) from None
    return float(np.median(ages)) if len(ages) else None


# ---------------------------------------------------------------- prediction

def flip_average(plain: dict[str, np.ndarray], mirrored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Average two predictions of the same faces. The age is the mean; the std is that of
    the equal mixture of both (which is what averaging two distributions gives)."""
    age = (plain["age"] + mirrored["age"]) / 2
    second = (plain["std"] ** 2 + plain["age"] ** 2 + mirrored["std"] ** 2 + mirrored["age"] ** 2) / 2
    out = {"age": age, "std": np.sqrt(np.clip(second - age ** 2, 0, None))}
    for k in plain:
        if k not in out and k in mirrored:
            out[k] = (plain[k] + mirrored[k]) / 2
    return out


def predict_all(runner, images: np.ndarray, batch_size: int, tta: str = "none",
                progress: Optional[Progress] = None) -> tuple[dict[str, np.ndarray], Optional[dict[str, np.ndarray]]]:
    """Plain predictions for every crop, and with tta='flip' the average of each crop and
    its horizontal mirror (None otherwise)."""
    passes = 2 if tta == "flip" else 1
    total, done = len(images) * passes, 0
    plain: dict[str, list[np.ndarray]] = {}
    mirror: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(images), batch_size):
        batch = images[i:i + batch_size]
        views = [(plain, batch)] + ([(mirror, batch[:, :, ::-1])] if passes == 2 else [])
        for store, x in views:
            for k, v in runner.predict(np.ascontiguousarray(x)).items():
                store.setdefault(k, []).append(np.asarray(v, np.float32))
            done += len(batch)
            if progress:
                progress(done, total)
    joined = {k: np.concatenate(v) for k, v in plain.items()}
    if passes == 1:
        return joined, None
    return joined, flip_average(joined, {k: np.concatenate(v) for k, v in mirror.items()})


def _names(codes: np.ndarray, names: tuple[str, ...]) -> list[str]:
    return [names[c] if 0 <= c < len(names) else "unknown" for c in codes]


def prediction_frame(faces, preds: dict[str, np.ndarray], tta: Optional[dict[str, np.ndarray]] = None) -> pd.DataFrame:
    """One row per face: photo, age, pred, std, error (pred - age), age_group, and gender /
    race where the set has them; tta_pred/tta_std/tta_error and predicted gender/race
    where available."""
    age = faces.frame["age"].to_numpy()
    df = pd.DataFrame({"photo": faces.frame["photo"].astype(str).to_numpy(), "age": age,
                       "pred": preds["age"].astype(float), "std": preds["std"].astype(float)})
    df["error"] = df["pred"] - df["age"]
    df["age_group"] = pd.Categorical([age_group(a) for a in age], categories=age_group_names() + ["unknown"])
    if (faces.genders >= 0).any():
        df["gender"] = pd.Categorical(_names(faces.genders, GENDERS), categories=[*GENDERS, "unknown"])
    if (faces.races >= 0).any():
        df["race"] = pd.Categorical(_names(faces.races, RACES), categories=[*RACES, "unknown"])
    if tta is not None:
        df["tta_pred"] = tta["age"].astype(float)
        df["tta_std"] = tta["std"].astype(float)
        df["tta_error"] = df["tta_pred"] - df["age"]
    if "gender_probs" in preds:
        df["pred_gender"] = _names(preds["gender_probs"].argmax(1), GENDERS)
    if "race_probs" in preds:
        df["pred_race"] = _names(preds["race_probs"].argmax(1), RACES)
    return df


def _finite(x: float) -> Optional[float]:
    return float(x) if x is not None and math.isfinite(x) else None


def figures(df: pd.DataFrame) -> dict[str, Any]:
    """The headline numbers of a prediction frame (NaN becomes None, so JSON stays valid)."""
    true, pred, std = df["age"].to_numpy(float), df["pred"].to_numpy(float), df["std"].to_numpy(float)
    out: dict[str, Any] = {**age_metrics(pred, true), "n": int(len(df)), "mean_std": float(np.mean(std)),
                           "std_err_corr": std_error_correlation(std, pred, true),
                           "within_1std": float(np.mean(np.abs(pred - true) <= std)) if std.any() else float("nan")}
    if "tta_pred" in df:
        tta = df["tta_pred"].to_numpy(float)
        out.update(age_metrics(tta, true, "tta_"))
        out["tta_mean_std"] = float(df["tta_std"].mean())
    for col in ("gender", "race"):
        if col in df and f"pred_{col}" in df:
            known = df[col].astype(str) != "unknown"
            if known.any():
                out[f"{col}_acc"] = float((df.loc[known, col].astype(str) == df.loc[known, f"pred_{col}"]).mean())
    return {k: (_finite(v) if isinstance(v, float) else v) for k, v in out.items()}


def baseline_figures(median: Optional[float], true: np.ndarray) -> dict[str, Any]:
    """baseline_age / baseline_mae / baseline_ca3/5/7 of predicting the training median."""
    if median is None:
        return {"baseline_age": None, "baseline_mae": None, "baseline_ca3": None, "baseline_ca5": None,
                "baseline_ca7": None}
    const = np.full(len(true), median)
    return {"baseline_age": median, "baseline_mae": mae(const, true),
            **{f"baseline_ca{n}": cumulative_accuracy(const, true, n) for n in (3, 5, 7)}}


# ---------------------------------------------------------------- the whole run

def evaluate_split(est: AgeEstimator, opts: ValOptions, progress: Optional[Progress] = None,
                   ready: Optional[Callable[[], None]] = None) -> Evaluation:
    """Evaluate an opened model (`est`, built from `opts.settings`) on one split: the
    frame, the figures, the per-group tables and the warnings, no files written. The
    crops are cut at the estimator's expand (the model's, or the override it warned
    of). `ready` runs once the model and the data are found, before the work (`agecli
    val` checks its output folder there)."""
    start = time.perf_counter()
    warnings: list[str] = []

    def warn(msg: str) -> None:
        warnings.append(msg)
        logger.warning(msg)

    check_options(opts)
    runner, meta = est.runner, est.meta
    if est.expand_warning:
        warnings.append(est.expand_warning)  # the estimator has logged it
    for w in check_head(meta, opts.ldl):
        warn(w)
    data_dir, dataset, csv = resolve_data(opts.data_dir, opts.dataset, opts.split, meta)
    expand = est.expand
    if meta.dataset and meta.dataset != dataset:
        logger.info("note: the model was trained on %r; evaluating on %r", meta.dataset, dataset)

    if ready is not None:
        ready()
    try:
        csv_rows = len(read_align_csv(csv))
    except ValueError as e:
        raise ValError(str(e)) from None
    cache_dir = (opts.cache_dir or data_dir / ".agecli_cache") if opts.cache else None
    faces = load_faces(csv, data_dir, dataset, meta.img_size, expand, cache_dir, opts.workers, log=warn,
                       template=meta.template)
    preds, tta = predict_all(runner, faces.images, est.batch_size, opts.tta, progress)
    df = prediction_frame(faces, preds, tta)

    path = est.model_path
    summary: dict[str, Any] = figures(df)
    summary.update({"skipped": csv_rows - len(df), "skipped_photos": faces.skipped[:100], "model": str(path), "model_hash": file_hash(path),
                    "arch": meta.arch, "head": meta.head, "loss": meta.loss,
                    "img_size": meta.img_size, "ldl": opts.ldl, "dataset": dataset, "split": opts.split,
                    "csv": str(csv), "expand": float(expand), "trained_expand": meta.expand,
                    "runner": runner.kind, "device": runner.device, "batch_size": est.batch_size, "tta": opts.tta,
                    "worst_threshold": opts.worst_threshold})
    if opts.baseline:
        median = training_median(data_dir, dataset)
        if median is None:
            warn(f"`baseline`: no {csv_name(dataset, 'train')} in {data_dir}, so no training median to compare with")
        summary.update(baseline_figures(median, df["age"].to_numpy(float)))
    summary["n_worst"] = int(len(worst_faces(df, opts.worst_threshold)))
    summary["warnings"] = list(warnings)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return Evaluation(df, faces.images, summary, groups=group_tables(df), warnings=warnings, started=start)


# ---------------------------------------------------------------- the public function

def evaluate(model: str | Path | None = None, data_dir: str | Path | None = None, dataset: str | None = None,
             split: str = "test", *, ldl: bool = False, expand: float | None = None, runner: str = "auto",
             device: str = "cpu", batch_size: int = 64, tta: str = "none", baseline: bool = False,
             worst_threshold: float = 10.0, cache: bool = False, cache_dir: str | Path | None = None,
             workers: int = 2, progress: Callable[[int, int], None] | None = None,
             providers: str | Sequence[str] | None = None) -> Evaluation:
    """Accuracy of a model on an aligned split made by `agecli prepare`, without writing
    report files: `ev.summary` (mae, ca3/ca5/ca7, n, ...), `ev.frame` (one row per face),
    `ev.groups` (per age group, gender, ethnicity). The crops are cached (the cache
    training uses, <data-dir>/.agecli_cache, unless `cache_dir` says where) only with
    `cache=True`, as `agecli val` does."""
    from ..api import AgeEstimator  # eval/ sits above the API it evaluates through

    settings = InferSettings(runner=runner, device=device, batch_size=batch_size, expand=expand, providers=providers)
    opts = ValOptions(model=None if model is None else Path(model), data_dir=None if data_dir is None else Path(data_dir),
                      dataset=dataset, split=split, ldl=ldl, settings=settings, tta=tta, baseline=baseline,
                      worst_threshold=worst_threshold, cache_dir=None if cache_dir is None else Path(cache_dir),
                      workers=workers, cache=cache)
    check_options(opts)
    est = AgeEstimator(opts.model, settings=settings)
    return evaluate_split(est, opts, progress=progress)
