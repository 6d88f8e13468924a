"""Age model throughput through ONNX Runtime: faces/second at a fixed batch size.

    python bench/bench_runner.py [--model M.onnx|M.pth] [--batch 32] [--faces 512]

Feeds random uint8 crops of the model's input size (the model's cost does not depend
on the pixels) and reports faces/s after one warm-up batch. Without --model it uses
the shipped default model; a .pth checkpoint is exported to ONNX in memory first.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from agecli.infer.default_model import MissingModelError, default_model_path
from agecli.infer.runners import open_runner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="checkpoint or .onnx (default: the shipped model)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--faces", type=int, default=512, help="faces to time, after one warm-up batch")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    try:
        model = args.model or default_model_path()
    except MissingModelError:
        ap.error("the default model is not installed; pass --model")
    runner = open_runner(model, "onnx", args.device, args.batch)
    size = int(runner.meta["img_size"])
    crops = np.random.default_rng(0).integers(0, 256, (args.faces, size, size, 3), dtype=np.uint8)
    runner.predict(crops[: args.batch])
    t0 = time.perf_counter()
    runner.predict(crops)
    dt = time.perf_counter() - t0
    print(f"model: {runner.meta.get('arch')} {size}px  batch {args.batch}  faces {args.faces}")
    print(f"time: {dt:.2f} s  ->  {args.faces / dt:.1f} faces/s  ({1000 * dt / args.faces:.2f} ms/face)")


if __name__ == "__main__":
    main()
