"""Where the shipped default age model lives: `weights/` in a checkout, or inside the
installed package (`agecli/weights/`)."""
from __future__ import annotations

from pathlib import Path

import agecli

DEFAULT_MODEL_NAME = "agecli_default.onnx"


class ModelNotFoundError(Exception):
    """No model was given and the default model is not installed."""


def default_model_candidates() -> list[Path]:
    """The places searched for the default model, in order."""
    pkg = Path(agecli.__file__).resolve().parent
    return [pkg.parent / "weights" / DEFAULT_MODEL_NAME, pkg / "weights" / DEFAULT_MODEL_NAME]


def default_model_path() -> Path:
    """The shipped default model; raises ModelNotFoundError when it is not installed."""
    for path in default_model_candidates():
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in default_model_candidates())
    raise ModelNotFoundError(f"no model: pass --resume or install the default model (looked for {looked})")
