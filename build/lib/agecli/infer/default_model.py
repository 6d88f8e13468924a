"""Where the shipped default model lives: `<repo>/weights/` in a checkout, or the
`agecli/weights/` package data of an installed copy."""
from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_NAME = "agecli_default.onnx"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


class MissingModelError(FileNotFoundError):
    """No model given and no default model shipped; the message says where we looked."""


def default_model_candidates() -> list[Path]:
    """The places searched, in order: the checkout's weights/, then the package's."""
    return [PACKAGE_DIR.parent / "weights" / DEFAULT_MODEL_NAME, PACKAGE_DIR / "weights" / DEFAULT_MODEL_NAME]


def default_model_path() -> Path:
    """The shipped default model; raises MissingModelError when there is none."""
    candidates = default_model_candidates()
    for path in candidates:
        if path.is_file():
            return path
    raise MissingModelError(f"no default model ({DEFAULT_MODEL_NAME} is in neither "
                            f"{' nor '.join(str(p.parent) for p in candidates)}); pass a model with --resume")
