"""Training objectives. Each takes the model's raw outputs and a batch of labels."""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "mv", "ldl", "emd", "focal", "l1", "mse", "range", "mt")
HEAD_OF_LOSS = {"l1": "reg", "mse": "reg", "range": "range", "mt": "mt"}


def head_for(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"unknown TRAIN.LOSS {loss!r}; choose from {', '.join(LOSSES)}")
    return HEAD_OF_LOSS.get(loss, "dist")


def gaussian_labels(age: torch.Tensor, bins: torch.Tensor, sigma: float) -> torch.Tensor:
    """Discretised Gaussian label distribution centred on each true age (DLDL)."""
    d = torch.exp(-((bins[None] - age[:, None]) ** 2) / (2 * sigma ** 2))
    return d / d.sum(1, keepdim=True)


def age_loss(loss: str, out: dict[str, torch.Tensor], age: torch.Tensor, bins: torch.Tensor, cfg: dict,
             teacher: torch.Tensor | None = None) -> torch.Tensor:
    """The age part of every objective; `teacher` (N, bins) joins the label distribution
    of ldl/mt with weight TRAIN.TEACHER_WEIGHT."""
    t = cfg["TRAIN"]
    if loss in ("l1", "mse"):
        pred = out["age"]
        return F.l1_loss(pred, age) if loss == "l1" else F.mse_loss(pred, age) / 100.0
    logits = out["logits"].float()
    if loss == "range":
        width = cfg["MODEL"]["RANGE_WIDTH"]
        target = ((age - cfg["MODEL"]["AGE_MIN"]) // width).long().clamp(0, logits.shape[1] - 1)
        return F.cross_entropy(logits, target)
    target = (age.round() - bins[0]).long().clamp(0, logits.shape[1] - 1)
    logp = logits.log_softmax(1)
    p = logp.exp()
    mean = p @ bins
    if loss == "ce":
        return F.nll_loss(logp, target)
    if loss == "focal":
        pt = logp.gather(1, target[:, None]).squeeze(1)
        return (-(1 - pt.exp()) ** t["FOCAL_GAMMA"] * pt).mean()
    if loss == "mv":
        var = p @ (bins ** 2) - mean ** 2
        return F.nll_loss(logp, target) + t["MV_LAMBDA1"] * ((mean - age) ** 2).mean() / 2 + t["MV_LAMBDA2"] * var.mean()
    soft = gaussian_labels(age, bins, t["LDL_SIGMA"])
    if teacher is not None:
        soft = (1 - t["TEACHER_WEIGHT"]) * soft + t["TEACHER_WEIGHT"] * teacher
    if loss == "emd":
        return ((p.cumsum(1) - soft.cumsum(1)) ** 2).sum(1).mean()
    # ldl / mt: KL(label distribution || prediction) + lambda * L1 on the expectation.
    kl = F.kl_div(logp, soft, reduction="batchmean")
    return kl + t["LDL_LAMBDA"] * F.l1_loss(mean, age)


def total_loss(loss: str, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], bins: torch.Tensor,
               cfg: dict) -> torch.Tensor:
    """Age loss, plus masked gender/ethnicity cross-entropy for multi-task (label -1 = unknown).
    With a teacher (`teacher_probs`, `teacher_gender` in the batch) its answers join the targets."""
    value = age_loss("ldl" if loss == "mt" else loss, out, batch["age"], bins, cfg, batch.get("teacher_probs"))
    if loss != "mt":
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
