"""Age model runners: one interface (`predict(crops) -> dict of arrays`) over ONNX
Runtime and, for .pth checkpoints, torch. Inputs are aligned uint8 RGB crops (N, S, S, 3)
from `crop_face`; outputs are `age`, `std`, and where the model has them `probs`,
`gender_probs`, `race_probs` (zero crops give zero-length arrays under the same keys).

This module imports no torch: a .onnx model runs on the light install; a .pth needs the
`train` extra and says so.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, require_torch
from ..model.meta import meta_problem
from ..onnxrt import open_session
from .batches import batched, normalise
from .onnx_meta import INPUT_TYPE, ONNX_META_KEY

logger = logging.getLogger(__name__)
RUNNERS = ("auto", "torch", "onnx")


def onnx_providers(device: str = "cpu", providers: Sequence[str] | None = None) -> list[str]:
    """The providers to ask ONNX Runtime for: the given list, else CUDA first on a cuda
    device when this onnxruntime build has it, then CPU."""
    import onnxruntime as ort

    if providers:
        return list(providers)
    out = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        out.insert(0, "CUDAExecutionProvider")
    return out


class OnnxRunner:
    """An exported .onnx age model run by ONNX Runtime; its metadata says how to feed it."""

    def __init__(self, path: str | Path | bytes, device: str = "cpu", batch_size: int = 64, threads: int = 0,
                 providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        name = "model" if isinstance(path, bytes) else str(path)
        try:
            source = path if isinstance(path, bytes) else str(path)
            self.session = open_session(source, opts, onnx_providers(device, providers))
        except Exception as e:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{name}: not a loadable ONNX model ({str(e).splitlines()[0][:200]})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if ONNX_META_KEY not in props:
            raise CheckpointError(f"{name}: ONNX model without agecli metadata; export it with `agecli export`")
        self.meta = json.loads(props[ONNX_META_KEY])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_type = self.session.get_inputs()[0].type
        if self.input_type != INPUT_TYPE:
            logger.info("%s takes float input (an older export): normalising crops here", name)
        self.batch_size = batch_size

    def _predict_batch(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        if self.input_type == INPUT_TYPE:
            x = np.ascontiguousarray(crops, dtype=np.uint8)
        else:  # exported before the graph did its own normalisation
            x = normalise(crops, self.meta["mean"], self.meta["std"])
            if self.input_type == "tensor(float16)":
                x = x.astype(np.float16)
        outs = self.session.run(self.output_names, {self.input_name: x})
        return {n: np.asarray(v, dtype=np.float32) for n, v in zip(self.output_names, outs)}

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        return batched(self._predict_batch, crops, self.batch_size, int(self.meta["img_size"]))


def runner_kind(path: Path, runner: str = "auto", device: str = "cpu") -> str:
    """Which engine `open_runner` uses: 'onnx' for .onnx files, for --runner onnx and
    for a .pth on CPU under auto (exported in memory); 'torch' otherwise."""
    if Path(path).suffix.lower() == ".onnx" or runner == "onnx":
        return "onnx"
    if runner == "torch":
        return "torch"
    return "torch" if device.startswith("cuda") else "onnx"


def open_runner(model_path: str | Path, runner: str = "auto", device: str = "cpu", batch_size: int = 64,
                threads: int = 0, providers: Sequence[str] | None = None):
    """A runner for a checkpoint (.pth) or an exported model (.onnx).

    auto: ONNX Runtime on CPU, torch on CUDA. A .pth asked to run on ONNX Runtime is
    exported in memory first. A .pth needs torch (the `train` extra): NeedsTrainExtra
    says so when it is missing."""
    runner_obj = _open(Path(model_path), runner, device, batch_size, threads, providers)
    problem = meta_problem(runner_obj.meta)
    if problem:
        raise CheckpointError(f"{Path(model_path).name}: {problem}; not a usable agecli model")
    return runner_obj


def _open(path: Path, runner: str, device: str, batch_size: int, threads: int,
          providers: Sequence[str] | None):
    if runner not in RUNNERS:
        raise ValueError(f"--runner must be auto, torch or onnx, not {runner!r}")
    if path.suffix.lower() == ".onnx":
        if runner == "torch":
            raise ValueError(f"{path}: an .onnx model runs on ONNX Runtime; use --runner onnx or auto")
        return OnnxRunner(path, device, batch_size, threads, providers)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    require_torch(f"running a .pth checkpoint ({path.name})")
    if runner_kind(path, runner, device) == "onnx":
        from .onnx_build import onnx_bytes_for_checkpoint

        return OnnxRunner(onnx_bytes_for_checkpoint(path), device, batch_size, threads, providers)
    from .torch_runner import TorchRunner

    return TorchRunner(path, device, batch_size)
