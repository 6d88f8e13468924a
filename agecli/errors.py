"""The typed errors library code raises (the CLI turns them into one line and an exit
code), and the check that says which commands need the `train` extra."""
from __future__ import annotations

import importlib.util

TRAIN_EXTRA_HINT = 'pip install torch==2.13.0 -e ".[train]"  (or: pip install "agecli[train]")'


class AgecliError(Exception):
    """Base of every error agecli raises on purpose; the message is one line for a user."""


class UsageError(AgecliError):
    """An option or argument that cannot work (bad value, contradictory flags)."""


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
