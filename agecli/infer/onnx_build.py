"""Building the ONNX graph of a checkpoint: uint8 RGB NHWC crops in, normalisation
inside the graph, dynamic batch, agecli metadata embedded (the contract is in
`onnx_meta`). Used by `export` and by `open_runner` to run a .pth on ONNX Runtime.
Needs torch and onnx (the `train` extra)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from ..model.checkpoint import model_from_checkpoint
from ..model.heads import Predictor
from .onnx_meta import INPUT_NAME, ONNX_META_KEY

DEFAULT_OPSET = 17


class CropInput(torch.nn.Module):
    """uint8 (N, S, S, 3) RGB crops -> the model's outputs: the layout change and the
    normalisation (x/255 - mean) / std are part of the graph, so an ONNX Runtime user in
    any language feeds the aligned crop's bytes as they are."""

    def __init__(self, predictor: Predictor, mean, std) -> None:
        super().__init__()
        self.predictor = predictor
        m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * s))
        self.register_buffer("shift", -m / s)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = crops.permute(0, 3, 1, 2).float() * self.scale + self.shift
        return self.predictor(x)


def onnx_model(model, meta: dict, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """The graph of `model` with the uint8 crop input and its metadata."""
    pred = Predictor(model).eval()
    wrapped = CropInput(pred, meta["mean"], meta["std"]).eval()
    size = meta["img_size"]
    names = pred.output_names()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(wrapped, torch.zeros(1, size, size, 3, dtype=torch.uint8), buf, input_names=[INPUT_NAME],
                          output_names=names,
                          dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}},
                          opset_version=opset, dynamo=False)
    proto = onnx.load_from_string(buf.getvalue())
    meta_out = {k: v for k, v in meta.items() if k != "metrics"}
    meta_out.update(outputs=names, input=INPUT_NAME, input_format="uint8 RGB NHWC, normalised inside the graph")
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
    """The serialised ONNX model of a checkpoint (fp16 weight storage when asked)."""
    model, meta = model_from_checkpoint(checkpoint)
    proto = onnx_model(model, meta, opset)
    if fp16:
        proto = fp16_storage(proto)
    return proto.SerializeToString()
