"""Optimisers and learning-rate schedules, stepped once per batch (plateau: per epoch)."""
from __future__ import annotations

import math

import torch

from ..errors import OptionError


def build_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    t = cfg["TRAIN"]
    name = t["OPT"].lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=t["LR"], momentum=t["MOMENTUM"], weight_decay=t["WD"], nesterov=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=t["LR"], weight_decay=t["WD"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=t["LR"], weight_decay=t["WD"])
    raise OptionError(f"unknown TRAIN.OPT {t['OPT']!r}; choose from adam, adamw, sgd")


def build_scheduler(opt: torch.optim.Optimizer, cfg: dict, steps_per_epoch: int):
    """Returns (scheduler, per_batch). Plateau is stepped per epoch with the val MAE."""
    t = cfg["TRAIN"]
    name = t["SCHED"].lower()
    total = max(1, t["EPOCHS"] * steps_per_epoch)
    warm = min(total - 1, t["WARMUP_EPOCHS"] * steps_per_epoch)
    if name == "cosine":
        def f(step: int) -> float:
            if step < warm:
                return (step + 1) / (warm + 1)
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
        return torch.optim.lr_scheduler.LambdaLR(opt, f), True
    if name == "step":
        every = max(1, t["STEP_EPOCHS"] * steps_per_epoch)
        return torch.optim.lr_scheduler.StepLR(opt, every, t["GAMMA"]), True
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t["LR"], total_steps=total), True
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=t["GAMMA"] if t["GAMMA"] < 1 else 0.1,
                                                          patience=2), False
    raise OptionError(f"unknown TRAIN.SCHED {t['SCHED']!r}; choose from cosine, step, plateau, onecycle")
