"""Regenerate the shipped default model, from the UTKFace and All-Age-Faces images to weights/.

    python bench/make_default_model.py --utkface ../shared/data/utkface/UTKFace --aaf ../shared/data/aaf

Steps (each an ordinary agecli command, printed before it runs):
1. prepare: detect and align UTKFace into data/utkface (hash split, folds 0-5/6-7/8-9)
   and All-Age-Faces into data/aaf (official split; valid taken out of the train list);
2. train-mt: EfficientNet-Lite0 (ImageNet init), 112 px, age (DLDL-v2) + gender +
   ethnicity, photographic augmentation, both collections pooled, best epoch on the
   mean of the two valid MAEs, 12 epochs, into runs/default_v2; an interrupted run resumes;
3. fine-tune: the same from runs/default_v2/best.pth (heads included) at 128 px, 8 more
   epochs, peak learning rate 4e-4, into runs/default_v3;
4. ship: best.pth -> weights/agecli_default.pth (fp16 weights, no optimizer) and,
   exported from that file, weights/agecli_default.onnx (uint8 RGB crop input, fp16
   storage, fp32 compute; verified on --photos);
5. test: the shipped ONNX model on both test sets, side by side
   (bench/cross_dataset.py --train-none), and `agecli val` reports per set.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

TRAIN_ARGS = ["TRAIN.EPOCHS", "12"]
FINE_TUNE_ARGS = ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "8", "TRAIN.LR", "0.0004"]


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utkface", type=Path, default=Path("../shared/data/utkface/UTKFace"))
    ap.add_argument("--aaf", type=Path, default=Path("../shared/data/aaf"))
    ap.add_argument("--data", type=Path, default=Path("data"), help="prepared sets go to <data>/utkface, <data>/aaf")
    ap.add_argument("--run", type=Path, default=Path("runs/default_v2"), help="the 112 px run")
    ap.add_argument("--fine-tune", type=Path, default=Path("runs/default_v3"), help="the 128 px run (shipped)")
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--photos", type=Path, default=Path("../shared/photos"), help="faces that verify the export")
    args = ap.parse_args()
    agecli = [sys.executable, "-m", "agecli"]
    sets = {"utkface": args.utkface, "aaf": args.aaf}
    for name, source in sets.items():
        if not (args.data / name / f"{name}_test_align.csv").exists():
            run(agecli + ["prepare", "--dataset", name, "--data-dir", str(source), "--out", str(args.data / name)])
    dirs = [a for name in sets for a in ("--data-dir", str(args.data / name))]
    for run_dir, start, extra in ((args.run, [], TRAIN_ARGS),
                                  (args.fine_tune, ["--pretrained", str(args.run / "best.pth")], FINE_TUNE_ARGS)):
        # an interrupted run resumes; a finished one is kept (resuming it does nothing)
        begin = ["--resume", str(run_dir / "last.pth")] if (run_dir / "last.pth").exists() else start
        run(agecli + ["train-mt", "--dataset", ",".join(sets), *dirs, "--aug", "--checkpoint", str(run_dir),
                      *begin, *extra])

    from agecli.model.checkpoint import slim_checkpoint

    pth, onnx = args.weights / "agecli_default.pth", args.weights / "agecli_default.onnx"
    slim_checkpoint(args.fine_tune / "best.pth", pth)
    print(f"wrote {pth}")
    run(agecli + ["export", "--resume", str(pth), "--format", "onnx", "--fp16", "--images", str(args.photos),
                  "--output", str(onnx)])
    run([sys.executable, "bench/cross_dataset.py", "--train-none", "--model", f"shipped={onnx}"])
    for name in sets:
        run(agecli + ["val", "--resume", str(onnx), "--data-dir", str(args.data / name), "--dataset", name,
                      "--split", "test", "--baseline", "--output-dir", f"val_default/{name}"])


if __name__ == "__main__":
    main()
