"""Run folders: each training run gets its own (`runs/x`, then `runs/x2`, `runs/x3`...),
so a second run never replaces the first one's `best.pth` or appends to its `log.csv`;
`config.json` in it records everything the run was started with.

A run writes into an existing folder only when it resumes from a checkpoint in it or
the user says `--exist-ok`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .atomic import check_writable_dir, write_text

CONFIG = "config.json"


def numbered(base: Path, n: int) -> Path:
    """`base` with run number n: runs/x2, or runs/resnet18-2 when the name ends in a digit."""
    sep = "-" if base.name[-1:].isdigit() else ""
    return base.with_name(f"{base.name}{sep}{n}")


def run_dir(base: Path, exist_ok: bool = False) -> Path:
    """The folder a new run writes into: `base` when it is free (absent or empty) or
    exist_ok, else the first free numbered sibling."""
    def free(p: Path) -> bool:
        return not p.exists() or (p.is_dir() and not any(p.iterdir()))

    if exist_ok or free(base):
        return base
    n = 2
    while not free(numbered(base, n)):
        n += 1
    return numbered(base, n)


def start_run(folder: Path, cfg: dict, args: dict[str, Any]) -> Path:
    """Create the run folder (proving it writable before any work) and save the run's
    full configuration: the command line, the options and every config value."""
    check_writable_dir(folder, "--checkpoint")
    record = {"command": " ".join(["agecli", *sys.argv[1:]]), "args": args, "config": cfg}
    write_text(folder / CONFIG, json.dumps(record, indent=2, default=str) + "\n")
    return folder


def check_names(cfg: dict) -> None:
    """MODEL.ARCH and TRAIN.LOSS against the registries, before any data is loaded."""
    from .model.backbones import BACKBONES
    from .model.losses import LOSSES

    if cfg["MODEL"]["ARCH"] not in BACKBONES:
        raise ValueError(f"MODEL.ARCH {cfg['MODEL']['ARCH']!r}: choose from {', '.join(sorted(BACKBONES))}")
    if cfg["TRAIN"]["LOSS"] not in LOSSES:
        raise ValueError(f"TRAIN.LOSS {cfg['TRAIN']['LOSS']!r}: choose from {', '.join(LOSSES)}")


def check_pretrained(path: str) -> None:
    """--pretrained must be a readable state dict (or agecli checkpoint) of tensors;
    whether its names fit MODEL.ARCH is checked when the model is built."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--pretrained {path}: no such file")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - the weights-only unpickler raises anything on junk
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"--pretrained {path}: not a state dict or agecli checkpoint ({first[:160]})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"--pretrained {path}: not a state dict (a mapping of parameter names to tensors)")
