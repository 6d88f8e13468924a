"""agecli: facial age estimation, as a command (`agecli`) and a library.

    from agecli import AgeEstimator, draw
    faces = AgeEstimator().predict("photo.jpg")   # list of FaceResult: box, age, std, ...

The names below load on first use, so `import agecli` stays cheap for the command line
and never imports torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AgeEstimator", "FaceResult", "draw", "evaluate", "AgecliError", "ImageError", "ModelError",
           "MissingModelError", "NeedsTrainExtra", "UsageError", "__version__"]

_WHERE = {"AgeEstimator": "api", "FaceResult": "api", "draw": "api", "evaluate": "eval.evaluate",
          "ImageError": "data.images", "AgecliError": "errors", "ModelError": "errors",
          "MissingModelError": "errors", "NeedsTrainExtra": "errors", "UsageError": "errors"}

if TYPE_CHECKING:
    from .api import AgeEstimator, FaceResult, draw
    from .data.images import ImageError
    from .eval.evaluate import evaluate
    from .errors import AgecliError, MissingModelError, ModelError, NeedsTrainExtra, UsageError


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'agecli' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
