"""Training defaults and `KEY VALUE` overrides (`MODEL.ARCH resnet50 TRAIN.LR 0.1`).

Every value is checked where it enters (`apply_overrides`, `validate`): a run never
starts with a setting that would crash it later or train on nothing.
"""
from __future__ import annotations

import copy
import math
from typing import Any

from .vocab import AUG_KINDS, MAX_AGE
from .errors import OptionError
from .model.meta import MIRROR_ZOOM_RANGE

DEFAULTS: dict[str, dict[str, Any]] = {
    "MODEL": {
        "ARCH": "efficientnet_lite0",
        "IMG_SIZE": 112,
        "AGE_MIN": 0,
        "AGE_MAX": 100,
        "DROPOUT": 0.2,
        "SET_HEADS": False,  # one age layer per training collection, mixed at inference (model/heads.py)
        "RANGE_WIDTH": 5,  # years per bin for TRAIN.LOSS range
    },
    "DATA": {
        "EXPAND": 0.25,
        "WINDOW": "",  # "left,top,right,bottom": black outside this part of the crop (model/meta.py parse_window)
        "ALIGN": "box",  # box: the detector's box, eyes levelled; template: the five landmarks onto a fixed template
        "CACHE_DIR": "",  # default: <data-dir>/.agecli_cache
        "AUG": "photo",  # with --aug: basic (flip, rotation, scale, shift, colour) or photo (+ grayscale,
                         # colour cast, blur, low resolution, JPEG, noise, occlusion, frame edge)
                         # or print (+ faded, tinted prints) or fill (+ half the black beyond
                         # the photo filled in) or chip (+ the other half black beyond a chip)
    },
    "TRAIN": {
        "LOSS": "",  # default per command: ce (train), ldl (train-ldl), mt (train-mt)
        "EPOCHS": 30,
        "BATCH_SIZE": 64,
        "OPT": "adamw",
        "LR": 0.001,
        "WD": 0.0001,
        "MOMENTUM": 0.9,
        "SCHED": "cosine",  # cosine (with warm-up), step, plateau, onecycle
        "WARMUP_EPOCHS": 1,
        "STEP_EPOCHS": 10,
        "GAMMA": 0.1,
        "FREEZE_EPOCHS": 0,  # train only the head for this many epochs, then unfreeze
        "LDL_SIGMA": 2.0,
        "LDL_LAMBDA": 1.0,
        "MV_LAMBDA1": 0.2,
        "MV_LAMBDA2": 0.05,
        "FOCAL_GAMMA": 2.0,
        "SEED": 0,
        "THREADS": 0,  # torch CPU threads; 0 = torch's default
        "LOADERS": -1,  # threads augmenting the next batches; -1 = up to 8 beside a GPU, none on a CPU
        "PATIENCE": 0,  # stop after this many epochs without a better validation score; 0 = never
        "BEST_METRIC": "auto",  # what best.pth is chosen on: mae, ca3, or auto (what the collection reports:
                                # CA3 for MegaAge, else MAE; agecli/data/readers)
        "MAX_STEPS": 0,  # stop each epoch after this many batches (smoke tests); 0 = all
        "BALANCE": 0.0,  # draw each 5-year age bin with weight count^-BALANCE; 0 = as the data is, 1 = even
        "TEACHER": "",  # a model whose answers on the train crops join the labels as soft targets
        "TEACHER_WEIGHT": 0.5,  # the teacher's share of each target (agecli/train/teacher.py)
        # 0 = off; else train on each face's mixed answer from its crop and its mirror image
        # zoomed to this share of the crop's side (1 = the whole mirror), the two looks the
        # model then gives at inference (meta flip_tta, mirror_zoom), so the two learn to err
        # apart rather than alike
        "MIX_MIRROR": 0.0,
    },
}


def default_config() -> dict[str, dict[str, Any]]:
    return copy.deepcopy(DEFAULTS)


