"""Run folders: each training run gets its own (`runs/x`, then `runs/x2`, `runs/x3`...),
so a second run never replaces the first one's `best.pth` or appends to its `log.csv`;
`config.json` in it records everything the run was started with.

A run writes into an existing folder only when it resumes from a checkpoint in it or
the user says `--exist-ok`. Here too: a train command's config (`train_config`), what
is checked before anything is written (`check_run`, `check_resume`), which folder a run
gets (`choose_folder`) and which process of a torchrun job records it (`records_run`).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import check_writable_dir, write_text
from .errors import OptionError

CONFIG = "config.json"


def train_config(cmd: str, default_loss: str, overrides: list[str], expand: float | None = None) -> dict:
    """The checked config of `agecli <cmd>`: the defaults, the KEY VALUE overrides, the
    command's loss (train-ldl trains ldl, train-mt mt) and --expand. ValueError says what is wrong."""
    from .config import apply_overrides, default_config, validate

    cfg = apply_overrides(default_config(), overrides)
    cfg["TRAIN"]["LOSS"] = cfg["TRAIN"]["LOSS"] or default_loss
    if cmd == "train-ldl" and cfg["TRAIN"]["LOSS"] != "ldl":
        raise OptionError("train-ldl trains with TRAIN.LOSS ldl; use `agecli train` for other objectives")
    if cmd == "train-mt":
        cfg["TRAIN"]["LOSS"] = "mt"
    if expand is not None:
        cfg["DATA"]["EXPAND"] = expand
    validate(cfg)
    check_names(cfg)
    return cfg


def check_run(cfg: dict, dataset: str, folds: int = 1, checkpoint: Path | None = None, pretrained: str | None = None,
              resume: Path | None = None) -> None:
    """What a run's options must satisfy, checked before it writes anything; ValueError
    (or CheckpointError for a --resume that is no checkpoint) says which."""
    if folds < 1:
        raise OptionError(f"`folds` must be 1 or more, not {folds}", setting="folds")
    if checkpoint is not None and checkpoint.exists() and not checkpoint.is_dir():
        raise OptionError(f"`checkpoint` {checkpoint}: is a file, not a folder for the run",  # was: photo.jpg2/
                          setting="checkpoint")
    if pretrained:
        check_pretrained(pretrained)
    if resume is not None and not resume.is_file():
        raise OptionError(f"`resume` {resume}: no such checkpoint file", setting="resume")
    if resume is not None:
        check_resume(resume, cfg, dataset, into_own_folder=checkpoint is None)


def under_torchrun(multi_gpu: bool) -> bool:
    """A --multi-gpu process that torchrun started (it sets RANK)."""
    return multi_gpu and "RANK" in os.environ


def records_run(multi_gpu: bool) -> bool:
    """Whether this process writes the run's config.json: every process but torchrun's
    ranks other than 0."""
    return os.environ.get("RANK", "0") == "0" or not multi_gpu


@dataclass(frozen=True)
class RunFolder:
    path: Path  # where the run writes
    wanted: Path  # the folder asked for (or the default); `path` differs when it held an earlier run
    fresh: bool  # absent or empty before this run: removed again if the run is refused before training

    @property
    def moved(self) -> bool:
        return self.path != self.wanted


def default_base(dataset: str, cfg: dict) -> Path:
    """runs/<dataset>_<loss>_<arch>; several sets joined by +."""
    return Path("runs") / f"{dataset.replace(',', '+')}_{cfg['TRAIN']['LOSS']}_{cfg['MODEL']['ARCH']}"


def choose_folder(dataset: str, cfg: dict, checkpoint: Path | None = None, resume: Path | None = None,
                  exist_ok: bool = False, multi_gpu: bool = False) -> RunFolder:
    """The folder a run writes into: a resumed run goes on in its checkpoint's folder
    (unless a checkpoint folder is given); a new one gets `checkpoint` (default
    `default_base`) when it is free or exist_ok, else the next free numbered sibling.
    Every rank of a torchrun job must write to one folder, and they start at once: there
    the folder is used as given (only rank 0 writes in it)."""
    if resume is not None and checkpoint is None:
        path = wanted = resume.parent
    else:
        wanted = checkpoint or default_base(dataset, cfg)
        path = run_dir(wanted, exist_ok or resume is not None or under_torchrun(multi_gpu))
    return RunFolder(path, wanted, fresh=not path.exists() or not any(path.iterdir()))


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
    check_writable_dir(folder, "`checkpoint`")
    record = {"command": " ".join(["agecli", *sys.argv[1:]]), "args": args, "config": cfg}
    write_text(folder / CONFIG, json.dumps(record, indent=2, default=str) + "\n")
    return folder


