"""WiSE-FT: weight-space mixes of a fine-tuned model with the model it started from.

    python bench/wise_ft.py --start runs/starts/dlib_age.pth --tuned runs/s_dlib64/best.pth \
        --alpha 0.5 0.7 0.85 1.0

For each alpha, `alpha * tuned + (1 - alpha) * start` (one network: no cost at inference;
`agecli.model.checkpoint.average_checkpoints` with weights) is written to
`<out>/<tuned run>_a<alpha>.pth`, and all of them are scored by bench/cross_dataset.py
(UTKFace test, AAF test, FairFace-540). A face-trained start knows faces from more
collections than the fine-tuning sets; mixing some of it back keeps part of that
breadth. Per issue 18, alpha is the one choice FairFace-540 may make: between a few
mixes, never epochs or a std scale. The std scale written is the tuned model's (fitted
on valid); the coverage columns say how honest it stays.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", type=Path, required=True, help="the checkpoint fine-tuning started from")
    ap.add_argument("--tuned", type=Path, required=True, help="the fine-tuned checkpoint (best.pth)")
    ap.add_argument("--alpha", type=float, nargs="+", default=[0.5, 0.7, 0.85, 1.0])
    ap.add_argument("--out", type=Path, default=Path("runs/wise"))
    args = ap.parse_args()

    from agecli.model.checkpoint import average_checkpoints

    name = args.tuned.parent.name
    models = []
    for a in args.alpha:
        dst = args.out / f"{name}_a{a:g}.pth"
        if not dst.exists():
            average_checkpoints([args.tuned, args.start], dst, weights=[a, 1.0 - a])
        models += ["--model", f"{dst.stem}={dst}"]
    subprocess.run([sys.executable, str(Path(__file__).with_name("cross_dataset.py")), "--train-none", *models],
                   check=True)


if __name__ == "__main__":
    main()
