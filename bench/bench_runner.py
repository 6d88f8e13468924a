"""Age model throughput through ONNX Runtime: faces/second at a fixed batch size.

    python bench/bench_runner.py [--model M.onnx|M.pth ...] [--batch 32] [--faces 512] [--repeat 5]

Feeds random uint8 crops of each model's input size (the cost does not depend on the
pixels) and reports faces/s after one warm-up batch. Several `--model`s are timed side
by side, interleaved `--repeat` times, so that machines (which differ up to 1.6x) and
load changes hit them alike: compare them by the ratio. Without --model it uses the
shipped default model; a .pth checkpoint is exported to ONNX in memory first.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from agecli.infer.default_model import MissingModelError, default_model_path
from agecli.infer.runners import open_runner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, action="append", default=None,
                    help="checkpoint or .onnx, may repeat (default: the shipped model)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--faces", type=int, default=512, help="faces to time per round, after one warm-up batch")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the median is reported")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    try:
        models = args.model or [default_model_path()]
    except MissingModelError:
        ap.error("the default model is not installed; pass --model")
    runners = [open_runner(m, "onnx", args.device, args.batch) for m in models]
    rng = np.random.default_rng(0)
    crops = []
    for r in runners:
        size = int(r.meta["img_size"])
        crops.append(rng.integers(0, 256, (args.faces, size, size, 3), dtype=np.uint8))
        r.predict(crops[-1][: args.batch])
    rates: list[list[float]] = [[] for _ in runners]
    for _ in range(args.repeat):
        for i, r in enumerate(runners):
            t0 = time.perf_counter()
            r.predict(crops[i])
            rates[i].append(args.faces / (time.perf_counter() - t0))
    first = statistics.median(rates[0])
    print(f"batch {args.batch}, {args.faces} faces a round, median of {args.repeat} interleaved rounds")
    print("| model | input | faces/s (median) | range | ms/face | vs the first |")
    print("|---|---|---|---|---|---|")
    for m, r, rs in zip(models, runners, rates):
        med = statistics.median(rs)
        print(f"| {m} | {r.meta.get('arch')} {r.meta['img_size']} px | {med:.1f} | {min(rs):.0f}-{max(rs):.0f} | "
              f"{1000 / med:.2f} | {med / first:.2f}x |")


if __name__ == "__main__":
    main()
