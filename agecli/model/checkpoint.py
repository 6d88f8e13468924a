"""Checkpoints: tensors + plain metadata, saved atomically, loaded with weights_only=True.

`meta` holds everything inference needs (arch, head, image size, expand, age range,
normalisation) so a checkpoint is self-describing; the training state (optimizer,
scheduler, epoch, RNG) rides along for `--resume`.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_bytes
from ..errors import CheckpointError
from .heads import AgeNet
from .meta import FORMAT, file_hash, meta_problem, model_meta  # noqa: F401 - re-exported: callers import them from here


def save_checkpoint(path: str | Path, model: AgeNet, meta: dict, cfg: dict, **state: Any) -> None:
    """Write a checkpoint atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = model.module if hasattr(model, "module") else model
    payload = {"meta": meta, "config": cfg, "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    payload.update(state)
    _save(payload, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load safely; raises CheckpointError (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notes: noise for a file we refuse anyway
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - the weights-only unpickler raises anything (IndexError, KeyError...) on junk
        raise CheckpointError(f"{path}: {_load_failure(e)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("meta", {}).get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an agecli checkpoint (no '{FORMAT}' metadata)")
    return ckpt


def _load_failure(e: Exception) -> str:
    """Why a file did not load, in our words: torch's own message advises loading it with
    weights_only=False, which would run whatever code the file holds; never pass that on."""
    text = str(e)
    if "Weights only load failed" in text or "Unsupported global" in text or "Unsupported operand" in text:
        return ("refused: not an agecli checkpoint, and loading it would run code it holds (a Python pickle "
                "of objects, not tensors); agecli loads tensors and plain metadata only")
    return "not an agecli checkpoint (not a torch file of tensors)"


def build_model(meta: dict, pretrained: bool | str = False) -> AgeNet:
    model = AgeNet(meta["arch"], meta["head"], meta["age_min"], meta["age_max"], meta.get("range_width", 5),
                   dropout=float(meta.get("dropout", 0.2)), pretrained=pretrained,
                   set_heads=int(meta.get("set_heads", 1)))
    model.std_scale.fill_(float(meta.get("std_scale", 1.0)))
    model.flip_tta = bool(meta.get("flip_tta", False))
    model.set_mirror_zoom(float(meta.get("mirror_zoom", 1.0)), int(meta["img_size"]),
                          bool(meta.get("mirror_rescale", True)))
    model.withheld = frozenset(meta.get("withheld") or {})
    if meta.get("window"):
        model.set_window(meta["window"], int(meta["img_size"]), meta.get("mean", (0.5,) * 3),
                         meta.get("std", (0.5,) * 3))
    return model


def load_matching_heads(model: AgeNet, path: str | Path) -> int:
    """Fine-tuning from an agecli checkpoint keeps its heads too where they fit (same head
    kind and age bins), so more epochs or a new input size start from the trained model,
    not only its backbone. Returns how many head tensors were taken (0: not a checkpoint)."""
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError:
        return 0  # a plain backbone state dict: build_backbone already used it
    meta = ckpt["meta"]
    if (meta.get("head"), meta.get("age_min"), meta.get("age_max")) != (model.head, model.age_min, model.age_max):
        return 0  # another head: only the backbone carries over
    own = model.state_dict()
    source = dict(ckpt["state_dict"])
    for k in [k for k in own if k.startswith("set_fc.") and k not in source]:  # each collection's age layer
        source[k] = source.get("fc." + k.split(".", 2)[2], own[k])  # starts as the single one it replaces
    heads = {k: v.float() if v.is_floating_point() else v for k, v in source.items()
             if not k.startswith("backbone.") and k in own and own[k].shape == v.shape}
    model.load_state_dict(heads, strict=False)
    return len(heads)


def model_from_checkpoint(path: str | Path) -> tuple[AgeNet, dict]:
    """The model in eval mode and its metadata."""
    ckpt = load_checkpoint(path)
    problem = meta_problem(ckpt["meta"])
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    model = build_model(ckpt["meta"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
    model.eval()
    return model, ckpt["meta"]


def average_checkpoints(paths: list[str | Path], dst: str | Path, meta_update: dict | None = None,
                        weights: list[float] | None = None) -> dict:
    """The mean of several checkpoints' weights (a "model soup"), written to `dst`.
    Fine-tuned copies of one model (one run's epochs, or runs started from one
    checkpoint) average into a model better than each, at no cost at inference.
    `weights` (summing to 1; default equal) make it a weighted mean: a fine-tuned model
    and the model it started from, alpha and 1 - alpha, is WiSE-FT's weight-space
    ensemble. They must share the architecture, head and age range; the metadata and
    config are the first one's, updated with `meta_update`. Returns the metadata written."""
    ckpts = [load_checkpoint(p) for p in paths]
    if not ckpts:
        raise CheckpointError("no checkpoints to average")
    keys = ("arch", "head", "age_min", "age_max", "range_width")
    first = ckpts[0]
    for p, c in zip(paths, ckpts):
        if [c["meta"].get(k) for k in keys] != [first["meta"].get(k) for k in keys]:
            raise CheckpointError(f"{p}: another model than {paths[0]} ({', '.join(keys)} differ); cannot average")
        if {k: v.shape for k, v in c["state_dict"].items()} != {k: v.shape for k, v in first["state_dict"].items()}:
            raise CheckpointError(f"{p}: its tensors differ from {paths[0]}'s; cannot average")
    w = [1.0 / len(ckpts)] * len(ckpts) if weights is None else [float(x) for x in weights]
    if len(w) != len(ckpts) or abs(sum(w) - 1.0) > 1e-6 or min(w) < 0:
        raise CheckpointError(f"weights {weights} must be {len(ckpts)} non-negative numbers summing to 1")
    state = {k: sum(wi * c["state_dict"][k].float() for wi, c in zip(w, ckpts)) if v.is_floating_point() else v
             for k, v in first["state_dict"].items()}
    meta = {**first["meta"], **(meta_update or {})}
    _save({"meta": meta, "config": first["config"], "state_dict": state}, dst)
    return meta


def slim_checkpoint(src: str | Path, dst: str | Path, fp16: bool = True, meta_update: dict | None = None) -> None:
    """A checkpoint for shipping: weights (fp16 storage when asked) + metadata (updated
    with `meta_update`), no optimizer/scheduler state. Loads like any checkpoint;
    fine-tune it with --pretrained."""
    ckpt = load_checkpoint(src)
    state = {k: v.half() if fp16 and v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    payload = {"meta": {**ckpt["meta"], **(meta_update or {})}, "config": ckpt["config"], "state_dict": state}
    _save(payload, dst)


def _save(payload: dict, path: str | Path) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_bytes(path, buf.getvalue())
