"""`agecli demo --ray [ADDRESS]`: the same age pipeline over a Ray cluster, with Ray Data.

Batches of inputs are mapped through a pool of actors, each a PipelineWorker (one
detector and one age model; one actor per CPU, or per GPU with --device cuda), the
same worker `demo --workers` runs in local processes, so the driver only writes: rows and files come out in input order, through the same writer as a
local run, hence the same rows, the same annotated copies and the same resume.

Every node needs agecli (`pip install ".[ray]"` in a clone) and the input paths; the model
travels with the job.
"""
from __future__ import annotations

import logging
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import RAY_EXTRA_HINT, AgecliError
from ..infer.pipeline import ImageResult
from ..infer.sources import Item
from .worker import MAX_CHUNK, PipelineWorker, WorkerSettings


class RayError(AgecliError):
    """Ray is missing, or the cluster cannot be reached."""


class AgeActor:
    """A PipelineWorker for the actor's life; maps batches of pickled Items to pickled
    ImageResults with the annotated copies encoded."""

    def __init__(self, model: bytes, suffix: str, settings: WorkerSettings) -> None:
        with tempfile.TemporaryDirectory() as tmp:  # a .pth or .onnx loads from a file
            path = Path(tmp) / f"model{suffix}"
            path.write_bytes(model)
            self.worker = PipelineWorker(path, settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [pickle.loads(b) for b in batch["item"]]
        skipped = {it.name for it, s in zip(items, batch["skip"]) if s}
        return {"result": np.array([pickle.dumps(r) for r in self.worker.run(items, skipped)], dtype=object)}


def connect(address: str, log: Callable[[str], None]) -> None:
    """Join the cluster at `address` ("local": RAY_ADDRESS, this machine's running
    cluster, or a new one); a driver already connected (ray.init done) stays as it is."""
    try:
        import ray
    except ImportError:
        raise RayError(f"`ray` needs Ray: {RAY_EXTRA_HINT}", setting="ray") from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RayError(f"`ray` {address}: cannot connect ({str(e).splitlines()[0][:200]})", setting="ray") from None
    res = ray.cluster_resources()
    log(f"ray: {int(res.get('CPU', 0))} CPUs, {int(res.get('GPU', 0))} GPUs in the cluster")


def ray_results(items: Iterable[Item], model_path: Path, settings: WorkerSettings,
                skip: Callable[[str], bool] | None = None, actors: int | None = None) -> Iterator[ImageResult]:
    """Results for `items`, in input order, computed by Ray actors (one model each);
    `actors` defaults to one per CPU (per GPU with a cuda device) in the cluster."""
    import ray

    gpu = settings.infer.device.startswith("cuda")
    if actors is None:
        actors = max(1, int(ray.cluster_resources().get("GPU" if gpu else "CPU", 1)))
    rows = [{"item": pickle.dumps(it), "skip": bool(skip and skip(it.name))} for it in items]
    if not rows:
        return
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # rows and predictions.csv in input order
    ctx.enable_progress_bars = False  # the CLI shows its own
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # blocks of a batch each, but enough for every actor; a million inputs make 512 blocks
    blocks = min(512, max(-(-len(rows) // MAX_CHUNK), min(len(rows), actors)))
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    ds = ds.map_batches(AgeActor, batch_size=MAX_CHUNK, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=0 if gpu else 1,
                        num_gpus=1 if gpu else 0,
                        fn_constructor_kwargs=dict(model=Path(model_path).read_bytes(), suffix=Path(model_path).suffix,
                                                   settings=settings))
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for data in batch["result"]:
            yield pickle.loads(data)
