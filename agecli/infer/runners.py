"""Age model runners: one interface (`predict(crops) -> dict of arrays`) over torch
(CPU, CUDA) and ONNX Runtime. Inputs are aligned uint8 RGB crops (N, S, S, 3) from
`crop_face`; outputs are `age`, `std`, and where the model has them `probs`,
`gender_probs`, `race_probs`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..model.checkpoint import CheckpointError, model_from_checkpoint

ONNX_META_KEY = "agecli_meta"


def normalise(crops: np.ndarray, mean, std) -> np.ndarray:
    """uint8 (N,S,S,3) RGB -> float32 (N,3,S,S), the model's normalisation."""
    x = crops.astype(np.float32).transpose(0, 3, 1, 2)
    x *= 1.0 / 255
    x -= np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    x /= np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray(x)


@torch.inference_mode()
def predict_torch(model: torch.nn.Module, crops: np.ndarray, meta: dict, batch_size: int = 64,
                  device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Run an AgeNet over crops in batches; float16 autocast on CUDA."""
    model.eval()
    outs: dict[str, list[np.ndarray]] = {}
    dev = torch.device(device)
    for i in range(0, len(crops), batch_size):
        x = torch.from_numpy(normalise(crops[i:i + batch_size], meta["mean"], meta["std"])).to(dev)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
            res = model.predict(x)
        for k, v in res.items():
            outs.setdefault(k, []).append(v.float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}


class TorchRunner:
    """An agecli checkpoint run by torch, on CPU or CUDA."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", batch_size: int = 64) -> None:
        self.model, self.meta = model_from_checkpoint(checkpoint)
        self.device = device
        self.model.to(device).to(memory_format=torch.channels_last)
        self.batch_size = batch_size

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        return predict_torch(self.model, crops, self.meta, self.batch_size, self.device)


class OnnxRunner:
    """An exported .onnx age model run by ONNX Runtime; its metadata says how to feed it."""

    def __init__(self, path: str | Path | bytes, device: str = "cpu", batch_size: int = 64, threads: int = 0) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            source = path if isinstance(path, bytes) else str(path)
            self.session = ort.InferenceSession(source, opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            name = "model" if isinstance(path, bytes) else path
            raise CheckpointError(f"{name}: not a loadable ONNX model ({str(e).splitlines()[0][:200]})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if ONNX_META_KEY not in props:
            raise CheckpointError(f"{path}: ONNX model without agecli metadata; export it with `agecli export`")
        self.meta = json.loads(props[ONNX_META_KEY])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_type = self.session.get_inputs()[0].type
        self.batch_size = batch_size

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        outs: dict[str, list[np.ndarray]] = {}
        for i in range(0, len(crops), self.batch_size):
            x = normalise(crops[i:i + self.batch_size], self.meta["mean"], self.meta["std"])
            if self.input_type == "tensor(float16)":
                x = x.astype(np.float16)
            for name, v in zip(self.output_names, self.session.run(self.output_names, {self.input_name: x})):
                outs.setdefault(name, []).append(np.asarray(v, dtype=np.float32))
        return {k: np.concatenate(v) for k, v in outs.items()}


def open_runner(model_path: str | Path, runner: str = "auto", device: str = "cpu", batch_size: int = 64,
                threads: int = 0):
    """A runner for a checkpoint (.pth) or an exported model (.onnx).

    auto: ONNX Runtime on CPU, torch on CUDA. A .pth asked to run on ONNX Runtime is
    exported in memory first. `threads` caps ONNX Runtime's threads (0: one per core)."""
    path = Path(model_path)
    if runner not in ("auto", "torch", "onnx"):
        raise ValueError(f"--runner must be auto, torch or onnx, not {runner!r}")
    if path.suffix.lower() == ".onnx":
        if runner == "torch":
            raise ValueError(f"{path}: an .onnx model runs on ONNX Runtime; use --runner onnx or auto")
        return OnnxRunner(path, device, batch_size, threads)
    use_onnx = runner == "onnx" or (runner == "auto" and not device.startswith("cuda"))
    if use_onnx:
        from .export import onnx_bytes_for_checkpoint

        return OnnxRunner(onnx_bytes_for_checkpoint(path), device, batch_size, threads)
    return TorchRunner(path, device, batch_size)
