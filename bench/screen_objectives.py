"""Screen training objectives and crop sizes on the validation folds, same small budget each.

    python bench/screen_objectives.py --data-dir data/utkface [--epochs 3 --steps 110]

Each configuration trains EfficientNet-Lite0 from ImageNet with augmentation for
`--epochs` short epochs of `--steps` batches (cosine schedule) and reports its best
validation MAE (folds 6-7; the test folds are never touched). The budget is small, so
the figures rank the choices rather than give final accuracy. Writes
`<out>/screening.csv` and prints a markdown table.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from agecli.config import apply_overrides, default_config
from agecli.train.trainer import TrainJob, train

CONFIGS = [  # (name, loss, image size)
    ("DLDL-v2 (KL + L1), 112 px", "ldl", 112),
    ("cross-entropy + expectation, 112 px", "ce", 112),
    ("mean-variance, 112 px", "mv", 112),
    ("soft labels + EMD, 112 px", "emd", 112),
    ("DLDL-v2, 96 px", "ldl", 96),
    ("DLDL-v2, 128 px", "ldl", 128),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("data/utkface"))
    ap.add_argument("--dataset", default="utkface")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=110)
    ap.add_argument("--out", type=Path, default=Path("runs/screening"))
    ap.add_argument("--only", nargs="*", default=None, help="run these of LOSS_SIZE (e.g. ldl_96); rows of earlier "
                                                            "runs in <out>/screening.csv are kept")
    args = ap.parse_args()
    done = args.out / "screening.csv"
    rows = pd.read_csv(done).to_dict("records") if args.only and done.exists() else []
    for name, loss, size in CONFIGS:
        if args.only is not None and f"{loss}_{size}" not in args.only:
            continue
        cfg = apply_overrides(default_config(), ["TRAIN.LOSS", loss, "MODEL.IMG_SIZE", str(size),
                                                 "TRAIN.EPOCHS", str(args.epochs), "TRAIN.MAX_STEPS", str(args.steps)])
        t0 = time.perf_counter()
        best = train(TrainJob(cfg, args.data_dir, args.dataset, args.out / f"{loss}_{size}", aug=True,
                              log=lambda m: print("  " + m, flush=True)))
        rows.append({"configuration": name, "loss": loss, "img_size": size, "val_mae": round(best["mae"], 3),
                     "val_ca5": round(best["ca5"], 3), "minutes": round((time.perf_counter() - t0) / 60, 1)})
        print(rows[-1], flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out / "screening.csv", index=False)
    print(f"\n{args.epochs} epochs x {args.steps} batches of 64, EfficientNet-Lite0 (ImageNet), --aug\n")
    print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for r in rows:
        print("| " + " | ".join(str(v) for v in r.values()) + " |")


if __name__ == "__main__":
    main()
