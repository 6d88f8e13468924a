"""How fast `prepare` aligns a face set, and how many faces it places.

    python bench/bench_prepare.py --data-dir ../shared/data/utkface/UTKFace [--limit N]

Runs the real prepare step (detect + align, one worker per core unless --workers) into a
temporary folder and prints images/second and the share of images with a face.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from agecli.data.prepare import prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data/utkface/UTKFace"))
    ap.add_argument("--dataset", default="utkface")
    ap.add_argument("--workers", type=int, default=None, help="detector processes (default: one per core)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images (0 = all)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_dir
        if args.limit:
            root = Path(tmp) / "images"
            root.mkdir()
            for p in sorted(args.data_dir.iterdir())[: args.limit]:
                shutil.copy(p, root / p.name)
        t0 = time.perf_counter()
        s = prepare(args.dataset, root, Path(tmp) / "out", workers=args.workers)
        dt = time.perf_counter() - t0
    print(f"images: {s['total']}  with a face: {s['accepted']} ({100 * s['accepted'] / s['total']:.2f}%)  "
          f"rejected: {s['rejected']}")
    print(f"splits: {s['splits']}")
    print(f"time: {dt:.1f} s  ->  {s['total'] / dt:.0f} images/s  ({args.workers or 'one per core'} workers)")


if __name__ == "__main__":
    main()
