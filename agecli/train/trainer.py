"""The one trainer behind `train`, `train-ldl` and `train-mt`; they differ in TRAIN.LOSS.

Several prepared sets can train together (`--dataset utkface,aaf`): their train splits
are pooled, each valid split is scored on its own every epoch (`val_mae_<set>` in
`log.csv`), and `best.pth` is chosen on the mean of the per-set figures (MAE, or CA(3):
TRAIN.BEST_METRIC), so the smaller collection counts as much as the larger one.

Every epoch writes `last.pth` (and `best.pth` when validation improves) atomically, a
row of `log.csv` and the learning-curve PNG. Randomness is seeded per epoch from
(TRAIN.SEED, epoch), so `--resume` from `last.pth` continues exactly as an
uninterrupted run would.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..data.dataset import AlignedFaces
from ..data.readers import collection_metric
from ..data.records import csv_name, resolve_image_root
from ..vocab import AUG_KINDS
from ..atomic import OutputError, figure_png, write_bytes
from ..errors import AgecliError
from ..eval.metrics import age_metrics
from ..infer.torch_runner import predict_torch
from ..model.heads import calibrate_std, mix_looks
from ..model.checkpoint import build_model, load_checkpoint, load_matching_heads, model_meta, save_checkpoint
from ..model.meta import crop_template, resume_mismatch
from ..model.losses import head_for, total_loss
from ..model.objectives import TAUGHT_LOSSES
from .loader import epoch_batches, loader_threads
from .teacher import TeacherError, faces_hash, teacher_targets
from .schedules import build_optimizer, build_scheduler

LOG_COLUMNS = ["epoch", "train_loss", "val_mae", "val_ca3", "val_ca5", "val_ca7", "lr", "images_per_s", "seconds"]


class TrainingError(AgecliError):
    """A run that cannot start (bad data, a checkpoint that does not fit); the message
    says what to do."""


class DivergedError(TrainingError):
    """The loss became NaN or infinite: the run stopped, its last good checkpoint kept."""


@dataclass
class TrainJob:
    """Everything one training run needs, as the CLI collected it."""

    cfg: dict
    data_dir: Path | list[Path]  # one folder for all sets, or one per set
    dataset: str  # a CSV prefix, or several joined by commas: "utkface,aaf"
    checkpoint_dir: Path
    aug: bool = False
    resume: Path | None = None
    pretrained: bool | str = True
    multi_gpu: bool = False
    # progress lines: the CLI prints them; a Python caller gets log records, not stdout
    log: Callable[[str], None] = logging.getLogger("agecli.train").info
    progress: Callable[[str, int, int, dict], None] | None = None  # (phase, done, total, stats)
    extra_meta: dict = field(default_factory=dict)

    def sets(self) -> list[tuple[str, Path]]:
        """(dataset, data folder) pairs: `data_dir` is shared or given once per set."""
        names = [n.strip() for n in self.dataset.split(",") if n.strip()]
        dirs = list(self.data_dir) if isinstance(self.data_dir, (list, tuple)) else [self.data_dir]
        if len(dirs) == 1:
            dirs = dirs * len(names)
        if not names or len(dirs) != len(names):
            raise TrainingError(f"`dataset` {self.dataset!r} names {len(names)} sets but {len(dirs)} "
                                "`data_dir` folders were given: give one folder, or one per set", setting="data_dir")
        return [(n, Path(d)) for n, d in zip(names, dirs)]


def select_device(multi_gpu: bool) -> tuple[torch.device, int, int]:
    """(device, rank, world size). --multi-gpu expects to be started by torchrun."""
    if multi_gpu:
        if "RANK" not in os.environ:
            raise TrainingError("`multi_gpu` runs under torchrun: torchrun --nproc_per_node N -m agecli train ...",
                                setting="multi_gpu")
        import torch.distributed as dist

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", 0))
        dev = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return dev, rank, world
    return (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")), 0, 1


def load_split(job: TrainJob, dataset: str, data_dir: Path, split: str, size: int, expand: float,
               rank: int = 0, distributed: bool = False, template=None) -> AlignedFaces:
    path = data_dir / csv_name(dataset, split)
    if not path.exists():
        raise TrainingError(f"{path} not found: run `agecli prepare --dataset {dataset} ...` first")
    cache = job.cfg["DATA"]["CACHE_DIR"] or data_dir / ".agecli_cache"
    # DDP: rank 0 builds the crop cache while the others wait, then they read its file
    # (every rank writing the same file at once raced on the temporary file).
    if distributed and rank != 0:
        torch.distributed.barrier()
    data = AlignedFaces.load(path, resolve_image_root(data_dir, dataset), size, expand, cache, log=job.log,
                             template=template)
    if distributed and rank == 0:
        torch.distributed.barrier()
    return data


def evaluate_sets(model: torch.nn.Module, sets: dict[str, AlignedFaces], meta: dict,
                  device: torch.device) -> dict[str, float]:
    """Metrics of each valid set (`mae_<set>`...), their unweighted means (`mae`...), and
    `std_scale`, the factor that makes +-1 std cover 68% of the pooled valid faces."""
    per, pooled = {}, []
    for name, data in sets.items():
        out = predict_torch(model, data.images, meta, 128, device)
        per[name] = age_metrics(out["age"], data.ages)
        pooled.append((out["age"], out["std"], data.ages))
    res = {k: float(np.mean([m[k] for m in per.values()])) for k in next(iter(per.values()))}
    if len(per) > 1:
        res.update({f"{k}_{name}": v for name, m in per.items() for k, v in m.items()})
    if meta["head"] != "reg":
        res["std_scale"] = calibrate_std(*(np.concatenate(c) for c in zip(*pooled)))
    return res


def _write_log_row(path: Path, row: dict, columns: list[str]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k) for k in columns})


def _trim_log(path: Path, start_epoch: int) -> None:
    """Keep only the log rows of epochs before `start_epoch`: a fresh run (or one resumed
    from an earlier checkpoint) never appends to another run's rows."""
    if not path.exists():
        return
    if start_epoch == 0:
        path.unlink()
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if (r.get("epoch") or "").isdigit() and int(r["epoch"]) <= start_epoch]
        columns = reader.fieldnames or LOG_COLUMNS
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_bytes(path, buf.getvalue().encode())


