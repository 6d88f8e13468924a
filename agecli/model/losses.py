"""Training objectives. Each `<name>_loss` takes the model's raw outputs and the batch's
ages and gives the age part of TRAIN.LOSS `<name>`; `total_loss` adds the gender and
ethnicity terms of a multi-task head. Which names exist, their heads and help are in
`objectives.py` (torch-free, for the CLI)."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .objectives import LOSSES, head_for

__all__ = ["LOSSES", "head_for", "age_loss", "total_loss", "gaussian_labels"]

AgeLoss = Callable[..., torch.Tensor]  # (out, age, bins, cfg, teacher) -> scalar


def gaussian_labels(age: torch.Tensor, bins: torch.Tensor, sigma: float) -> torch.Tensor:
    """Discretised Gaussian label distribution centred on each true age (DLDL)."""
    d = torch.exp(-((bins[None] - age[:, None]) ** 2) / (2 * sigma ** 2))
    return d / d.sum(1, keepdim=True)


def _distribution(out: dict[str, torch.Tensor], age: torch.Tensor, bins: torch.Tensor):
    """(log-probabilities, the true age's bin, probabilities, expected age) of a dist head."""
    logits = out["logits"].float()
    target = (age.round() - bins[0]).long().clamp(0, logits.shape[1] - 1)
    logp = logits.log_softmax(1)
    p = logp.exp()
    return logp, target, p, p @ bins


def _soft_target(age: torch.Tensor, bins: torch.Tensor, cfg: dict, teacher: torch.Tensor | None) -> torch.Tensor:
    """The Gaussian label distribution, mixed with the teacher's by TRAIN.TEACHER_WEIGHT."""
    t = cfg["TRAIN"]
    soft = gaussian_labels(age, bins, t["LDL_SIGMA"])
    if teacher is not None:
        soft = (1 - t["TEACHER_WEIGHT"]) * soft + t["TEACHER_WEIGHT"] * teacher
    return soft


def l1_loss(out, age, bins, cfg, teacher=None):
    return F.l1_loss(out["age"], age)


def mse_loss(out, age, bins, cfg, teacher=None):
    return F.mse_loss(out["age"], age) / 100.0


def range_loss(out, age, bins, cfg, teacher=None):
    logits = out["logits"].float()
    width = cfg["MODEL"]["RANGE_WIDTH"]
    target = ((age - cfg["MODEL"]["AGE_MIN"]) // width).long().clamp(0, logits.shape[1] - 1)
    return F.cross_entropy(logits, target)


def ce_loss(out, age, bins, cfg, teacher=None):
    logp, target, _, _ = _distribution(out, age, bins)
    return F.nll_loss(logp, target)


def focal_loss(out, age, bins, cfg, teacher=None):
    logp, target, _, _ = _distribution(out, age, bins)
    pt = logp.gather(1, target[:, None]).squeeze(1)
    return (-(1 - pt.exp()) ** cfg["TRAIN"]["FOCAL_GAMMA"] * pt).mean()


def mv_loss(out, age, bins, cfg, teacher=None):
    t = cfg["TRAIN"]
    logp, target, p, mean = _distribution(out, age, bins)
    var = p @ (bins ** 2) - mean ** 2
    return F.nll_loss(logp, target) + t["MV_LAMBDA1"] * ((mean - age) ** 2).mean() / 2 + t["MV_LAMBDA2"] * var.mean()


def emd_loss(out, age, bins, cfg, teacher=None):
    _, _, p, _ = _distribution(out, age, bins)
    soft = _soft_target(age, bins, cfg, teacher)
    return ((p.cumsum(1) - soft.cumsum(1)) ** 2).sum(1).mean()


def ldl_loss(out, age, bins, cfg, teacher=None):
    """KL(label distribution || prediction) + lambda * L1 on the expectation."""
    logp, _, _, mean = _distribution(out, age, bins)
    soft = _soft_target(age, bins, cfg, teacher)
    kl = F.kl_div(logp, soft, reduction="batchmean")
    return kl + cfg["TRAIN"]["LDL_LAMBDA"] * F.l1_loss(mean, age)


def _age_losses() -> dict[str, AgeLoss]:
    """Each registered objective's function, found by its name: a name in
    objectives.LOSSES without its `<name>_loss` here fails at import, not mid-run."""
    found = {}
    for name, objective in LOSSES.items():
        fn = globals().get(f"{objective.age or name}_loss")
        if fn is None:
            raise ImportError(f"TRAIN.LOSS {name}: agecli/model/losses.py has no {objective.age or name}_loss()")
        found[name] = fn
    return found


AGE_LOSSES = _age_losses()


def age_loss(loss: str, out: dict[str, torch.Tensor], age: torch.Tensor, bins: torch.Tensor, cfg: dict,
             teacher: torch.Tensor | None = None) -> torch.Tensor:
    """The age part of every objective; `teacher` (N, bins) joins the label distribution
    of the taught objectives (ldl, mt, emd) with weight TRAIN.TEACHER_WEIGHT."""
    head_for(loss)  # an unknown name says so
    return AGE_LOSSES[loss](out, age, bins, cfg, teacher)


def total_loss(loss: str, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], bins: torch.Tensor,
               cfg: dict) -> torch.Tensor:
    """Age loss, plus masked gender/ethnicity cross-entropy for multi-task (label -1 = unknown).
    With a teacher (`teacher_probs`, `teacher_gender` in the batch) its answers join the targets."""
    value = age_loss(loss, out, batch["age"], bins, cfg, batch.get("teacher_probs"))
    if head_for(loss) != "mt":
        return value
    w = cfg["TRAIN"]["TEACHER_WEIGHT"] if "teacher_gender" in batch else 0.0
    for key, logits in (("gender", out["gender_logits"]), ("race", out["race_logits"])):
        y = batch[key]
        if (y >= 0).any():
            value = value + (1 - w if key == "gender" else 1) * F.cross_entropy(logits.float(), y, ignore_index=-1)
    if w:  # every face, labelled or not: the teacher answers for all
        logp = out["gender_logits"].float().log_softmax(1)
        value = value + w * -(batch["teacher_gender"] * logp).sum(1).mean()
    return value
