"""Training throughput on the CPU, data pipeline included (augmentation, batching).

    python bench/bench_train.py --data-dir data/utkface [--arch efficientnet_lite0] [--size 112]

Loads the cached crops of `<dataset>_train_align.csv`, then times real optimisation
steps of the LDL objective with augmentation (after warm-up steps) and prints
images/second, as channels_last (the trainer's layout) and, with --compare-layout,
the default contiguous layout too.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from agecli.config import default_config
from agecli.data.dataset import AlignedFaces, batch_tensor
from agecli.data.records import csv_name, resolve_image_root
from agecli.model.checkpoint import model_meta
from agecli.model.heads import AgeNet
from agecli.model.losses import total_loss


def images_per_second(data: AlignedFaces, arch: str, size: int, batch: int, steps: int, channels_last: bool) -> float:
    cfg = default_config()
    meta = model_meta(cfg, "dist", "ldl")
    model = AgeNet(arch, "dist", pretrained=True).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
    ages = np.clip(data.ages, 0, 100)
    warm, t0 = 3, 0.0
    for i in range(warm + steps):
        if i == warm:
            t0 = time.perf_counter()
        idx = np.sort(rng.choice(len(data), batch, replace=False))
        x = batch_tensor(data.images[idx], meta["mean"], meta["std"], True, rng, gen)
        if not channels_last:
            x = x.contiguous()
        out = model(x)
        loss = total_loss("ldl", out, {"age": torch.from_numpy(ages[idx])}, model.bins, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("data/utkface"))
    ap.add_argument("--dataset", default="utkface")
    ap.add_argument("--arch", default="efficientnet_lite0")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--compare-layout", action="store_true")
    args = ap.parse_args()
    data = AlignedFaces.load(args.data_dir / csv_name(args.dataset, "train"),
                             resolve_image_root(args.data_dir, args.dataset), args.size, 0.25,
                             args.data_dir / ".agecli_cache")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.arch} at {args.size} px, "
          f"batch {args.batch}, {args.steps} timed steps, augmentation on")
    print(f"channels_last: {images_per_second(data, args.arch, args.size, args.batch, args.steps, True):.1f} images/s")
    if args.compare_layout:
        print(f"contiguous:    {images_per_second(data, args.arch, args.size, args.batch, args.steps, False):.1f} images/s")


if __name__ == "__main__":
    main()
