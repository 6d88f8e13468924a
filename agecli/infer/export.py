"""Export a checkpoint to ONNX (metadata embedded, dynamic batch) or TorchScript."""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper

from ..atomic import check_writable_file, write_bytes
from ..errors import AgecliError
from ..model.checkpoint import model_from_checkpoint
from ..model.heads import Predictor
from .onnx_build import DEFAULT_OPSET, onnx_bytes_for_checkpoint
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


def export_torchscript(checkpoint: str | Path, out: str | Path) -> None:
    write_bytes(out, torchscript_bytes(checkpoint))


def quantize_int8(onnx_bytes: bytes) -> bytes:
    """Dynamic int8 quantization (weights int8, activations quantized at run time) by
    ONNX Runtime; the agecli metadata is carried over."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = onnx.load_from_string(onnx_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        fp32.write_bytes(onnx_bytes)
        logging.disable(logging.WARNING)  # its advice to pre-process is noise on stderr here
        try:
            quantize_dynamic(fp32, int8, weight_type=QuantType.QUInt8)
        finally:
            logging.disable(logging.NOTSET)
        proto = onnx.load(int8)
    helper.set_model_props(proto, {p.key: p.value for p in src.metadata_props})
    return proto.SerializeToString()


FORMATS = ("onnx", "torchscript")
TOLERANCE_FP32, TOLERANCE_FP16 = 0.05, 0.5  # years of predicted age, exported vs torch


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
    int8_max_change: float | None = None
    int8_mean_change: float | None = None

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.tolerance

    @property
    def int8_noticeable(self) -> bool:
        """int8 moves ages on average by more than the fp16 tolerance."""
        return self.int8_mean_change is not None and self.int8_mean_change > TOLERANCE_FP16


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

        crops = face_crops(walk_images(images), FaceDetector(), size, expand, limit)
        if len(crops):
            return crops, f"{len(crops)} face crops from {images}", True
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8), "8 random inputs", False


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
                   images: Path | None = None) -> ExportResult:
    """Export, compare the exported model with torch on the same crops, and write the
    file atomically only when it agrees within tolerance (0.05 years fp32, 0.5 fp16).
    With int8 the quantized model is written and its age change vs fp32 reported."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():  # before the output's folder is made: a refusal creates nothing
        raise ExportError(f"--resume {checkpoint}: no such checkpoint file")
    if fmt not in FORMATS:
        raise ExportError(f"--format must be onnx or torchscript, not {fmt!r}")
    if checkpoint.suffix.lower() == ".onnx":
        raise ExportError(f"{checkpoint}: already an ONNX model; export takes a .pth checkpoint")
    if fmt == "torchscript" and (fp16 or int8):
        raise ExportError("--fp16 and --int8 apply to ONNX exports only")
    if fp16 and int8:
        raise ExportError("choose one of --fp16 and --int8")
    if not 11 <= opset <= 20:
        raise ExportError("--opset must be between 11 and 20")
    out = check_writable_file(Path(output) if output else default_output(checkpoint, fmt, fp16, int8), "--output")
    if out.resolve() == checkpoint.resolve() or (out.exists() and checkpoint.exists() and out.samefile(checkpoint)):
        raise ExportError(f"--output {out} is the checkpoint being exported: writing it would destroy the "
                          "checkpoint; choose another --output")
    model, meta = model_from_checkpoint(checkpoint)
    crops, crops_from, real = verification_crops(meta, images)
    if int8 and not real:
        why = f"no face found in {images}" if images is not None else "no --images given"
        raise ExportError(f"--int8: {why}; the age change of quantization is measured on real faces, "
                          "so pass --images DIR with photos of faces")
    if not real:
        why = f"no face found in {images}" if images is not None else "no --images given"
        logger.warning("%s: verifying on random inputs, not faces (pass --images DIR of photos to check on "
                       "real faces)", why)
    reference = predict_torch(model, crops, meta)["age"]
    data = onnx_bytes_for_checkpoint(checkpoint, opset, fp16) if fmt == "onnx" else torchscript_bytes(checkpoint)
    ages = exported_ages(fmt, data, crops, meta)
    res = ExportResult(out, False, len(data), len(crops), crops_from, float(np.abs(ages - reference).max()),
                       TOLERANCE_FP16 if fp16 else TOLERANCE_FP32)
    if not res.passed:
        return res
    if int8:
        data = quantize_int8(data)
        change = np.abs(OnnxRunner(data).predict(crops)["age"] - ages)
        res.int8_max_change, res.int8_mean_change = float(change.max()), float(change.mean())
        res.size_bytes = len(data)
    write_bytes(out, data)
    res.written = True
    return res
