"""Where the shipped models live: `<repo>/weights/` in a checkout, or the
`agecli/weights/` package data of an installed copy. Beside the float default model,
the int8 models `demo --int8` runs (the age model and the face detector, statically
quantized by `bench/bench_int8.py --write`), each where it ships: a file ships only when
it meets its targets (the model card's int8 table)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import MissingModelError

DEFAULT_MODEL_NAME = "agecli_default.onnx"
DEFAULT_CHECKPOINT_NAME = "agecli_default.pth"  # the int8 age model records the sha256 of the checkpoint it came from
INT8_MODEL_NAME = "agecli_default.int8.onnx"
INT8_DETECTOR_NAME = "retinaface_mnet025.int8.onnx"
INT8_HOW = "python bench/bench_int8.py --write"  # the one command that makes both int8 files
__all__ = ["DEFAULT_MODEL_NAME", "INT8_DETECTOR_NAME", "INT8_MODEL_NAME", "MissingModelError", "default_model_candidates",
           "default_model_path", "int8_detector_path", "int8_model_path", "weights_dirs"]


def weights_dirs() -> list[Path]:
    """The folders searched, in order: the checkout's weights/, then the package's."""
    pkg = Path(__file__).resolve().parents[1]  # agecli/
    return [pkg.parent / "weights", pkg / "weights"]


def default_model_candidates() -> list[Path]:
    """The places searched for the default model, in order."""
    return [d / DEFAULT_MODEL_NAME for d in weights_dirs()]


def _find(name: str, what: str, how: str, candidates: list[Path] | None = None, setting: str | None = None) -> Path:
    candidates = candidates if candidates is not None else [d / name for d in weights_dirs()]
    for path in candidates:
        if path.is_file():
            return path
    raise MissingModelError(f"no {what}: {how} (looked for {', '.join(str(p) for p in candidates)})", setting=setting)


def default_model_path() -> Path:
    """The shipped default model; raises MissingModelError when there is none."""
    return _find(DEFAULT_MODEL_NAME, "model", "pass `model` or install the default model", default_model_candidates(),
                 "model")


def int8_model_path() -> Path:
    """The shipped int8 age model; MissingModelError when it does not ship."""
    return _find(INT8_MODEL_NAME, "int8 age model", f"this install ships none (make one with `{INT8_HOW}` in a "
                                                     "checkout, or run without `int8`)", setting="int8")


def int8_detector_path() -> Path:
    """The shipped int8 face detector; MissingModelError when it does not ship."""
    return _find(INT8_DETECTOR_NAME, "int8 face detector", f"this install ships none (make one with `{INT8_HOW}` "
                                                           "in a checkout, or run without `int8`)", setting="int8")


def stale_int8(meta: Mapping[str, Any], path: Path) -> str | None:
    """Why the int8 age model at `path` no longer matches the float model it sits beside
    (None when it does, or when there is nothing beside it to compare): it records the
    `file_hash` of the checkpoint it was quantized from, and a new default model makes
    it stale until `INT8_HOW` is run again."""
    from ..model.meta import file_hash

    record = meta.get("int8") or {}
    checkpoint = Path(path).parent / DEFAULT_CHECKPOINT_NAME
    if not checkpoint.is_file() or not record.get("source_hash"):
        return None
    if record["source_hash"] == file_hash(checkpoint):
        return None
    return (f"{Path(path).name} was quantized from another model than {checkpoint.name} beside it (a new default "
            f"model?): make it again with `{INT8_HOW}`")
