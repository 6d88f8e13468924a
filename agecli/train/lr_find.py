"""`--lr-find`: an exponential learning-rate sweep over a few hundred batches.

Saves the loss-vs-LR curve (CSV + PNG) in the checkpoint folder and suggests the rate
where the smoothed loss falls fastest; the model is thrown away afterwards.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..atomic import figure_png, write_bytes
from ..data.dataset import AlignedFaces, batch_tensor
from ..model.checkpoint import build_model, model_meta
from ..model.losses import head_for, total_loss
from .schedules import build_optimizer
from .trainer import TrainJob, load_split


def lr_find(job: TrainJob, start: float = 1e-7, end: float = 1.0, steps: int = 100) -> dict:
    cfg, t = job.cfg, job.cfg["TRAIN"]
    loss_name = t["LOSS"]
    meta = model_meta(cfg, head_for(loss_name), loss_name)
    data = AlignedFaces.concat([load_split(job, n, d, "train", cfg["MODEL"]["IMG_SIZE"], cfg["DATA"]["EXPAND"],
                                           template=meta.get("template")) for n, d in job.sets()])
    model = build_model(meta, pretrained=job.pretrained).to(memory_format=torch.channels_last).train()
    cfg = {**cfg, "TRAIN": {**t, "LR": start}}
    opt = build_optimizer(model.parameters(), cfg)
    rng = np.random.default_rng(t["SEED"])
    gen = torch.Generator().manual_seed(t["SEED"])
    ages = np.clip(data.ages, cfg["MODEL"]["AGE_MIN"], cfg["MODEL"]["AGE_MAX"])
    factor = (end / start) ** (1 / max(1, steps - 1))
    lrs, losses, smooth, best = [], [], 0.0, math.inf
    for i in range(steps):
        lr = start * factor ** i
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.choice(len(data), min(t["BATCH_SIZE"], len(data)), replace=False)
        x = batch_tensor(data.images[idx], meta["mean"], meta["std"], job.aug, rng, gen)
        batch = {"age": torch.from_numpy(ages[idx]), "gender": torch.from_numpy(data.genders[idx]),
                 "race": torch.from_numpy(data.races[idx])}
        loss = total_loss(loss_name, model(x), batch, model.bins, cfg)
        if not torch.isfinite(loss):
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        smooth = 0.9 * smooth + 0.1 * loss.item() if i else loss.item()
        value = smooth / (1 - 0.9 ** (i + 1)) if i else smooth
        lrs.append(lr)
        losses.append(value)
        best = min(best, value)
        if job.progress:
            job.progress("lr sweep", i + 1, steps, {"lr": lr, "loss": value})
        if value > 4 * best and i > 10:
            break
    suggested = suggest_lr(np.array(lrs), np.array(losses))
    job.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    out_csv = job.checkpoint_dir / "lr_find.csv"
    np.savetxt(out_csv, np.stack([lrs, losses], 1), delimiter=",", header="lr,loss", comments="")
    plot = job.checkpoint_dir / "lr_find.png"
    _plot(lrs, losses, suggested, plot)
    return {"suggested_lr": suggested, "plot": str(plot), "csv": str(out_csv)}


def suggest_lr(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The rate at the steepest descent of the loss against log(lr), before its minimum."""
    if len(lrs) < 3:
        return float(lrs[0]) if len(lrs) else float("nan")
    stop = int(np.argmin(losses)) + 1
    grad = np.gradient(losses[:stop], np.log(lrs[:stop])) if stop >= 3 else np.gradient(losses, np.log(lrs))
    return float(lrs[int(np.argmin(grad))])


def _plot(lrs, losses, suggested: float, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.axvline(suggested, color="C1", ls="--", label=f"suggested {suggested:.1e}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed loss")
    ax.legend()
    fig.tight_layout()
    write_bytes(path, figure_png(fig))
