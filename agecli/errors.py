"""The typed errors library code raises (the CLI turns them into one line and an exit
code), and the check that says which commands need the `train` extra."""
from __future__ import annotations

import importlib.util

# agecli is not on PyPI (`pip install agecli` finds nothing): every install hint says
# what works, an install from a clone of the repository. The one template for them all:
INSTALL_HINT = 'pip install "{spec}" in a clone of agecli (there is no agecli on PyPI)'
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
TRAIN_EXTRA_HINT = INSTALL_HINT.format(spec=".[train]") + f"; on a CPU-only machine first {CPU_TORCH}"
RAY_EXTRA_HINT = INSTALL_HINT.format(spec=".[ray]")


class AgecliError(Exception):
    """Base of every error agecli raises on purpose; the message is one line for a user.

    Library code serves Python callers and the CLI alike, so a message names a setting
    by its Python name in backticks (`` `expand` must be between 0 and 3 ``, `` pass
    `exist_ok` ``), never by a flag; `cli.py` writes each such name as the flag of the
    running command (`--expand`, `--exist-ok`). Config keys (TRAIN.LR) need no backticks:
    both worlds spell them alike."""

    setting: str | None = None  # the setting at fault: callers can tell which without parsing the message

    def __init__(self, *args: object, setting: str | None = None) -> None:
        super().__init__(*args)
        self.setting = setting


class UsageError(AgecliError):
    """An option or argument that cannot work (bad value, contradictory flags)."""


class OptionError(UsageError, ValueError):
    """An option, config value or name that cannot work (`TRAIN.LR -1`, `folds=0`, an
    unknown MODEL.ARCH); `setting` names it. Also a ValueError: callers caught these as
    ValueError before they had a type."""


class DataError(AgecliError, ValueError):
    """A labelled set, list or aligned CSV that cannot be read as labelled faces (missing
    lists, broken rows, no accepted image); exit 2 in the CLI. Also a ValueError."""


class ModelError(AgecliError):
    """A model file that cannot be used (missing, not a model, not an agecli model)."""


class CheckpointError(ModelError):
    """A file that is not a usable agecli checkpoint; the message says why."""


class MissingModelError(ModelError, FileNotFoundError):
    """No model given and no default model shipped; the message says where we looked."""


class NeedsTrainExtra(AgecliError):
    """The step needs torch, which only the `train` extra installs."""


def torch_installed() -> bool:
    """Whether torch can be imported, found without importing it (that takes seconds)."""
    return importlib.util.find_spec("torch") is not None


def require_torch(what: str) -> None:
    """Raise NeedsTrainExtra naming `what` when torch is not installed."""
    if not torch_installed():
        raise NeedsTrainExtra(f"{what} needs torch, which the light install leaves out: {TRAIN_EXTRA_HINT}")
