"""An agecli checkpoint run by torch (CPU or CUDA): what training validates with and
what `--runner torch` uses. Imported only where torch is installed (the `train` extra)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..model.checkpoint import model_from_checkpoint
from ..model.meta import ModelMeta
from .batches import batched, normalise


@torch.inference_mode()
def predict_torch(model: torch.nn.Module, crops: np.ndarray, meta: dict, batch_size: int = 64,
                  device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Run an AgeNet over crops in batches; float16 autocast on CUDA."""
    model.eval()
    dev = torch.device(device)

    def one(batch: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(normalise(batch, meta["mean"], meta["std"])).to(dev)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
            res = model.predict(x)
        return {k: v.float().cpu().numpy() for k, v in res.items()}

    return batched(one, crops, batch_size, int(meta["img_size"]))


class TorchRunner:
    """An agecli checkpoint run by torch, on CPU or CUDA (a `runners.Runner`)."""

    kind = "torch"

    def __init__(self, checkpoint: str | Path, device: str = "cpu", batch_size: int = 64) -> None:
        self.model, meta = model_from_checkpoint(checkpoint)
        self.meta = ModelMeta.from_dict(meta, Path(checkpoint).name)
        self.device = device
        self.model.to(device).to(memory_format=torch.channels_last)
        self.batch_size = batch_size

    def predict(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        return predict_torch(self.model, crops, self.meta, self.batch_size, self.device)


def open_torch(path: Path, device: str = "cpu", batch_size: int = 64, threads: int = 0, providers=None) -> TorchRunner:
    """`--runner torch` (runners.RUNNER_TABLE): threads and providers are ONNX Runtime's."""
    return TorchRunner(path, device, batch_size)
