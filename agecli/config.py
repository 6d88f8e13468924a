"""Training defaults and `KEY VALUE` overrides (`MODEL.ARCH resnet50 TRAIN.LR 0.1`)."""
from __future__ import annotations

import copy
from typing import Any

DEFAULTS: dict[str, dict[str, Any]] = {
    "MODEL": {
        "ARCH": "efficientnet_lite0",
        "IMG_SIZE": 112,
        "AGE_MIN": 0,
        "AGE_MAX": 100,
        "DROPOUT": 0.2,
        "RANGE_WIDTH": 5,  # years per bin for TRAIN.LOSS range
    },
    "DATA": {
        "EXPAND": 0.25,
        "CACHE_DIR": "",  # default: <data-dir>/.agecli_cache
        "AUG": "photo",  # with --aug: basic (flip, rotation, scale, shift, colour) or photo (+ grayscale,
                         # colour cast, blur, low resolution, JPEG, noise, occlusion, frame edge)
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
        "PATIENCE": 0,  # stop after this many epochs without a better val MAE; 0 = never
        "MAX_STEPS": 0,  # stop each epoch after this many batches (smoke tests); 0 = all
    },
}


def default_config() -> dict[str, dict[str, Any]]:
    return copy.deepcopy(DEFAULTS)


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return value


def apply_overrides(cfg: dict[str, dict[str, Any]], pairs: list[str]) -> dict[str, dict[str, Any]]:
    """Apply `KEY VALUE` pairs; unknown keys and unparsable values raise ValueError."""
    if len(pairs) % 2:
        raise ValueError(f"overrides come in KEY VALUE pairs; {pairs[-1]!r} has no value")
    for key, value in zip(pairs[::2], pairs[1::2]):
        section, _, name = key.partition(".")
        if section not in cfg or name not in cfg[section]:
            known = ", ".join(f"{s}.{k}" for s in cfg for k in cfg[s])
            raise ValueError(f"unknown config key {key!r}; known keys: {known}")
        try:
            cfg[section][name] = _coerce(value, cfg[section][name])
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
    return cfg
