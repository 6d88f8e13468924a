"""Knowledge distillation: another model's answers as soft targets beside the labels.

`TRAIN.TEACHER model.onnx|.pth` runs that model once over the (unaugmented) train crops
before the first epoch; each face's target age distribution becomes
`(1 - w) * Gaussian label + w * teacher distribution` and its gender target
`(1 - w) * label + w * teacher probabilities`, w = TRAIN.TEACHER_WEIGHT. The student sees
augmented crops against the clean crop's answer, so it also learns to give the same age
to a degraded copy. A teacher that mixes each face with its mirror image (`flip_tta`)
teaches a one-pass student what it would answer from both, at one network's speed. The
L1 term on the expected age stays against the label. The answers are cached in the run
folder (`teacher.npz`, keyed by the teacher file's hash and the train crops' own hash), so a
resumed run reuses them and a changed, reordered or re-cropped train split asks again.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import write_bytes
from ..errors import AgecliError
from ..model.meta import file_hash


class TeacherError(AgecliError, ValueError):
    """The teacher cannot teach this student (no age distribution, other age bins)."""


def faces_hash(images: np.ndarray) -> str:
    """A hash of the train crops' pixels in order: the answers belong to these faces only."""
    return hashlib.blake2b(memoryview(np.ascontiguousarray(images)).cast("B"), digest_size=16).hexdigest()


def teacher_targets(path: Path, crops_for: Callable[[int, float, list | None], np.ndarray], faces: str, age_min: int,
                    age_max: int, cache: Path, log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """`probs` (N, age bins of the student) and, when the teacher has them, `gender_probs`
    (N, 2) for the train crops; `crops_for(size, expand, template)` gives them cut as the teacher wants,
    `faces` is `faces_hash` of the student's train crops."""
    from ..infer.runners import open_runner

    key = f"{file_hash(path)}:{faces}"
    if cache.is_file():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                return {k: z[k] for k in z.files if k != "key"}
    runner = open_runner(path)
    meta = runner.meta
    crops = crops_for(int(meta["img_size"]), float(meta["expand"]), meta.template)
    log(f"teacher {path.name}: answering for {len(crops)} train faces once")
    out = runner.predict(crops)
    if "probs" not in out:
        raise TeacherError(f"TRAIN.TEACHER {path}: the model gives no age distribution to learn from")
    lo, hi = int(meta.get("age_min", 0)), int(meta.get("age_max", out["probs"].shape[1] - 1))
    if out["probs"].shape[1] != hi - lo + 1 or lo < age_min or hi > age_max:
        raise TeacherError(f"TRAIN.TEACHER {path}: its ages {lo}-{hi} do not fit the student's "
                           f"{age_min}-{age_max}")
    probs = np.zeros((len(crops), age_max - age_min + 1), np.float32)
    probs[:, lo - age_min:hi - age_min + 1] = out["probs"]
    probs /= probs.sum(1, keepdims=True)
    res = {"probs": probs}
    if "gender_probs" in out:
        res["gender_probs"] = out["gender_probs"].astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), **res)
    write_bytes(cache, buf.getvalue())
    return res
