"""Where the shipped default model lives: `<repo>/weights/` in a checkout, or the
`agecli/weights/` package data of an installed copy."""
from __future__ import annotations

from pathlib import Path

from ..errors import MissingModelError

DEFAULT_MODEL_NAME = "agecli_default.onnx"
__all__ = ["DEFAULT_MODEL_NAME", "MissingModelError", "default_model_candidates", "default_model_path"]


def default_model_candidates() -> list[Path]:
    """The places searched, in order: the checkout's weights/, then the package's."""
    pkg = Path(__file__).resolve().parents[1]  # agecli/
    return [pkg.parent / "weights" / DEFAULT_MODEL_NAME, pkg / "weights" / DEFAULT_MODEL_NAME]


def default_model_path() -> Path:
    """The shipped default model; raises MissingModelError when there is none."""
    candidates = default_model_candidates()
    for path in candidates:
        if path.is_file():
            return path
    raise MissingModelError(f"no model: pass --resume or install the default model "
                            f"(looked for {', '.join(str(p) for p in candidates)})")
