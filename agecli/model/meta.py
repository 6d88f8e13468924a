"""What a model records about itself, without torch: the checkpoint format tag, the
normalisation, the metadata dict every checkpoint and ONNX file carries, and the short
file hash reports quote. Torch-free, so `val` on an ONNX model needs no torch."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

FORMAT = "agecli-checkpoint-1"
MEAN = (0.5, 0.5, 0.5)  # EfficientNet-Lite's normalisation: (x/255 - 0.5) / 0.5
STD = (0.5, 0.5, 0.5)


def model_meta(cfg: dict, head: str, loss: str) -> dict[str, Any]:
    """The metadata a new model carries: everything inference needs to feed it."""
    m = cfg["MODEL"]
    meta = {"format": FORMAT, "arch": m["ARCH"], "head": head, "loss": loss, "img_size": m["IMG_SIZE"],
            "expand": cfg["DATA"]["EXPAND"], "age_min": m["AGE_MIN"], "age_max": m["AGE_MAX"],
            "range_width": m["RANGE_WIDTH"], "dropout": m["DROPOUT"], "mean": list(MEAN), "std": list(STD), "color": "RGB"}
    window = parse_window(cfg["DATA"].get("WINDOW", ""))
    if window:
        meta["window"] = list(window)
    return meta


def parse_window(text: str) -> tuple[float, float, float, float] | None:
    """DATA.WINDOW "left,top,right,bottom" (fractions of the crop) -> a tuple, "" -> None.

    The model sees black outside that window, in training and in every runner alike
    (`AgeNet.forward`): faces from a collection of tight chips (UTKFace's end at the
    chip, black beyond) and faces with their surroundings (All-Age-Faces, users'
    photos) then look alike, so the black border cannot tell a model which collection
    (and which labelling habits) a face came from."""
    if not text:
        return None
    try:
        left, top, right, bottom = (float(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"DATA.WINDOW {text!r}: give left,top,right,bottom as fractions of the crop") from None
    if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1) or abs(left - (1 - right)) > 1e-6:
        raise ValueError(f"DATA.WINDOW {text!r}: need 0 <= left < right <= 1, 0 <= top < bottom <= 1 and "
                         "left = 1 - right (the window must look the same in a mirror image)")
    return left, top, right, bottom


EXPAND_RANGE = (0.0, 3.0)  # crop margin: 0 = the face box, 3 = four times its side
IMG_SIZE_RANGE = (32, 1024)


def expand_problem(value: object) -> str | None:
    """Why `value` cannot be a crop expansion (None when it can): a finite number in
    EXPAND_RANGE. One rule for the API, every command's --expand and model metadata."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{value!r} is not a finite number"
    lo, hi = EXPAND_RANGE
    return None if lo <= value <= hi else f"{value:g} is outside {lo:g}-{hi:g}"


def meta_problem(meta: object) -> str | None:
    """Why a model's metadata cannot feed it (None when it can): the crop facts every
    runner reads must be there with usable values."""
    if not isinstance(meta, dict):
        return "its metadata is not a JSON object"
    size = meta.get("img_size")
    lo, hi = IMG_SIZE_RANGE
    if isinstance(size, bool) or not isinstance(size, int) or not lo <= size <= hi:
        return f"metadata img_size {size!r} is not a whole number of pixels in {lo}-{hi}"
    if meta.get("expand") is None:
        return None  # older checkpoints: the commands ask for --expand
    why = expand_problem(meta["expand"])
    return None if why is None else f"metadata expand {why}"


RESUME_KEYS = ("arch", "head", "loss", "img_size", "expand", "age_min", "age_max", "dataset")


def resume_mismatch(run: dict, now: dict) -> str | None:
    """The first fact a resumed run must keep that differs between the run's metadata and
    this command's (`key=run's value, this command's`), or None. A run from before
    datasets were recorded is not held to them."""
    for k in RESUME_KEYS:
        if k == "dataset" and "dataset" not in run:
            continue
        if run.get(k) != now.get(k):
            return f"{k}={run.get(k)!r}, this command {now.get(k)!r}"
    return None


def file_hash(path: str | Path) -> str:
    """Short sha256 of a file: the identity reports quote."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