def check_resume(resume: Path, cfg: dict, dataset: str, into_own_folder: bool = True) -> None:
    """Everything a --resume must match, checked before the run writes anything: it is a
    run's checkpoint (a shipped model has no training state: fine-tune it with
    --pretrained), of the same model and datasets, in a folder an agecli run made (its
    config.json) whose log.csv, if any, has agecli's columns. ValueError says which."""
    from .model.checkpoint import load_checkpoint
    from .model.meta import model_meta, resume_mismatch
    from .train.trainer import LOG_COLUMNS

    ckpt = load_checkpoint(resume)
    if "optimizer" not in ckpt or "epoch" not in ckpt:
        raise OptionError(f"`resume` {resume}: a model without its training state, not a run to resume; "
                          f"to train on from it, use `pretrained` {resume}", setting="resume")
    # the head follows from the loss, so the run's own head is taken and the loss compared
    want = {**model_meta(cfg, ckpt["meta"].get("head"), cfg["TRAIN"]["LOSS"]), "dataset": dataset}
    differs = resume_mismatch(ckpt["meta"], want)
    if differs:
        raise OptionError(f"`resume` {resume}: the run has {differs}; resume with the run's own settings",
                          setting="resume")
    if not into_own_folder:
        return
    folder = resume.parent
    try:
        record = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        ok = isinstance(record, dict) and {"command", "args", "config"} <= set(record)
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise OptionError(f"`resume` {resume}: {folder} has no agecli run record ({CONFIG}); resuming would write "
                          "into a folder agecli did not make. Copy the checkpoint into a new folder with "
                          f"`checkpoint`, or train on from it with `pretrained` {resume}", setting="resume")
    log = folder / "log.csv"
    if log.exists():
        with open(log, encoding="utf-8", errors="replace") as fh:
            header = fh.readline().strip().split(",")
        if header[:len(LOG_COLUMNS)] != LOG_COLUMNS:
            raise OptionError(f"`resume` {resume}: {log} is not an agecli training log; not appending to it",
                              setting="resume")


def discard_unstarted(folder: Path) -> None:
    """Remove a run folder this run made when it was refused before training wrote
    anything: it holds only its config.json (an empty tensorboard folder at most)."""
    if not folder.is_dir():
        return
    entries = {p.name: p for p in folder.iterdir()}
    board = entries.get("tensorboard")
    if set(entries) - {CONFIG, "tensorboard"} or (board is not None and (not board.is_dir() or any(board.iterdir()))):
        return
    if board is not None:
        board.rmdir()
    (folder / CONFIG).unlink(missing_ok=True)
    folder.rmdir()


def check_names(cfg: dict) -> None:
    """MODEL.ARCH and TRAIN.LOSS against the registries, before any data is loaded."""
    from .model.backbones import BACKBONES
    from .model.objectives import LOSSES

    if cfg["MODEL"]["ARCH"] not in BACKBONES:
        raise OptionError(f"MODEL.ARCH {cfg['MODEL']['ARCH']!r}: choose from {', '.join(sorted(BACKBONES))}")
    if cfg["TRAIN"]["LOSS"] not in LOSSES:
        raise OptionError(f"TRAIN.LOSS {cfg['TRAIN']['LOSS']!r}: choose from {', '.join(LOSSES)}")


def check_pretrained(path: str) -> None:
    """--pretrained must be a readable state dict (or agecli checkpoint) of tensors;
    whether its names fit MODEL.ARCH is checked when the model is built."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise OptionError(f"`pretrained` {path}: no such file", setting="pretrained")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - the weights-only unpickler raises anything on junk
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise OptionError(f"`pretrained` {path}: not a state dict or agecli checkpoint ({first[:160]})",
                          setting="pretrained") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise OptionError(f"`pretrained` {path}: not a state dict (a mapping of parameter names to tensors)",
                          setting="pretrained")
