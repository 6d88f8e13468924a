"""What a model records about itself, without torch: the checkpoint format tag, the
normalisation, the metadata dict every checkpoint and ONNX file carries, and the short
file hash reports quote. Torch-free, so `val` on an ONNX model needs no torch."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

FORMAT = "agecli-checkpoint-1"
MEAN = (0.5, 0.5, 0.5)  # EfficientNet-Lite's normalisation: (x/255 - 0.5) / 0.5
STD = (0.5, 0.5, 0.5)


def model_meta(cfg: dict, head: str, loss: str) -> dict[str, Any]:
    """The metadata a new model carries: everything inference needs to feed it."""
    m = cfg["MODEL"]
    return {"format": FORMAT, "arch": m["ARCH"], "head": head, "loss": loss, "img_size": m["IMG_SIZE"],
            "expand": cfg["DATA"]["EXPAND"], "age_min": m["AGE_MIN"], "age_max": m["AGE_MAX"],
            "range_width": m["RANGE_WIDTH"], "dropout": m["DROPOUT"], "mean": list(MEAN), "std": list(STD), "color": "RGB"}


def file_hash(path: str | Path) -> str:
    """Short sha256 of a file: the identity reports quote."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