# (low, high) inclusive bounds, or a tuple of allowed words; values not listed here are
# free or checked against their registry (MODEL.ARCH, TRAIN.LOSS: agecli/runs.py)
RULES: dict[str, tuple] = {
    "MODEL.IMG_SIZE": (32, 1024),
    "MODEL.AGE_MIN": (0, MAX_AGE - 1),
    "MODEL.AGE_MAX": (1, MAX_AGE),
    "MODEL.DROPOUT": (0.0, 0.95),
    "MODEL.RANGE_WIDTH": (1, 50),
    "DATA.EXPAND": (0.0, 3.0),
    "DATA.AUG": AUG_KINDS,
    "DATA.ALIGN": ("box", "template"),
    "TRAIN.EPOCHS": (1, 100_000),
    "TRAIN.BATCH_SIZE": (1, 65_536),
    "TRAIN.OPT": ("adam", "adamw", "sgd"),
    "TRAIN.LR": (1e-12, 10.0),
    "TRAIN.WD": (0.0, 1.0),
    "TRAIN.MOMENTUM": (0.0, 1.0),
    "TRAIN.SCHED": ("cosine", "step", "plateau", "onecycle"),
    "TRAIN.WARMUP_EPOCHS": (0, 100_000),
    "TRAIN.STEP_EPOCHS": (1, 100_000),
    "TRAIN.GAMMA": (1e-6, 1.0),
    "TRAIN.FREEZE_EPOCHS": (0, 100_000),
    "TRAIN.LDL_SIGMA": (0.01, 50.0),
    "TRAIN.LDL_LAMBDA": (0.0, 100.0),
    "TRAIN.MV_LAMBDA1": (0.0, 100.0),
    "TRAIN.MV_LAMBDA2": (0.0, 100.0),
    "TRAIN.FOCAL_GAMMA": (0.0, 20.0),
    "TRAIN.SEED": (0, 2**31 - 1),
    "TRAIN.THREADS": (0, 4096),
    "TRAIN.LOADERS": (-1, 64),
    "TRAIN.PATIENCE": (0, 100_000),
    "TRAIN.BEST_METRIC": ("auto", "mae", "ca3"),
    "TRAIN.MAX_STEPS": (0, 10**9),
    "TRAIN.BALANCE": (0.0, 1.0),
    "TRAIN.TEACHER_WEIGHT": (0.0, 1.0),
    "TRAIN.MIX_MIRROR": (0.0, 1.0),
}


def check_value(key: str, value: Any) -> None:
    """Raise ValueError naming the key when `value` is outside what training can use."""
    rule = RULES.get(key)
    if rule is None:
        return
    if isinstance(rule[0], str):
        if value not in rule:
            raise OptionError(f"{key} {value!r}: choose from {', '.join(r for r in rule if r)}")
        return
    lo, hi = rule
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionError(f"{key} {value}: not a finite number")
    if not lo <= value <= hi:
        raise OptionError(f"{key} {value}: must be between {lo:g} and {hi:g}")


def validate(cfg: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Check every value and the relations between them; ValueError names the key."""
    for section, values in cfg.items():
        for name, value in values.items():
            check_value(f"{section}.{name}", value)
    m = cfg["MODEL"]
    if m["AGE_MAX"] <= m["AGE_MIN"]:
        raise OptionError(f"MODEL.AGE_MAX {m['AGE_MAX']} must be above MODEL.AGE_MIN {m['AGE_MIN']}")
    mix = cfg["TRAIN"].get("MIX_MIRROR", 0.0)
    if mix and mix < MIRROR_ZOOM_RANGE[0]:
        raise OptionError(f"TRAIN.MIX_MIRROR {mix:g}: 0 (off) or the mirror's zoom, "
                          f"{MIRROR_ZOOM_RANGE[0]:g}-1 of the crop's side")
    return cfg


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise OptionError(f"expected a boolean, got {value!r}")
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return value


def apply_overrides(cfg: dict[str, dict[str, Any]], pairs: list[str]) -> dict[str, dict[str, Any]]:
    """Apply `KEY VALUE` pairs; unknown keys, unparsable or out-of-range values raise
    ValueError (call `validate` once the command has filled in its own defaults)."""
    if len(pairs) % 2:
        raise OptionError(f"overrides come in KEY VALUE pairs; {pairs[-1]!r} has no value")
    for key, value in zip(pairs[::2], pairs[1::2]):
        section, _, name = key.partition(".")
        if section not in cfg or name not in cfg[section]:
            known = ", ".join(f"{s}.{k}" for s in cfg for k in cfg[s])
            raise OptionError(f"unknown config key {key!r}; known keys: {known}")
        try:
            cfg[section][name] = _coerce(value, cfg[section][name])
        except ValueError as e:
            raise OptionError(f"{key}: {e}") from None
        check_value(key, cfg[section][name])
    return cfg
