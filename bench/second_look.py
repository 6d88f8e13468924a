"""What the second pass of a mirror-mixed model should see.

    python bench/second_look.py --model runs/chip_soup_flip.pth   # v9's checkpoint (~15 min here)

A flip-mixed model (v5-v9) reads each face twice, from its crop and from its mirror
image, and mixes the two answers. Here the second look varies:
- the mirror image, as v9 does;
- the mirror image zoomed on its centre: the middle N px of the crop's side scaled back
  up (`AgeNet.mirror_view`, meta `mirror_zoom`), so the two looks differ in scale as
  well as side;
- the mirror image only for the faces whose first answer is least sure (its spread above
  the valid faces' quantile): fewer passes, a road to the speed bound; the share of
  faces given a second pass is reported, the cost beyond one pass.
Each variant is scored on the valid and test splits of UTKFace and All-Age-Faces (MAE,
the 11-20 and 61+ bias, gender) and on FairFace-540 (in-group, worst group, distance,
gender). The valid faces choose (the mean of the two valid MAEs, printed); FairFace only
reports.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import cross_dataset
import fairface
from agecli.eval.metrics import age_group
from agecli.infer.batches import normalise
from agecli.model.checkpoint import model_from_checkpoint

SPLITS = ("valid", "test")


def looks(model, meta: dict, images: np.ndarray, zooms: list[int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Age distribution and P(second gender class) of the crop, its mirror and the mirror
    zoomed to each of `zooms` px."""
    size = int(meta["img_size"])
    out: dict[str, list] = {}
    with torch.no_grad():
        for i in range(0, len(images), 64):
            x = torch.from_numpy(normalise(images[i:i + 64], meta["mean"], meta["std"]))
            todo = [("crop", x, 1.0), ("mirror", x, 1.0)] + [(f"mirror zoom {z}", x, z / size) for z in zooms]
            for name, view, zoom in todo:
                if name != "crop":
                    model.set_mirror_zoom(zoom, size)
                    view = model.mirror_view(x)
                res = model.decode(model(view))
                out.setdefault(name, []).append((res["probs"].numpy(), res["gender_probs"][:, 1].numpy()))
    model.set_mirror_zoom(1.0, size)
    return {k: (np.concatenate([p for p, _ in v]), np.concatenate([g for _, g in v])) for k, v in out.items()}


def spread(probs: np.ndarray) -> np.ndarray:
    bins = np.arange(probs.shape[1], dtype=float)
    mean = probs @ bins
    return np.sqrt(np.maximum(probs @ bins ** 2 - mean ** 2, 0))


def variants(views: dict, zooms: list[int], unsure: dict[float, float]) -> dict[str, tuple]:
    """Each mix -> (ages, P(second gender class), share of faces with a second pass);
    `unsure`: share of valid faces -> the crop's spread above which they get the mirror."""
    bins = np.arange(views["crop"][0].shape[1], dtype=float)
    (p, g), (q, h) = views["crop"], views["mirror"]

    def mix(second: str):
        q2, h2 = views[second]
        return ((p + q2) / 2) @ bins, (g + h2) / 2, 1.0

    out = {"mirror (v9)": mix("mirror")}
    out.update({f"mirror zoom {z} px": mix(f"mirror zoom {z}") for z in zooms})
    for share, limit in unsure.items():
        use = spread(p) > limit
        out[f"mirror for the least sure {share:.0%} (valid)"] = (
            np.where(use[:, None], (p + q) / 2, p) @ bins, np.where(use, (g + h) / 2, g), float(use.mean()))
    out["crop alone (one pass)"] = (p @ bins, g, 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("runs/chip_soup_flip.pth"), help="an agecli .pth (mt head)")
    ap.add_argument("--zooms", type=int, nargs="+", default=[106, 112, 116, 120], help="px of the crop's side")
    ap.add_argument("--unsure", type=float, nargs="+", default=[0.5], help="shares of valid faces given the mirror")
    ap.add_argument("--fairface", type=Path, default=Path("../shared/data/fairface540"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, meta = model_from_checkpoint(args.model)
    data = {(name, split): cross_dataset.split_crops(name, split, meta)
            for name in cross_dataset.SETS for split in SPLITS}
    views = {key: looks(model, meta, faces.images, args.zooms) for key, faces in data.items()}
    valid_spread = np.concatenate([spread(views[(n, "valid")]["crop"][0]) for n in cross_dataset.SETS])
    unsure = {s: float(np.quantile(valid_spread, 1 - s)) for s in args.unsure}
    rows: dict[str, dict] = {}
    for (name, split), faces in data.items():
        groups = np.array([age_group(a) for a in faces.ages])
        known = faces.genders >= 0
        for how, (age, g, share) in variants(views[(name, split)], args.zooms, unsure).items():
            row = rows.setdefault(how, {"second look": how})
            err = age - faces.ages
            row[f"{name} {split} MAE"] = round(float(np.abs(err).mean()), 3)
            if split == "test":
                for grp in ("11-20", "61+"):
                    row[f"{name} bias {grp}"] = round(float(err[groups == grp].mean()), 2)
                row[f"{name} gender"] = round(float(((g[known] > 0.5) == faces.genders[known]).mean()), 3)
                row[f"{name} second passes"] = round(share, 2)
    for row in rows.values():
        row["valid mean MAE"] = round(float(np.mean([row[f"{n} valid MAE"] for n in cross_dataset.SETS])), 4)
    faces, labels = fairface.load(args.fairface, Path("data") / fairface.NAME, meta)
    for how, (age, g, share) in variants(looks(model, meta, faces.images, args.zooms), args.zooms, unsure).items():
        s = fairface.score(age, None, (g > 0.5).astype(int), faces.frame, labels)
        rows[how].update({"FairFace in-group": s["in-group"], "worst group": s["worst group"],
                          "distance": s["distance"], "FairFace gender": s["gender acc"],
                          "FairFace second passes": round(share, 2)})
    print(cross_dataset.markdown(pd.DataFrame(rows.values())))
    chosen = min((r for r in rows.values() if r["second look"] != "crop alone (one pass)"),
                 key=lambda r: r["valid mean MAE"])
    print(f"\nchosen on the valid faces (mean of the two valid MAEs): {chosen['second look']}")


if __name__ == "__main__":
    main()
