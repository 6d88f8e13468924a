"""Training batches, augmented ahead of the model by a few threads.

On a GPU the network is faster than one core's augmentation (`DATA.AUG photo` decodes,
blurs and JPEG-encodes crops), so `TRAIN.LOADERS` threads prepare the next batches while the
current one trains (OpenCV and torch release the GIL). Each batch has its own random
streams, seeded by (TRAIN.SEED, epoch, step): the same batches whatever the number of
threads, and a resumed run repeats an uninterrupted one.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..data.dataset import batch_tensor


def loader_threads(setting: int, device: torch.device) -> int:
    """TRAIN.LOADERS: -1 (auto) is up to 8 threads beside a GPU, none on a CPU (where
    the cores already run the network); otherwise the number given."""
    if setting >= 0:
        return setting
    return min(8, max(1, (os.cpu_count() or 2) - 1)) if device.type == "cuda" else 0


def _batch(images: np.ndarray, meta: dict, aug: bool, kind: str, seed: int, epoch: int, step: int) -> torch.Tensor:
    rng = np.random.default_rng([seed, epoch, step])
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + step)
    return batch_tensor(images, meta["mean"], meta["std"], aug, rng, gen, kind)


def epoch_batches(images: np.ndarray, batches: list[np.ndarray], meta: dict, aug: bool, kind: str,
                  seed: int, epoch: int, threads: int) -> Iterator[torch.Tensor]:
    """The model-ready batch of each index array in `batches`, in order; with `threads`,
    up to 2 per thread are prepared ahead."""
    if threads == 0:
        for step, idx in enumerate(batches):
            yield _batch(images[idx], meta, aug, kind, seed, epoch, step)
        return
    with ThreadPoolExecutor(threads) as pool:
        ahead: deque = deque()
        steps = iter(enumerate(batches))
        try:
            while True:
                while len(ahead) < 2 * threads:
                    nxt = next(steps, None)
                    if nxt is None:
                        break
                    step, idx = nxt
                    ahead.append(pool.submit(_batch, images[idx], meta, aug, kind, seed, epoch, step))
                if not ahead:
                    return
                yield ahead.popleft().result()
        finally:
            for f in ahead:
                f.cancel()
