"""Static int8 quantization of agecli's two networks (the age model and the RetinaFace
detector) with ONNX Runtime's own tooling: QDQ format, int8 per-channel weights, uint8
activations whose ranges are calibrated on real faces (`quantize_static` with a
`CalibrationDataReader` over arrays of crops or photos).

Dynamic quantization (what `export --int8` did before) quantizes only the weights of
matrix products and leaves convolutions in float: for a convolutional network it moved
ages by 2.2 years on average and bought little speed. Static QDQ quantizes the
convolutions and their activations; what stays float is what int8 would spoil:

- the age model's input normalisation (uint8 crops -> float, a Mul and an Add), its
  stem and first block (`FLOAT_AGE_NODES`), and its read-out (softmax over 101 ages,
  the flip mixing, the expectation and the std): a probability stored in 1/255 steps
  moves an expectation over 0..100 by years;
- the last fully connected layers (a few thousand multiply-adds a face: nothing to gain);
- in the detector, its first two convolutions and its heads (`detector_nodes`).

Needs onnx and onnxruntime (the `train` extra brings onnx). Imports no torch.
"""
from __future__ import annotations

import functools
import json
import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from ..errors import DataError, OptionError

logger = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile")
# ops whose int8 kernels are where the time goes; everything else is left in float
BACKBONE_OPS = ("Conv", "Add", "Clip", "Relu", "LeakyRelu", "Concat", "Resize", "Transpose", "Reshape",
                "GlobalAveragePool", "MaxPool")


@dataclass(frozen=True)
class QuantSettings:
    """How to quantize: the calibration method and the knobs the field turns when a
    quantized model misses its answers (see the model card's int8 table)."""

    method: str = "minmax"  # minmax, entropy or percentile
    per_channel: bool = True  # one scale per output channel of each weight
    reduce_range: bool = False  # 7-bit weights (for CPUs without VNNI, whose u8s8 maths can saturate)
    symmetric_activations: bool = False
    fmt: str = "qdq"  # qdq (QuantizeLinear/DequantizeLinear pairs, fused by ORT) or qoperator (QLinearConv ...)
    percentile: float = 99.999
    exclude: tuple[str, ...] = ()  # node names left in float besides the defaults


class ArrayReader:
    """A CalibrationDataReader over arrays: one `{input: batch}` feed per batch."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self.input_name = input_name
        self._it = iter(list(batches))

    def get_next(self):
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:  # some ORT versions call it
        pass


def crop_batches(crops: np.ndarray, batch: int = 32) -> list[np.ndarray]:
    return [np.ascontiguousarray(crops[i:i + batch]) for i in range(0, len(crops), batch)]


FLOAT_AGE_NODES = ("/_conv_stem/", "/_blocks/_blocks.0/")  # the first layers, which see the pixels


def age_model_nodes(proto: onnx.ModelProto) -> list[str]:
    """The age graph's nodes worth int8: the backbone's convolutions, their activations and
    residual adds, but not its stem and first block (FLOAT_AGE_NODES), which see the
    pixels: on the faces of the group photos (small, blurry once enlarged to the crop)
    int8 there moved ages by 1.0 year on average, 5.4 at the 99th percentile; with the
    stem and block 0 float 0.53 and 2.7, at nearly the same speed (blocks 0-3 float:
    0.33 and 1.7, but the high-resolution blocks hold most of the work). Left out too:
    the input normalisation, the flip (Slice/Concat of the crops), the heads' Gemms and
    the read-out (softmax, flip mixing, expectation, std). Figures: the model card's
    int8 section (bench/bench_int8.py)."""
    return [n.name for n in proto.graph.node
            if "/backbone/" in n.name and n.op_type in BACKBONE_OPS
            and not any(f in n.name for f in FLOAT_AGE_NODES) and not n.name.endswith("/backbone/act/Clip")]


def calibrate(fp32: bytes, batches: Sequence[np.ndarray], settings: QuantSettings = QuantSettings(), chunk: int = 2):
    """Activation ranges of `fp32` over `batches` by ONNX Runtime's calibrator for
    `settings.method` (a TensorsData). Fed `chunk` batches at a time: the histogram
    calibrators keep every intermediate tensor of what they are fed until they fold it
    into their histograms, which for 512 crops of the age model is ~20 GB at once.

    Called directly rather than through quantize_static, which passes no histogram size
    to the entropy calibrator: at its default of 128 bins for 128 quantized bins there is
    one candidate threshold, the whole range, and "entropy" is min-max again."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    if settings.method not in METHODS:
        raise OptionError(f"calibration method must be one of {', '.join(METHODS)}, not {settings.method!r}",
                          setting="method")
    if not len(batches):
        raise DataError("no calibration data")
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[settings.method]
    options = {"symmetric": settings.symmetric_activations}
    if settings.method == "entropy":
        options.update(num_bins=512, num_quantized_bins=128)  # its KL search is quadratic in bins: 2048 took 6 min
    elif settings.method == "percentile":
        options.update(num_bins=2048, percentile=settings.percentile)
    fp32 = with_opset(fp32)
    name = onnx.load_from_string(fp32).graph.input[0].name
    with tempfile.TemporaryDirectory() as tmp:
        fp = Path(tmp) / "fp32.onnx"
        fp.write_bytes(fp32)
        calibrator = create_calibrator(fp, None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=method, extra_options=options)

        def run(cal):
            for k in range(0, len(batches), chunk):
                cal.collect_data(ArrayReader(name, batches[k:k + chunk]))
            return cal.compute_data()
        ranges = _quietly(functools.partial(run, calibrator))
        del calibrator  # its session holds the augmented model in the folder about to go
    return ranges


