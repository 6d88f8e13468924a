"""Export a checkpoint to ONNX (metadata embedded, dynamic batch) or TorchScript."""
from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import check_writable_file, write_bytes
from ..errors import AgecliError
from ..model.checkpoint import model_from_checkpoint
from ..model.heads import Predictor
from ..model.meta import file_hash
from .onnx_build import DEFAULT_OPSET, onnx_bytes_for_checkpoint
from .quantize import METHODS, Change, QuantSettings, quantize_age_model
from .batches import normalise
from .runners import OnnxRunner
from .torch_runner import predict_torch

logger = logging.getLogger(__name__)

def torchscript_bytes(checkpoint: str | Path) -> bytes:
    """The traced Predictor (dynamic batch), metadata in the extra file `agecli_meta.json`."""
    model, meta = model_from_checkpoint(checkpoint)
    pred = Predictor(model).eval()
    size = meta["img_size"]
    with torch.no_grad():
        traced = torch.jit.trace(pred, torch.zeros(2, 3, size, size))
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={"agecli_meta.json": json.dumps({k: v for k, v in meta.items() if k != "metrics"})})
    return buf.getvalue()


FORMATS = ("onnx", "torchscript")
TOLERANCE_FP32, TOLERANCE_FP16 = 0.05, 0.5  # years of predicted age, exported vs torch
# int8 is judged by the mean |age change| against the float export on the --images faces:
# the same half year fp16 may move any one face. A well-quantized model moves it ~0.3 (the
# card's int8 table); the dynamic quantization this replaced moved it 2.2.
TOLERANCE_INT8 = 0.5
CALIBRATION_FACES = 512  # crops that calibrate the activation ranges
INT8_CHECK_FACES = 256  # faces of --images the int8 change is measured on


class ExportError(AgecliError):
    """Options that cannot be exported (exit code 2)."""


@dataclass
class ExportResult:
    """What `export` wrote and how close the exported model is to the torch one."""

    path: Path
    written: bool
    size_bytes: int
    crops: int
    crops_from: str  # where the verification crops came from
    max_diff: float
    tolerance: float
    int8: Change | None = None  # int8 vs the float export, on the same crops
    int8_tolerance: float = TOLERANCE_INT8  # the largest accepted mean |age change|
    calibrated_on: str = ""

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.tolerance

    @property
    def int8_passed(self) -> bool:
        return self.int8 is None or self.int8.mean <= self.int8_tolerance


def default_output(checkpoint: Path, fmt: str, fp16: bool, int8: bool) -> Path:
    """best.pth -> best.onnx, best.fp16.onnx, best.int8.onnx or best.pt (a checkpoint
    already named .pt gives best.torchscript.pt: the default never names the input)."""
    if fmt == "torchscript":
        return checkpoint.with_suffix(".torchscript.pt" if checkpoint.suffix == ".pt" else ".pt")
    return checkpoint.with_suffix(".fp16.onnx" if fp16 else ".int8.onnx" if int8 else ".onnx")


def verification_crops(meta: dict, images: Path | None, limit: int = 32) -> tuple[np.ndarray, str, bool]:
    """Aligned crops of up to `limit` faces found in the photos under `images`; random
    pixels when no folder is given or it has no face. Returns (crops, description, real)."""
    size, expand = int(meta["img_size"]), float(meta["expand"])
    if images is not None:
        from ..face.detector import FaceDetector
        from .pipeline import face_crops
        from .sources import walk_images

        crops = face_crops(walk_images(images), FaceDetector(), size, expand, limit, meta.get("template"))
        if len(crops):
            return crops, f"{len(crops)} face crops from {images}", True
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8), "8 random inputs", False


def calibration_crops(meta: dict, sources: Sequence[Path], limit: int = CALIBRATION_FACES,
                      seed: int = 0) -> tuple[np.ndarray, str]:
    """Up to `limit` aligned crops that calibrate int8 activation ranges, shared evenly
    between `sources`: a prepared set's folder gives crops of its TRAIN split (never the
    test split a model is judged on), sampled at random; any other folder gives the faces
    found in its photos. Returns (crops, description)."""
    from ..data.dataset import AlignedFaces
    from ..data.records import csv_name, resolve_image_root

    size, expand = int(meta["img_size"]), float(meta["expand"])
    rng = np.random.default_rng(seed)
    parts, said = [], []
    for i, src in enumerate(sources):
        src = Path(src)
        share = (limit - sum(len(p) for p in parts)) // (len(sources) - i)
        if not src.is_dir():
            raise ExportError(f"`calibrate` {src}: not a folder", setting="calibrate")
        trains = sorted(src.glob("*_train_align.csv"))
        if trains:
            dataset = trains[0].name[: -len("_train_align.csv")]
            faces = AlignedFaces.load(src / csv_name(dataset, "train"), resolve_image_root(src, dataset), size, expand,
                                      src / ".agecli_cache", template=meta.get("template"))
            pick = np.sort(rng.choice(len(faces), min(share, len(faces)), replace=False))
            parts.append(np.asarray(faces.images[pick]))
            said.append(f"{len(pick)} of {src}'s {len(faces)} train crops")
        else:
            crops, _, real = verification_crops(meta, src, share)
            if not real:
                raise ExportError(f"`calibrate` {src}: no prepared train split (*_train_align.csv) and no face "
                                  "found in its photos", setting="calibrate")
            parts.append(crops)
            said.append(f"{len(crops)} faces found in {src}")
    crops = np.concatenate(parts) if parts else np.zeros((0, size, size, 3), np.uint8)
    return crops[rng.permutation(len(crops))], ", ".join(said)


