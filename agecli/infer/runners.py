"""Age model runners: one interface (`Runner`: `meta`, `predict(crops) -> dict of
arrays`, `kind`, `device`) over ONNX Runtime and, for .pth checkpoints, torch. Inputs are
aligned uint8 RGB crops (N, S, S, 3) from `crop_face`; outputs are `age`, `std`, and
where the model has them `probs`, `gender_probs`, `race_probs` (zero crops give
zero-length arrays under the same keys).

`RUNNER_TABLE` maps each `--runner` name to the function that opens it: a new runner
is one module with a class that fits `Runner` and one line in that table. `read_meta`
reads a model file's metadata without opening a runner.

This module imports no torch: a .onnx model runs on the light install; a .pth needs the
`train` extra and says so.
"""
from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import CheckpointError, OptionError, UsageError, require_torch
from ..model.meta import ModelMeta
from ..onnxrt import open_session
from .batches import batched, normalise
from .onnx_meta import INPUT_TYPE, ONNX_META_KEY, read_props

logger = logging.getLogger(__name__)


class Runner(Protocol):
    """What the pipeline, the API and `val` need of an age model, whatever runs it."""

    meta: ModelMeta  # the model's own facts: input size, expand, heads, ...
    kind: str  # its name in RUNNER_TABLE ("onnx", "torch")
    batch_size: int

    @property
    def device(self) -> str:
        """Where it runs: cpu, cuda (or cuda:N)."""
        ...

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """Ages of aligned uint8 RGB crops (N, S, S, 3): `age`, `std` and the heads' arrays."""
        ...


def onnx_providers(device: str = "cpu", providers: Sequence[str] | None = None) -> list[str]:
    """The providers to ask ONNX Runtime for: the given list (each must be one this
    onnxruntime has, else UsageError naming those it has), else CUDA first on a cuda
    device when this onnxruntime build has it, then CPU."""
    import onnxruntime as ort

    if providers:
        available = ort.get_available_providers()
        unknown = [p for p in providers if p not in available]
        if unknown:
            raise UsageError(f"`providers`: {unknown[0]} is not an execution provider of this onnxruntime; "
                             f"it has {', '.join(available)}", setting="providers")
        return list(providers)
    out = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        out.insert(0, "CUDAExecutionProvider")
    return out


