"""Export a checkpoint to ONNX (metadata embedded, dynamic batch) or TorchScript."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from ..model.checkpoint import model_from_checkpoint
from ..model.heads import Predictor
from .runners import ONNX_META_KEY

DEFAULT_OPSET = 17


def _onnx_model(model, meta: dict, opset: int) -> onnx.ModelProto:
    pred = Predictor(model).eval()
    size = meta["img_size"]
    names = pred.output_names()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(pred, torch.zeros(1, 3, size, size), buf, input_names=["input"], output_names=names,
                          dynamic_axes={"input": {0: "batch"}, **{n: {0: "batch"} for n in names}},
                          opset_version=opset, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    meta_out = {k: v for k, v in meta.items() if k != "metrics"}
    meta_out["outputs"] = names
    helper.set_model_props(proto, {ONNX_META_KEY: json.dumps(meta_out)})
    return proto


def fp16_storage(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Store float32 weights as float16, cast back to float32 at load: half the file,
    the same fp32 arithmetic (fp16 kernels are slow or missing on CPU)."""
    graph = proto.graph
    casts, keep = [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.dims and int(np.prod(init.dims)) > 16:
            arr = numpy_helper.to_array(init).astype(np.float16)
            half = numpy_helper.from_array(arr, init.name + "_fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return proto


def onnx_bytes_for_checkpoint(checkpoint: str | Path, opset: int = DEFAULT_OPSET, fp16: bool = False) -> bytes:
    model, meta = model_from_checkpoint(checkpoint)
    proto = _onnx_model(model, meta, opset)
    if fp16:
        proto = fp16_storage(proto)
    return proto.SerializeToString()


def write_atomic(data: bytes, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_torchscript(checkpoint: str | Path, out: str | Path) -> None:
    model, meta = model_from_checkpoint(checkpoint)
    pred = Predictor(model).eval()
    size = meta["img_size"]
    with torch.no_grad():
        traced = torch.jit.trace(pred, torch.zeros(1, 3, size, size))
    buf = io.BytesIO()
    torch.jit.save(traced, buf, _extra_files={"agecli_meta.json": json.dumps({k: v for k, v in meta.items() if k != "metrics"})})
    write_atomic(buf.getvalue(), out)
