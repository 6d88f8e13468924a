"""What one pass of a model's network costs at each input size, through ONNX Runtime.

    python bench/pass_cost.py --model weights/agecli_default.pth --sizes 128 120 116 112 104

A flip-mixed model runs its network twice per face; a second look at fewer pixels
(`bench/second_look.py --native`) would cost less. This times the network alone (one
pass, no mirror mixing) on batches of 32 at each size, the sizes interleaved in every
round so that the host's load falls on all alike, and prints each size's median time as
a share of the first size's: the cost of that second pass in passes at full size.
EfficientNet's strides round the feature maps up, so the cost is not the pixel ratio.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from agecli.model.checkpoint import model_from_checkpoint


class Network(torch.nn.Module):
    """The age network's raw logits: one pass, nothing mixed."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["logits"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("weights/agecli_default.pth"), help="an agecli .pth")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 120, 116, 112, 104], help="input px, the first the reference")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = model_from_checkpoint(args.model)
    model.eval()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sessions, inputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for px in args.sizes:
            path = Path(tmp) / f"pass{px}.onnx"
            torch.onnx.export(Network(model), torch.zeros(args.batch, 3, px, px), str(path), input_names=["x"],
                              output_names=["logits"], opset_version=17, dynamo=False)
            sessions[px] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            inputs[px] = np.random.default_rng(0).random((args.batch, 3, px, px), dtype=np.float32)
            sessions[px].run(None, {"x": inputs[px]})  # warm-up
    times: dict[int, list[float]] = {px: [] for px in args.sizes}
    for _ in range(args.repeat):
        for px in args.sizes:
            start = time.perf_counter()
            sessions[px].run(None, {"x": inputs[px]})
            times[px].append(time.perf_counter() - start)
    ref = float(np.median(times[args.sizes[0]]))
    print(f"| input px | ms per batch of {args.batch} (median of {args.repeat}) | passes at {args.sizes[0]} px |")
    print("|---|---|---|")
    for px in args.sizes:
        med = float(np.median(times[px]))
        print(f"| {px} | {med * 1000:.1f} | {med / ref:.3f} |")


if __name__ == "__main__":
    main()