def with_opset(data: bytes, opset: int = 13) -> bytes:
    """`data` converted to at least `opset` (onnx's version converter): per-channel
    QuantizeLinear/DequantizeLinear need opset 13, and RetinaFace's file is opset 11
    (its outputs unchanged by the conversion: bench/bench_int8.py checks the faces)."""
    from onnx import version_converter

    proto = onnx.load_from_string(data)
    current = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=opset)
    if current >= opset:
        return data
    return version_converter.convert_version(proto, opset).SerializeToString()


def detector_nodes(proto: onnx.ModelProto, heads: bool = False) -> list[str]:
    """The RetinaFace graph's nodes worth int8: the MobileNet body, the FPN and the SSH
    context modules (convolutions, activations, adds, upsampling, concatenations), but
    not the first convolution and the first depthwise one (3 -> 8 and 8 channels at half
    the photo's resolution): ORT's int8 kernels take twice the time of its fused float
    ones there (profiled: 31 and 36 ms against 15 and 18 on a 1280 x 850 photo). The
    heads' 1x1 convolutions (scores, box and landmark offsets) stay float unless `heads`:
    box offsets carry the box to a fraction of a pixel, and they cost little."""
    body = ("/fx/", "/fpn/", "/ssh")
    first = ("/fx/stage1/stage1.0/", "/fx/stage1/stage1.1/stage1.1.0/")
    head = ("/class_head/", "/bbox_head/", "/landmark_head/")
    ops = ("Conv", "LeakyRelu", "Relu", "Add", "Concat", "Resize")
    return [n.name for n in proto.graph.node if n.op_type in ops and not n.name.startswith(first)
            and (n.name.startswith(body) or (heads and n.name.startswith(head) and n.op_type == "Conv"))]


def _quietly(fn):
    """ORT's quantizer logs advice (pre-process the model, ...) at WARNING and prints
    its histogram sizes: noise on stderr and stdout here."""
    import contextlib
    import io

    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return fn()
    finally:
        logging.disable(logging.NOTSET)


def quantize_static_bytes(fp32: bytes, batches: Sequence[np.ndarray] | None, settings: QuantSettings = QuantSettings(),
                          nodes: Sequence[str] | None = None, ranges=None) -> bytes:
    """`fp32` (a float32 ONNX model) statically quantized by ONNX Runtime's
    `quantize_static`, activation ranges calibrated on `batches` (arrays fed to its first
    input; or `ranges` from `calibrate`, reused), only `nodes` quantized (None: every node
    ORT can quantize), minus `settings.exclude`. The model's metadata is carried over."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    fp32 = with_opset(fp32)  # per-channel QDQ needs opset 13
    if ranges is None:
        ranges = calibrate(fp32, batches or [], settings)
    src = onnx.load_from_string(fp32)
    node_list = [n for n in nodes if n not in settings.exclude] if nodes is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        fp, q, cache = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx", Path(tmp) / "ranges.json"
        fp.write_bytes(fp32)
        save_tensors_data(ranges, cache)
        _quietly(lambda: quantize_static(
            str(fp), str(q), None,
            quant_format=QuantFormat.QDQ if settings.fmt == "qdq" else QuantFormat.QOperator,
            per_channel=settings.per_channel, reduce_range=settings.reduce_range,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_quantize=node_list, nodes_to_exclude=list(settings.exclude) or None,
            calibrate_method=ranges.calibration_method, calibration_cache_path=str(cache),
            extra_options={"ActivationSymmetric": settings.symmetric_activations}))
        proto = onnx.load(str(q))
    helper.set_model_props(proto, {p.key: p.value for p in src.metadata_props})
    return proto.SerializeToString()


@dataclass
class Change:
    """How far one model's answers moved from another's (absolute differences)."""

    n: int
    mean: float
    p99: float
    max: float

    @classmethod
    def of(cls, a: np.ndarray, b: np.ndarray) -> "Change":
        d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        if not d.size:
            return cls(0, 0.0, 0.0, 0.0)
        return cls(int(d.size), float(d.mean()), float(np.percentile(d, 99)), float(d.max()))


def quantize_age_model(fp32: bytes, crops: np.ndarray, settings: QuantSettings = QuantSettings(),
                       source: str = "", calibrated_on: str = "") -> bytes:
    """An exported float32 age model (uint8 crops in) quantized to int8 on the backbone,
    calibrated on `crops` (aligned uint8 RGB crops, as the model takes them). Its agecli
    metadata gains `int8`: the method, the settings, the calibration faces and the sha256
    the checkpoint's `file_hash` (`source`), so a stale quantized file can be told from
    a current one."""
    from .onnx_meta import ONNX_META_KEY

    proto = onnx.load_from_string(fp32)
    data = quantize_static_bytes(fp32, crop_batches(crops), settings, age_model_nodes(proto))
    record = {**int8_record(settings, len(crops), calibrated_on), "source_hash": source}
    return with_int8_meta(data, ONNX_META_KEY, record)


def int8_record(settings: QuantSettings, faces: int, calibrated_on: str) -> dict:
    return {"format": settings.fmt, "method": settings.method, "per_channel": settings.per_channel,
            "reduce_range": settings.reduce_range, "symmetric_activations": settings.symmetric_activations,
            "calibration_faces": faces, "calibrated_on": calibrated_on}


def with_int8_meta(data: bytes, key: str, record: dict) -> bytes:
    """`data` with `record` under `int8` in the JSON metadata at `key` (created if absent)."""
    proto = onnx.load_from_string(data)
    props = {p.key: p.value for p in proto.metadata_props}
    meta = json.loads(props.get(key, "{}"))
    meta["int8"] = record
    props[key] = json.dumps(meta)
    del proto.metadata_props[:]
    helper.set_model_props(proto, props)
    return proto.SerializeToString()
