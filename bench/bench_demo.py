"""End-to-end `demo` speed over a folder of photos, with annotated output.

    python bench/bench_demo.py [--photos ../shared/photos] [--model M.onnx|M.pth] [--limit N]

Runs the real demo (decode, detect, align, age model, draw, write annotated copies and
predictions.csv into a temporary folder) and prints photos/s, faces/s and the time
spent in each stage. Without --model it uses the shipped default model.
"""
from __future__ import annotations

import argparse
import io
import shutil
import tempfile
from pathlib import Path

from agecli.errors import AgecliError
from agecli.infer.demo import DemoOptions, run_demo
from agecli.infer.pipeline import STAGES
from agecli.infer.sources import walk_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=Path("../shared/photos"))
    ap.add_argument("--model", type=Path, default=None, help="checkpoint or .onnx (default: the shipped model)")
    ap.add_argument("--runner", default="auto", choices=["auto", "torch", "onnx"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N photos (0 = all)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        photos = args.photos
        if args.limit:
            photos = Path(tmp) / "photos"
            for p in list(walk_images(args.photos))[: args.limit]:
                dst = photos / p.relative_to(args.photos)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(p, dst)
        opts = DemoOptions(img_dir=photos, model=args.model, runner=args.runner, device=args.device,
                           output_dir=Path(tmp) / "out")
        try:
            s = run_demo(opts, io.StringIO())
        except AgecliError as e:
            ap.error(str(e))
    n = s.images + s.unreadable
    print(f"photos: {n}  faces: {s.faces}  no face: {s.no_face}  unreadable: {s.unreadable}")
    print(f"time: {s.seconds:.2f} s  ->  {n / s.seconds:.2f} photos/s, {s.faces / s.seconds:.1f} faces/s")
    for stage in STAGES:
        sec = s.stages.get(stage, 0.0)
        print(f"  {stage:7s} {sec:7.2f} s  {1000 * sec / max(n, 1):7.1f} ms/photo")


if __name__ == "__main__":
    main()
