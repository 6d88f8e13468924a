"""The training objectives (`TRAIN.LOSS`) by name, without torch: which head each one
trains, whether a teacher's distribution can join its target, and a few words for the
CLI's help. The maths is in `losses.py`, one function per objective named
`<name>_loss` (checked when `losses.py` is imported).

Adding a loss: a function `<name>_loss(out, age, bins, cfg, teacher)` in `losses.py`
and its line in `LOSSES` here; `agecli train --help`, the `TRAIN.LOSS` check and the
teacher's check read this table.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionError


@dataclass(frozen=True)
class Objective:
    help: str  # a few words for `agecli train --help`
    head: str = "dist"  # the head it trains (model/heads.py HEADS)
    taught: bool = False  # has a target distribution that TRAIN.TEACHER can join
    age: str = ""  # the age loss it shares (mt trains ldl's), default its own


LOSSES: dict[str, Objective] = {
    "ce": Objective("cross-entropy over the 1-year age bins"),
    "mv": Objective("mean-variance, cross-entropy plus the expectation's error and spread"),
    "ldl": Objective("label distribution learning (DLDL-v2), KL to a Gaussian around the age + L1 on the expectation",
                     taught=True),
    "emd": Objective("earth mover's distance to a Gaussian around the age", taught=True),
    "focal": Objective("focal cross-entropy, TRAIN.FOCAL_GAMMA"),
    "l1": Objective("regression, L1", head="reg"),
    "mse": Objective("regression, squared error", head="reg"),
    "range": Objective("cross-entropy over MODEL.RANGE_WIDTH-year bins", head="range"),
    "mt": Objective("ldl with gender and ethnicity heads, missing labels masked", head="mt", taught=True, age="ldl"),
}

TAUGHT_LOSSES = tuple(n for n, o in LOSSES.items() if o.taught)


def head_for(loss: str) -> str:
    """The head TRAIN.LOSS `loss` trains; ValueError for an unknown name."""
    if loss not in LOSSES:
        raise OptionError(f"unknown TRAIN.LOSS {loss!r}; choose from {', '.join(LOSSES)}")
    return LOSSES[loss].head


def loss_help(names=None) -> str:
    """`ce: cross-entropy ...; mv: ...`: the objectives for a help text."""
    return "; ".join(f"{n}: {LOSSES[n].help}" for n in (LOSSES if names is None else names))
