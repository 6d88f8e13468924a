"""Regenerate the shipped default model, from the UTKFace images to weights/.

    python bench/make_default_model.py --utkface ../shared/data/utkface/UTKFace

Steps (each an ordinary agecli command, printed before it runs):
1. prepare: detect and align UTKFace into data/utkface (hash split, folds 0-5/6-7/8-9);
2. train-ldl: EfficientNet-Lite0 (ImageNet init), 112 px, DLDL-v2, augmentation,
   into runs/default; an interrupted run resumes from runs/default/last.pth;
3. ship: best.pth (chosen on the valid folds) -> weights/agecli_default.pth (fp16
   weights, no optimizer) and, exported from that file, weights/agecli_default.onnx
   (uint8 RGB crop input, fp16 storage, fp32 compute; verified on --photos);
4. val: the shipped ONNX model on the test folds -> val_default/ (the card's figures).
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

TRAIN_ARGS = ["TRAIN.EPOCHS", "15"]


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utkface", type=Path, default=Path("../shared/data/utkface/UTKFace"))
    ap.add_argument("--data", type=Path, default=Path("data/utkface"))
    ap.add_argument("--run", type=Path, default=Path("runs/default"))
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--photos", type=Path, default=Path("../shared/photos"), help="faces that verify the export")
    args = ap.parse_args()
    agecli = [sys.executable, "-m", "agecli"]
    if not (args.data / "utkface_test_align.csv").exists():
        run(agecli + ["prepare", "--dataset", "utkface", "--data-dir", str(args.utkface), "--out", str(args.data)])
    resume = ["--resume", str(args.run / "last.pth")] if (args.run / "last.pth").exists() else []
    run(agecli + ["train-ldl", "--data-dir", str(args.data), "--dataset", "utkface", "--aug",
                  "--checkpoint", str(args.run), *resume, *TRAIN_ARGS])

    from agecli.model.checkpoint import slim_checkpoint

    pth, onnx = args.weights / "agecli_default.pth", args.weights / "agecli_default.onnx"
    slim_checkpoint(args.run / "best.pth", pth)
    print(f"wrote {pth}")
    run(agecli + ["export", "--resume", str(pth), "--format", "onnx", "--fp16", "--images", str(args.photos),
                  "--output", str(onnx)])
    run(agecli + ["val", "--resume", str(onnx), "--data-dir", str(args.data), "--dataset", "utkface",
                  "--split", "test", "--baseline", "--tta", "flip", "--output-dir", "val_default"])


if __name__ == "__main__":
    main()