def exported_ages(fmt: str, data: bytes, crops: np.ndarray, meta: dict) -> np.ndarray:
    """Ages the exported model (bytes) predicts for the crops."""
    if fmt == "onnx":
        return OnnxRunner(data).predict(crops)["age"]
    module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    with torch.no_grad():
        out = module(torch.from_numpy(normalise(crops, meta["mean"], meta["std"])))
    return out[0].float().numpy()


def export_checked(checkpoint: str | Path, fmt: str = "onnx", output: str | Path | None = None,
                   opset: int = DEFAULT_OPSET, fp16: bool = False, int8: bool = False,
                   images: Path | None = None, calibrate: Sequence[Path] = (),
                   quant: QuantSettings = QuantSettings(), int8_tolerance: float = TOLERANCE_INT8,
                   force: bool = False, calibration_faces: int = CALIBRATION_FACES) -> ExportResult:
    """Export, compare the exported model with torch on the same crops, and write the
    file atomically only when it agrees within tolerance (0.05 years fp32, 0.5 fp16).

    int8: the float32 export, statically quantized (QDQ, per-channel int8 weights,
    activation ranges calibrated on the `calibrate` crops), is compared with the float
    export on up to INT8_CHECK_FACES faces of `images`; it is written only when their mean
    |age change| is within `int8_tolerance` (or `force`)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():  # before the output's folder is made: a refusal creates nothing
        raise ExportError(f"`checkpoint` {checkpoint}: no such checkpoint file", setting="checkpoint")
    if fmt not in FORMATS:
        raise ExportError(f"`fmt` must be onnx or torchscript, not {fmt!r}", setting="fmt")
    if checkpoint.suffix.lower() == ".onnx":
        raise ExportError(f"{checkpoint}: already an ONNX model; export takes a .pth checkpoint")
    if fmt == "torchscript" and (fp16 or int8):
        raise ExportError("`fp16` and `int8` apply to ONNX exports only", setting="fp16" if fp16 else "int8")
    if fp16 and int8:
        raise ExportError("choose one of `fp16` and `int8`", setting="int8")
    if not 11 <= opset <= 20:
        raise ExportError("`opset` must be between 11 and 20", setting="opset")
    if calibrate and not int8:
        raise ExportError("`calibrate` applies to `int8` exports only", setting="calibrate")
    if int8 and not calibrate:
        raise ExportError("`int8` needs `calibrate` folders: a prepared set (its train split calibrates the int8 "
                          "activation ranges) or a folder of photos other than `images`", setting="calibrate")
    if int8 and quant.method not in METHODS:
        raise ExportError(f"calibration method must be one of {', '.join(METHODS)}, not {quant.method!r}",
                          setting="quant")
    if int8 and not (math.isfinite(int8_tolerance) and int8_tolerance >= 0):
        raise ExportError("`int8_tolerance` must be a number of years, 0 or more", setting="int8_tolerance")
    if int8 and images is not None and any(Path(c).resolve() == Path(images).resolve() for c in calibrate):
        raise ExportError("`calibrate` and `images` are the same folder: the int8 change would be measured on the "
                          "faces it was calibrated on; check on other photos", setting="images")
    out = check_writable_file(Path(output) if output else default_output(checkpoint, fmt, fp16, int8), "`output`")
    if out.resolve() == checkpoint.resolve() or (out.exists() and checkpoint.exists() and out.samefile(checkpoint)):
        raise ExportError(f"`output` {out} is the checkpoint being exported: writing it would destroy the "
                          "checkpoint; choose another `output`", setting="output")
    model, meta = model_from_checkpoint(checkpoint)
    crops, crops_from, real = verification_crops(meta, images, INT8_CHECK_FACES if int8 else 32)
    if int8 and not real:
        why = f"no face found in {images}" if images is not None else "no `images` given"
        raise ExportError(f"`int8`: {why}; the age change of quantization is measured on real faces, "
                          "so pass `images`, a folder of photos of faces", setting="images")
    if not real:
        why = f"no face found in {images}" if images is not None else "no `images` given"
        logger.warning("%s: verifying on random inputs, not faces (pass `images`, a folder of photos, to check "
                       "on real faces)", why)
    reference = predict_torch(model, crops, meta)["age"]
    data = onnx_bytes_for_checkpoint(checkpoint, opset, fp16) if fmt == "onnx" else torchscript_bytes(checkpoint)
    ages = exported_ages(fmt, data, crops, meta)
    res = ExportResult(out, False, len(data), len(crops), crops_from, float(np.abs(ages - reference).max()),
                       TOLERANCE_FP16 if fp16 else TOLERANCE_FP32)
    if not res.passed:
        return res
    if int8:
        cal, res.calibrated_on = calibration_crops(meta, calibrate, calibration_faces)
        data = quantize_age_model(data, cal, quant, source=file_hash(checkpoint), calibrated_on=res.calibrated_on)
        res.int8 = Change.of(OnnxRunner(data).predict(crops)["age"], ages)
        res.int8_tolerance, res.size_bytes = int8_tolerance, len(data)
        if not res.int8_passed and not force:
            return res
    write_bytes(out, data)
    res.written = True
    return res
