"""ONNX Runtime sessions opened the one way agecli opens them.

ONNX Runtime's Python layer `print`s an "EP Error ... Falling back" banner to stdout when
a provider fails while the session is built (a CUDA build without a usable GPU, a bad
session setting). stdout carries agecli's result rows, so the banner goes to stderr.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import Any


def open_session(model: str | bytes, opts: Any, providers: Sequence[Any]) -> Any:
    """`onnxruntime.InferenceSession(model, opts, providers)`, its prints sent to stderr."""
    import onnxruntime as ort

    with contextlib.redirect_stdout(sys.stderr):
        return ort.InferenceSession(model, opts, providers=list(providers))
