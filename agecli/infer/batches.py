"""Crops into a model in batches: the normalisation torch models (and float-input ONNX
files of earlier versions) need, and the batching every runner shares. A leaf module:
the ONNX runner and the torch runner both build on it."""
from __future__ import annotations

import numpy as np


def normalise(crops: np.ndarray, mean, std) -> np.ndarray:
    """uint8 (N,S,S,3) RGB -> float32 (N,3,S,S), the model's normalisation (what the
    exported graph does inside; torch models and older float-input exports need it here)."""
    x = crops.astype(np.float32).transpose(0, 3, 1, 2)
    x *= 1.0 / 255
    x -= np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    x /= np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray(x)


def batched(predict_batch, crops: np.ndarray, batch_size: int, size: int) -> dict[str, np.ndarray]:
    """Run `predict_batch` over crops in batches and join the outputs. Zero crops still
    give every output key (zero-length), so callers never special-case an empty image."""
    if len(crops) == 0:
        return {k: v[:0] for k, v in predict_batch(np.zeros((1, size, size, 3), np.uint8)).items()}
    outs: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(crops), batch_size):
        for k, v in predict_batch(crops[i:i + batch_size]).items():
            outs.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in outs.items()}