def plot_curve(log_csv: Path, out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(log_csv)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(df["epoch"], df["train_loss"], marker="o")
    ax[0].set(xlabel="epoch", ylabel="train loss")
    ax[1].plot(df["epoch"], df["val_mae"], marker="o", color="C1", label="mean")
    for i, col in enumerate(c for c in df.columns if c.startswith("val_mae_")):
        ax[1].plot(df["epoch"], df[col], marker=".", color=f"C{i + 2}", label=col[len("val_mae_"):])
    if len(ax[1].lines) > 1:
        ax[1].legend()
    ax[1].set(xlabel="epoch", ylabel="validation MAE (years)")
    fig.tight_layout()
    write_bytes(out_png, figure_png(fig))


def tensorboard_writer(logdir: Path):
    """A TensorBoard SummaryWriter when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(logdir / "tensorboard"))


def set_backbone_trainable(model: torch.nn.Module, trainable: bool) -> None:
    for p in model.backbone.parameters():
        p.requires_grad_(trainable)


def trainable_net(model: torch.nn.Module, trainable: bool, distributed: bool, device: torch.device) -> torch.nn.Module:
    """The module to train with the backbone (un)frozen. Under DDP a fresh wrapper: DDP
    registers the parameters that require grad when it is built, so flipping
    requires_grad under a built one leaves its reducer waiting for gradients that never come."""
    set_backbone_trainable(model, trainable)
    if not distributed:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def broadcast_from_rank0(obj):
    """Rank 0's `obj` on every rank (small picklable values: the validation figures)."""
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def rank_order(order: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's share of an epoch's sample order. The order is padded (wrapping round)
    to a multiple of `world`, so every rank runs the same number of batches: a rank with
    one batch more would wait forever for the others in its gradient all-reduce."""
    pad = -len(order) % world
    return np.concatenate([order, order[:pad]])[rank::world]


def epoch_order(rng: np.random.Generator, ages: np.ndarray, balance: float) -> np.ndarray:
    """One epoch's sample order. With TRAIN.BALANCE p > 0, as many draws with
    replacement, each face weighted by (faces in its 5-year age bin)^-p: children and the
    over-60s, rare in every collection, are seen more often (p = 1: every bin alike)."""
    if not balance:
        return rng.permutation(len(ages))
    bins = np.minimum(ages // 5, 20).astype(int)
    weight = np.bincount(bins)[bins].astype(np.float64) ** -balance
    return rng.choice(len(ages), size=len(ages), p=weight / weight.sum())


def _teacher(job: TrainJob, sets: list[tuple[str, Path]], train_data: AlignedFaces, rank: int,
             distributed: bool) -> dict[str, np.ndarray]:
    """TRAIN.TEACHER's answers for every train face, in `train_data`'s order."""
    cfg, t = job.cfg, job.cfg["TRAIN"]
    if t["LOSS"] not in TAUGHT_LOSSES:
        raise TrainingError(f"TRAIN.TEACHER needs a loss with a target distribution ({', '.join(TAUGHT_LOSSES)}), "
                            f"not {t['LOSS']}")
    path = Path(t["TEACHER"])
    if not path.is_file():
        raise TrainingError(f"TRAIN.TEACHER {path}: no such model file")
    size, expand, template = cfg["MODEL"]["IMG_SIZE"], cfg["DATA"]["EXPAND"], crop_template(cfg)

    def crops_for(t_size: int, t_expand: float, t_template) -> np.ndarray:
        same_template = t_template is None if template is None else (
            t_template is not None and np.allclose(np.asarray(t_template, float), np.asarray(template, float)))
        if (t_size, t_expand) == (size, expand) and same_template:
            return train_data.images
        return AlignedFaces.concat([load_split(job, n, d, "train", t_size, t_expand, rank, distributed, t_template)
                                    for n, d in sets]).images

    try:
        taught = teacher_targets(path, crops_for, faces_hash(train_data.images), cfg["MODEL"]["AGE_MIN"],
                                 cfg["MODEL"]["AGE_MAX"], job.checkpoint_dir / "teacher.npz", job.log)
    except TeacherError as e:
        raise TrainingError(str(e)) from None
    if len(taught["probs"]) != len(train_data):
        raise TrainingError(f"TRAIN.TEACHER {path}: answered for {len(taught['probs'])} faces, "
                            f"the train split has {len(train_data)}; delete {job.checkpoint_dir / 'teacher.npz'}")
    if t["LOSS"] != "mt":
        taught.pop("gender_probs", None)
    return taught


def best_metric(setting: str, sets: list[tuple[str, Path]]) -> str:
    """What best.pth (and the plateau schedule, TRAIN.PATIENCE) is chosen on: TRAIN.BEST_METRIC
    mae or ca3; auto is the figure the collections report (`readers.collection_metric`:
    CA(3) when every set is MegaAge, else MAE)."""
    if setting != "auto":
        return setting
    return "ca3" if all(collection_metric(n) == "ca3" for n, _ in sets) else "mae"


@dataclass
class EpochStats:
    loss: float  # mean train loss over every rank's samples
    seen: int  # this rank's samples
    started: float  # time.time() at the epoch's start
    train_seconds: float


class Trainer:
    """One run in named steps: `load_data` (the splits, the teacher's answers), `build`
    (model, optimizer, scheduler, a resumed state), `open_outputs` (the run folder's
    log), then each epoch `train_epoch` (every batch through `optimizer_step`),
    `validate`, `log_epoch`, `save_model`, `report`. `run` calls them in that order;
    `train(job)` is `Trainer(job).run()`."""

    def __init__(self, job: TrainJob) -> None:
        self.job, self.cfg, self.t = job, job.cfg, job.cfg["TRAIN"]
        self.loss_name = self.t["LOSS"]
        self.head = head_for(self.loss_name)
        self.device, self.rank, self.world = select_device(job.multi_gpu)
        self.distributed = job.multi_gpu  # under torchrun, even with one process (exercises DDP on one GPU)
        if self.t["THREADS"]:
            torch.set_num_threads(self.t["THREADS"])
        self.ckdir = job.checkpoint_dir

    # -- setup -------------------------------------------------------------------------

    def load_data(self) -> None:
        """The pooled train split, each set's valid split, the metadata, the teacher's answers."""
        job, cfg, t = self.job, self.cfg, self.t
        size, expand = cfg["MODEL"]["IMG_SIZE"], cfg["DATA"]["EXPAND"]
        sets = self.sets = job.sets()
        template = crop_template(cfg)
        parts = [load_split(job, n, d, "train", size, expand, self.rank, self.distributed, template) for n, d in sets]
        self.train_data = AlignedFaces.concat(parts)
        self.set_index = np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(parts)])
        self.val_sets = {n: load_split(job, n, d, "valid", size, expand, self.rank, self.distributed, template)
                         for n, d in sets}
        if len(self.train_data) == 0 or not all(len(v) for v in self.val_sets.values()):
            raise TrainingError("a train or valid split is empty")
        if self.head == "mt":  # a head without labels would train on nothing and still answer
            for col, what in (("gender", self.train_data.genders), ("race", self.train_data.races)):
                if not (what >= 0).any():
                    names = ", ".join(csv_name(n, "train") for n, _ in sets)
                    raise TrainingError(f"train-mt: {names} has no {col} labels, so the "
                                        f"{col} head would learn nothing; use train or train-ldl for age only")
        self.meta = {**model_meta(cfg, self.head, self.loss_name), "dataset": ",".join(n for n, _ in sets),
                     **job.extra_meta}
        if cfg["MODEL"].get("SET_HEADS"):
            if self.head not in ("dist", "mt") or len(sets) < 2:
                raise TrainingError("MODEL.SET_HEADS needs two or more `dataset` sets and an age distribution "
                                    f"(train, train-ldl or train-mt); this run has {len(sets)} set(s), head {self.head}")
            self.meta["set_heads"] = len(sets)
        if t.get("MIX_MIRROR"):  # trained on the two looks it will give: its metadata says so
            if self.head == "reg":
                raise TrainingError("TRAIN.MIX_MIRROR needs an age distribution to mix (train, train-ldl or train-mt)")
            self.meta.update({"flip_tta": True, "mirror_zoom": float(t["MIX_MIRROR"])})
        self.taught = _teacher(job, sets, self.train_data, self.rank, self.distributed) if t.get("TEACHER") else {}
        self.best_by = best_metric(t.get("BEST_METRIC", "auto"), sets)  # configs saved before it existed
        if cfg["DATA"]["AUG"] not in AUG_KINDS:
            raise TrainingError(f"DATA.AUG must be one of {', '.join(AUG_KINDS)}, not {cfg['DATA']['AUG']!r}")
        self.aug_kind = cfg["DATA"]["AUG"]
        self.log_columns = LOG_COLUMNS + ([f"val_mae_{n}" for n, _ in sets] if len(sets) > 1 else [])

    def build(self) -> None:
        """The model (seeded, pretrained or fine-tuned), optimizer and scheduler; a resumed
        run's weights, optimizer and scheduler state, epoch and best score."""
        job, cfg, t = self.job, self.cfg, self.t
        self.start_epoch, self.best, self.history_best = 0, math.inf, {}
        resume_state = None
        if job.resume:
            resume_state = load_checkpoint(job.resume)
            differs = resume_mismatch(resume_state["meta"], self.meta)  # the CLI checked first; the API lands here
            if differs:
                raise TrainingError(f"`resume` {job.resume}: the run has {differs}", setting="resume")
            if resume_state.get("best_by", self.best_by) != self.best_by:
                raise TrainingError(f"`resume` {job.resume}: the run chose best.pth by {resume_state['best_by']}; "
                                    f"resume with TRAIN.BEST_METRIC {resume_state['best_by']}", setting="resume")
        torch.manual_seed(t["SEED"])  # the head's initialisation is part of a reproducible run
        model = build_model(self.meta, pretrained=False if resume_state else job.pretrained)
        if isinstance(job.pretrained, str) and not resume_state:
            n_heads = load_matching_heads(model, job.pretrained)
            if n_heads:
                job.log(f"fine-tuning {job.pretrained}: its backbone and {n_heads} head tensors")
        model = model.to(self.device)
        self.model = model = model.to(memory_format=torch.channels_last)
        if self.device.type == "cpu":  # denormal floats in weights or gradients slow CPU maths up to 5x
            torch.set_flush_denormal(True)
        steps = math.ceil(len(self.train_data) / (t["BATCH_SIZE"] * self.world))
        self.steps = min(steps, t["MAX_STEPS"]) if t["MAX_STEPS"] else steps
        self.opt = build_optimizer([p for p in model.parameters()], cfg)
        self.sched, self.per_batch = build_scheduler(self.opt, cfg, self.steps)
        if resume_state:
            model.load_state_dict(resume_state["state_dict"])
            self.opt.load_state_dict(resume_state["optimizer"])
            self.sched.load_state_dict(resume_state["scheduler"])
            self.start_epoch = int(resume_state["epoch"]) + 1
            self.best = float(resume_state["best"])
            self.history_best = dict(resume_state.get("best_metrics", {}))
            job.log(f"resumed from {job.resume} at epoch {self.start_epoch}")
        self.net, self.net_trainable = model, None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda")

    def open_outputs(self) -> None:
        """The run folder, its log.csv cut back to the epochs before this run's first,
        TensorBoard; the clipped ages and the loader threads."""
        if self.rank == 0:
            self.ckdir.mkdir(parents=True, exist_ok=True)
        self.log_csv = self.ckdir / "log.csv"
        if self.rank == 0:
            _trim_log(self.log_csv, self.start_epoch)  # rows of epochs this run (re)does go
        cfg = self.cfg
        self.ages = np.clip(self.train_data.ages, cfg["MODEL"]["AGE_MIN"], cfg["MODEL"]["AGE_MAX"])
        self.board = tensorboard_writer(self.ckdir) if self.rank == 0 else None
        self.threads = loader_threads(self.t.get("LOADERS", -1), self.device)  # configs saved before it existed

    # -- one epoch ---------------------------------------------------------------------

    def train_epoch(self, epoch: int) -> EpochStats:
        """One pass over this rank's share of the epoch's order (seeded by TRAIN.SEED and
        the epoch, so a resumed run draws what an uninterrupted one would)."""
        t, job, data = self.t, self.job, self.train_data
        rng = np.random.default_rng([t["SEED"], epoch])
        torch.manual_seed(t["SEED"] * 7919 + epoch)
        if self.net_trainable != (epoch >= t["FREEZE_EPOCHS"]):
            self.net_trainable = epoch >= t["FREEZE_EPOCHS"]
            self.net = trainable_net(self.model, self.net_trainable, self.distributed, self.device)
        self.model.train()
        order = rank_order(epoch_order(rng, self.ages, t["BALANCE"]), self.rank, self.world)
        t0, seen, loss_sum = time.time(), 0, 0.0
        chosen = [np.sort(order[k * t["BATCH_SIZE"]:(k + 1) * t["BATCH_SIZE"]]) for k in range(self.steps)]
        chosen = [idx for idx in chosen if len(idx)]
        ready = epoch_batches(data.images, chosen, self.meta, job.aug, self.aug_kind, t["SEED"], epoch, self.threads)
        for step, (idx, x) in enumerate(zip(chosen, ready)):
            loss = self.batch_loss(idx, x)
            if not torch.isfinite(loss):
                raise DivergedError(f"loss became {loss.item()} at epoch {epoch} step {step}; stopped. "
                                    f"The last good checkpoint is {self.ckdir / 'last.pth'}. Try a lower TRAIN.LR.")
            self.optimizer_step(loss)
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            if job.progress and self.rank == 0:
                job.progress(f"epoch {epoch + 1}/{t['EPOCHS']}", step + 1, self.steps,
                             {"loss": loss_sum / seen, "img/s": seen * self.world / (time.time() - t0)})
        train_time = time.time() - t0
        train_loss = loss_sum / max(seen, 1)
        if self.distributed:  # log the mean over every rank's samples, not rank 0's share alone
            totals = torch.tensor([loss_sum, seen], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(totals)
            train_loss = float(totals[0] / totals[1].clamp_min(1))
        return EpochStats(train_loss, seen, t0, train_time)

    def batch_loss(self, idx: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        """TRAIN.LOSS of the faces `idx`, whose augmented batch is `x`."""
        data, device = self.train_data, self.device
        x = x.to(device)
        batch = {"age": torch.from_numpy(self.ages[idx]).to(device),
                 "gender": torch.from_numpy(data.genders[idx]).to(device),
                 "race": torch.from_numpy(data.races[idx]).to(device)}
        batch.update({f"teacher_{'probs' if k == 'probs' else 'gender'}": torch.from_numpy(v[idx]).to(device)
                      for k, v in self.taught.items()})
        sets = torch.from_numpy(self.set_index[idx]).to(device) if self.meta.get("set_heads") else None
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            if self.t.get("MIX_MIRROR"):  # the loss sees the answer predict gives (both looks, mixed)
                out = mix_looks(self.net(torch.cat([x, self.model.mirror_view(x)]),
                                         None if sets is None else torch.cat([sets, sets])))
            else:
                out = self.net(x, sets)
        return total_loss(self.loss_name, out, batch, self.model.bins, self.cfg)

    def optimizer_step(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.per_batch:
            self.sched.step()

    def validate(self) -> dict[str, float]:
        """The valid sets' figures (`evaluate_sets`). Rank 0 evaluates and every rank gets
        its figures, so the plateau step, the best score and early stopping are decided
        alike everywhere (decided on rank 0 alone, the others drifted or hung in the next
        all-reduce). Only rank 0 writes files."""
        metrics = evaluate_sets(self.model, self.val_sets, self.meta, self.device) if self.rank == 0 else None
        if self.distributed:
            metrics = broadcast_from_rank0(metrics)
        return metrics

    def score(self, metrics: dict[str, float]) -> float:
        """Lower is better: the MAE, or minus CA(3) (TRAIN.BEST_METRIC)."""
        return -metrics["ca3"] if self.best_by == "ca3" else metrics["mae"]

    def log_epoch(self, epoch: int, stats: EpochStats, metrics: dict[str, float]) -> dict:
        """The epoch's log.csv row (and TensorBoard scalars)."""
        multi = len(self.sets) > 1
        row = {"epoch": epoch + 1, "train_loss": round(stats.loss, 5),
               "val_mae": round(metrics["mae"], 4), **{f"val_ca{n}": round(metrics[f"ca{n}"], 4) for n in (3, 5, 7)},
               "lr": self.opt.param_groups[0]["lr"], "images_per_s": round(stats.seen * self.world / stats.train_seconds, 1),
               "seconds": round(time.time() - stats.started, 1),
               **{f"val_mae_{n}": round(metrics[f"mae_{n}"], 4) for n, _ in self.sets if multi}}
        if self.rank == 0:
            _write_log_row(self.log_csv, row, self.log_columns)
        if self.board:
            for k in ("train_loss", "val_mae", "val_ca3", "val_ca5", "lr", "images_per_s"):
                self.board.add_scalar(k, row[k], epoch + 1)
            self.board.flush()
        return row

    def save_model(self, epoch: int, metrics: dict[str, float], improved: bool) -> None:
        """last.pth, and best.pth when the epoch improved, each with the state a resume
        needs; then the learning curve. Rank 0 only."""
        ckdir, cfg = self.ckdir, self.cfg
        state = dict(optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict(), epoch=epoch, best=self.best,
                     best_metrics=self.history_best, best_by=self.best_by)
        meta_now = {**self.meta, "std_scale": metrics.get("std_scale", 1.0), "metrics": {**metrics, "epoch": epoch + 1}}
        try:
            save_checkpoint(ckdir / "last.pth", self.model, meta_now, cfg, **state)
            if improved:
                save_checkpoint(ckdir / "best.pth", self.model, meta_now, cfg, **state)
        except OutputError as e:  # the old file stays whole: the write went to a temporary
            kept = (f"the last good checkpoint is {ckdir / 'last.pth'}" if (ckdir / "last.pth").exists()
                    else "no checkpoint was saved")
            raise OutputError(f"{e}; stopped at epoch {epoch + 1}, {kept}") from None
        plot_curve(self.log_csv, ckdir / "learning_curve.png")

    def report(self, epoch: int, row: dict, metrics: dict[str, float], improved: bool) -> None:
        per_set = "".join(f" ({n} {metrics[f'mae_{n}']:.3f})" for n, _ in self.sets if len(self.sets) > 1)
        self.job.log(f"epoch {epoch + 1}: loss {row['train_loss']:.4f}  val MAE {metrics['mae']:.3f}{per_set}  "
                     f"CA3 {metrics['ca3']:.3f}  CA5 {metrics['ca5']:.3f}  {row['images_per_s']} img/s"
                     + ("  (best)" if improved else ""))

    def stop_early(self, epoch: int) -> bool:
        """TRAIN.PATIENCE epochs without a better score."""
        patience = self.t["PATIENCE"]
        return bool(patience and self.history_best and epoch + 1 - self.history_best["epoch"] >= patience)

    # -- the run -----------------------------------------------------------------------

    def run(self) -> dict:
        """Run (or resume) the training; returns the best validation metrics."""
        self.load_data()
        self.build()
        self.open_outputs()
        for epoch in range(self.start_epoch, self.t["EPOCHS"]):
            stats = self.train_epoch(epoch)
            metrics = self.validate()
            score = self.score(metrics)
            if not self.per_batch:
                self.sched.step(score)
            row = self.log_epoch(epoch, stats, metrics)
            improved = score < self.best
            if improved:
                self.best, self.history_best = score, {**metrics, "epoch": epoch + 1}
            if self.rank == 0:
                self.save_model(epoch, metrics, improved)
                self.report(epoch, row, metrics, improved)
            if self.stop_early(epoch):
                self.job.log(f"no improvement for {self.t['PATIENCE']} epochs: stopping")
                break
        if self.distributed:
            torch.distributed.destroy_process_group()
        skipped = len(self.train_data.skipped) + sum(len(v.skipped) for v in self.val_sets.values())
        return {**self.history_best, "skipped_images": skipped} if skipped else self.history_best


def train(job: TrainJob) -> dict:
    """Run (or resume) one training; returns the best validation metrics."""
    return Trainer(job).run()
