"""How much age and gender a start's frozen features carry: a linear probe, before any fine-tuning.

    python bench/probe_start.py --start efficientnet_lite0:128=imagenet \
        --start mobilefacenet:112=runs/starts/mobilefacenet.pth --start dlib_age:64=runs/starts/dlib_age.pth

Each start (ARCH:SIZE=imagenet|random|PATH) embeds --faces train and --faces valid faces of
each prepared set (the crops training uses, at its size); a ridge regression on the
standardised features (lambda chosen on the valid faces of the set, from a fixed grid)
predicts age and gender. Valid MAE and gender accuracy per set are printed as one table.
Cheap (a few minutes on 2 cores): a start whose probe is far behind cannot be expected to
win a short fine-tuning schedule, which costs an hour.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

LAMBDAS = (1e-2, 1e-1, 1, 10, 100, 1000)


def embed(net: torch.nn.Module, images: np.ndarray, batch: int = 64) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy((images[i:i + batch].astype(np.float32) / 255 - 0.5) / 0.5).permute(0, 3, 1, 2)
            out.append(net(x).flatten(1).numpy())
    return np.concatenate(out)


def ridge(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, lam: float) -> np.ndarray:
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = (xtr - mu) / sd, (xva - mu) / sd
    w = np.linalg.solve(a.T @ a + lam * len(a) * np.eye(a.shape[1]), a.T @ (ytr - ytr.mean()))
    return b @ w + ytr.mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", action="append", required=True, help="ARCH:SIZE=imagenet|random|PATH")
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--sets", default="utkface,aaf")
    ap.add_argument("--faces", type=int, default=2000, help="train and valid faces per set (every k-th)")
    ap.add_argument("--expand", type=float, default=0.25)
    args = ap.parse_args()
    torch.set_num_threads(2)

    from agecli.data.records import csv_name
    from agecli.eval.evaluate import load_faces
    from agecli.model.backbones import build_backbone

    rows = []
    for spec in args.start:
        arch_size, source = spec.split("=", 1)
        arch, size = arch_size.split(":")
        net = build_backbone(arch, {"imagenet": True, "random": False}.get(source, source)).eval()
        row = {"start": spec}
        for name in args.sets.split(","):
            split = {}
            for part in ("train", "valid"):
                faces = load_faces(args.data / name / csv_name(name, part), args.data / name, name, int(size),
                                   args.expand, args.data / name / ".agecli_cache")
                take = np.arange(0, len(faces), max(1, len(faces) // args.faces))[:args.faces]
                split[part] = (embed(net, faces.images[take]), faces.ages[take], faces.genders[take])
            (xtr, atr, gtr), (xva, ava, gva) = split["train"], split["valid"]
            row[f"{name} age MAE"] = min(float(np.abs(ridge(xtr, atr, xva, lam) - ava).mean()) for lam in LAMBDAS)
            known = (gtr >= 0), (gva >= 0)
            row[f"{name} gender acc"] = max(
                float(((ridge(xtr[known[0]], gtr[known[0]].astype(float), xva[known[1]], lam) > 0.5)
                       == (gva[known[1]] == 1)).mean()) for lam in LAMBDAS)
            print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        rows.append(row)
    keys = list(rows[0])
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
