"""What the second pass of a mirror-mixed model should see.

    python bench/second_look.py --model runs/chip_soup_flip.pth   # v9's checkpoint (~15 min here)

A flip-mixed model (v5-v9) reads each face twice, from its crop and from its mirror
image, and mixes the two answers. Here the second look varies:
- the mirror image, as v9 does;
- the mirror image zoomed on its centre: the middle N px of the crop's side scaled back
  up (`AgeNet.mirror_view`, meta `mirror_zoom`), so the two looks differ in scale as
  well as side;
- the mirror image's middle N px fed as they are, not scaled back up (`--native`): a
  smaller second input, so a cheaper second pass (`bench/pass_cost.py` times one pass at
  each size), another road to the speed bound;
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
from agecli.infer.batches import normalise
from agecli.model.checkpoint import model_from_checkpoint


def looks(model, meta: dict, images: np.ndarray, zooms: list[int],
          native: list[int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Age distribution and P(second gender class) of the crop, its mirror, the mirror
    zoomed to each of `zooms` px and the mirror's middle `native` px fed unscaled."""
    size = int(meta["img_size"])
    out: dict[str, list] = {}
    with torch.no_grad():
        for i in range(0, len(images), 64):
            x = torch.from_numpy(normalise(images[i:i + 64], meta["mean"], meta["std"]))
            todo = [("crop", 1.0, True), ("mirror", 1.0, True)] + [(f"mirror zoom {z}", z / size, True) for z in zooms]
            todo += [(f"mirror native {n}", n / size, False) for n in native]  # the middle n px, unscaled
            for name, zoom, rescale in todo:
                view = x
                if name != "crop":
                    model.set_mirror_zoom(zoom, size, rescale)
                    view = model.mirror_view(x)
                res = model.decode(model(view))
                out.setdefault(name, []).append((res["probs"].numpy(), res["gender_probs"][:, 1].numpy()))
    model.set_mirror_zoom(1.0, size)
    return {k: (np.concatenate([p for p, _ in v]), np.concatenate([g for _, g in v])) for k, v in out.items()}


def spread(probs: np.ndarray) -> np.ndarray:
    bins = np.arange(probs.shape[1], dtype=float)
    mean = probs @ bins
    return np.sqrt(np.maximum(probs @ bins ** 2 - mean ** 2, 0))


def variants(views: dict, zooms: list[int], native: list[int], unsure: dict[float, float]) -> dict[str, tuple]:
    """Each mix -> (ages, P(second gender class), share of faces with a second pass);
    `unsure`: share of valid faces -> the crop's spread above which they get the mirror."""
    bins = np.arange(views["crop"][0].shape[1], dtype=float)
    (p, g), (q, h) = views["crop"], views["mirror"]

    def mix(second: str):
        q2, h2 = views[second]
        return ((p + q2) / 2) @ bins, (g + h2) / 2, 1.0

    out = {"mirror (v9)": mix("mirror")}
    out.update({f"mirror zoom {z} px": mix(f"mirror zoom {z}") for z in zooms})
    out.update({f"mirror's middle {n} px, unscaled": mix(f"mirror native {n}") for n in native})
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
    ap.add_argument("--native", type=int, nargs="*", default=[], help="px of the mirror's middle fed unscaled")
    ap.add_argument("--unsure", type=float, nargs="+", default=[0.5], help="shares of valid faces given the mirror")
    ap.add_argument("--fairface", type=Path, default=Path("../shared/data/fairface540"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, meta = model_from_checkpoint(args.model)
    data = cross_dataset.screen_splits(meta)
    views = {key: looks(model, meta, faces.images, args.zooms, args.native) for key, faces in data.items()}
    valid_spread = np.concatenate([spread(views[(n, "valid")]["crop"][0]) for n in cross_dataset.SETS])
    unsure = {s: float(np.quantile(valid_spread, 1 - s)) for s in args.unsure}
    rows: dict[str, dict] = {}
    for (name, split), faces in data.items():
        for how, (age, g, share) in variants(views[(name, split)], args.zooms, args.native, unsure).items():
            row = rows.setdefault(how, {"second look": how})
            cross_dataset.screen_figures(row, name, split, age, faces, g)
            if split == "test":
                row[f"{name} second passes"] = round(share, 2)
    for row in rows.values():
        row["valid mean MAE"] = cross_dataset.valid_mean(row)
    faces, labels = fairface.load(args.fairface, Path("data") / fairface.NAME, meta)
    ff_views = looks(model, meta, faces.images, args.zooms, args.native)
    for how, (age, g, share) in variants(ff_views, args.zooms, args.native, unsure).items():
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