class OnnxRunner:
    """An exported .onnx age model run by ONNX Runtime; its metadata says how to feed it.
    `name` is what messages call the model (default: the file's name; "model" for bytes)."""

    kind = "onnx"

    def __init__(self, path: str | Path | bytes, device: str = "cpu", batch_size: int = 64, threads: int = 0,
                 providers: Sequence[str] | None = None, name: str | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        label = str(path) if not isinstance(path, bytes) else "model"
        chosen = onnx_providers(device, providers)  # an unknown provider is a usage error, not a model one
        try:
            source = path if isinstance(path, bytes) else str(path)
            self.session = open_session(source, opts, chosen)
        except Exception as e:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{label}: not a loadable ONNX model ({str(e).splitlines()[0][:200]})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if ONNX_META_KEY not in props:
            raise CheckpointError(f"{label}: ONNX model without agecli metadata; export it with `agecli export`")
        self.meta = ModelMeta.from_dict(_json_meta(props[ONNX_META_KEY], label),
                                        name or (Path(path).name if not isinstance(path, bytes) else "model"))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_type = self.session.get_inputs()[0].type
        if self.input_type != INPUT_TYPE:
            logger.info("%s takes float input (an older export): normalising crops here", name)
        self.batch_size = batch_size

    @property
    def device(self) -> str:
        providers = self.session.get_providers()
        return "cuda" if providers and providers[0] == "CUDAExecutionProvider" else "cpu"

    def _predict_batch(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        if self.input_type == INPUT_TYPE:
            x = np.ascontiguousarray(crops, dtype=np.uint8)
        else:  # exported before the graph did its own normalisation
            x = normalise(crops, self.meta.mean, self.meta.std)
            if self.input_type == "tensor(float16)":
                x = x.astype(np.float16)
        outs = self.session.run(self.output_names, {self.input_name: x})
        return {n: np.asarray(v, dtype=np.float32) for n, v in zip(self.output_names, outs)}

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        return batched(self._predict_batch, crops, self.batch_size, self.meta.img_size)


def _json_meta(text: str, label: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        raise CheckpointError(f"{label}: its agecli metadata is not JSON") from None


def _open_onnx(path: Path, device: str, batch_size: int, threads: int,
               providers: Sequence[str] | None) -> Runner:
    """ONNX Runtime: an .onnx file as it is, a .pth exported in memory first."""
    if path.suffix.lower() == ".onnx":
        return OnnxRunner(path, device, batch_size, threads, providers)
    _need_checkpoint(path)
    from .onnx_build import onnx_bytes_for_checkpoint

    return OnnxRunner(onnx_bytes_for_checkpoint(path), device, batch_size, threads, providers, name=path.name)


def _torch_file(path: Path) -> None:
    """What torch can run: a .pth checkpoint, with torch installed."""
    if path.suffix.lower() == ".onnx":
        raise UsageError(f"{path}: an .onnx model runs on ONNX Runtime; use `runner` onnx or auto", setting="runner")
    _need_checkpoint(path)


def _need_checkpoint(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    require_torch(f"running a .pth checkpoint ({path.name})")


Opener = Callable[[Path, str, int, int, "Sequence[str] | None"], Runner]


def lazy(module: str, name: str, check: Callable[[Path], None] | None = None) -> Opener:
    """The opener `name` of another module of infer/, imported only when its runner is
    asked for (the table imports nothing: torch stays off the light install); `check`
    looks at the model file first."""
    def opener(path: Path, device: str, batch_size: int, threads: int, providers: Sequence[str] | None) -> Runner:
        if check is not None:
            check(path)
        return getattr(importlib.import_module(module, __package__), name)(path, device, batch_size, threads, providers)

    return opener


# --runner NAME -> what opens a model file with it (path, device, batch_size, threads, providers)
RUNNER_TABLE: dict[str, Opener] = {"torch": lazy(".torch_runner", "open_torch", _torch_file), "onnx": _open_onnx}
RUNNERS = ("auto", *RUNNER_TABLE)  # the --runner choices


def runner_kind(path: Path, runner: str = "auto", device: str = "cpu") -> str:
    """Which RUNNER_TABLE entry `open_runner` uses: the runner asked for; under auto,
    'onnx' for .onnx files and for a .pth on CPU (exported in memory), 'torch' for a
    .pth on CUDA."""
    if runner != "auto":
        return runner
    if Path(path).suffix.lower() == ".onnx":
        return "onnx"
    return "torch" if device.startswith("cuda") else "onnx"


def open_runner(model_path: str | Path, runner: str = "auto", device: str = "cpu", batch_size: int = 64,
                threads: int = 0, providers: Sequence[str] | None = None) -> Runner:
    """A runner for a checkpoint (.pth) or an exported model (.onnx).

    auto: ONNX Runtime on CPU, torch on CUDA. A .pth asked to run on ONNX Runtime is
    exported in memory first. A .pth needs torch (the `train` extra): NeedsTrainExtra
    says so when it is missing. Metadata no runner could feed is a CheckpointError."""
    if runner not in RUNNERS:
        raise OptionError(f"`runner` must be {', '.join(RUNNERS[:-1])} or {RUNNERS[-1]}, not {runner!r}",
                          setting="runner")
    path = Path(model_path)
    return RUNNER_TABLE[runner_kind(path, runner, device)](path, device, batch_size, threads, providers)


def read_meta(model_path: str | Path) -> ModelMeta:
    """A model file's metadata without opening a runner: an .onnx file's metadata
    properties (no session), a .pth's checkpoint (needs torch). CheckpointError when the
    file is not a usable agecli model."""
    path = Path(model_path)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise CheckpointError(f"{path}: no such model file")
        try:
            props = read_props(path)
        except (ValueError, OSError) as e:
            raise CheckpointError(f"{path}: not a loadable ONNX model ({e})") from None
        if ONNX_META_KEY not in props:
            raise CheckpointError(f"{path}: ONNX model without agecli metadata; export it with `agecli export`")
        return ModelMeta.from_dict(_json_meta(props[ONNX_META_KEY], str(path)), path.name)
    _need_checkpoint(path)
    from ..model.checkpoint import load_checkpoint

    return ModelMeta.from_dict(load_checkpoint(path)["meta"], path.name)
