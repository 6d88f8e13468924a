"""The mirror image seen through the window: how much of FairFace's gain costs in-domain.

    python bench/mirror_window.py --model runs/fill_soup_flip.pth --every 4   # v8's checkpoint (~8 min here)

A flip-mixed model reads each face from its crop and its mirror image. Blacking out
everything outside a window (`DATA.WINDOW`, model card "The black border") makes a face
look like a UTKFace chip, and the model then reads it UTKFace's way: that lifts
FairFace-540 and costs All-Age-Faces. Here only the mirror pass is windowed and its
answer weighted w in the mix (same two passes, same speed), for a few windows and
weights. Each variant is scored on the valid and test splits of UTKFace and All-Age-Faces
(MAE, the 11-20 and 61+ bias, gender) and on FairFace-540 (in-group, worst group,
distance, gender). FairFace-540 then chooses a variant on one random half of its faces
and is judged on the other half, 200 times: the held-out gain says how much of the
best variant's figure is real and how much is the choosing.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import cross_dataset
import fairface
from agecli.data.dataset import CHIP_WINDOW
from agecli.infer.batches import normalise
from agecli.model.checkpoint import model_from_checkpoint

WINDOWS = {"chip": CHIP_WINDOW,  # where UTKFace's chips have content (bench/crop_border.py)
           "tight": (0.20, 0.22, 0.80, 0.88), "tighter": (0.25, 0.27, 0.75, 0.83)}
WEIGHTS = (0.25, 0.5)


def passes(model, meta: dict, images: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Age distribution and P(second gender class) of the crop, its mirror, and the mirror
    through each window."""
    views: dict[str, list] = {}
    with torch.no_grad():
        for i in range(0, len(images), 64):
            x = torch.from_numpy(normalise(images[i:i + 64], meta["mean"], meta["std"]))
            todo = [("crop", x, None), ("mirror", x.flip(3), None)]
            todo += [(f"mirror {w}", x.flip(3), box) for w, box in WINDOWS.items()]
            for name, view, box in todo:
                model.set_window(box, meta["img_size"], meta["mean"], meta["std"])
                out = model.decode(model(view))
                views.setdefault(name, []).append((out["probs"].numpy(), out["gender_probs"][:, 1].numpy()))
    return {k: (np.concatenate([p for p, _ in v]), np.concatenate([g for _, g in v])) for k, v in views.items()}


def variants(views: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each mix -> (ages, P(second gender class))."""
    bins = np.arange(views["crop"][0].shape[1], dtype=float)

    def mix(second: str, w: float):
        p = (1 - w) * views["crop"][0] + w * views[second][0]
        return p @ bins, (1 - w) * views["crop"][1] + w * views[second][1]
    out = {"flip (as shipped)": mix("mirror", 0.5)}
    out.update({f"mirror through {n}, w {w}": mix(f"mirror {n}", w) for n in WINDOWS for w in WEIGHTS})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("runs/fill_soup_flip.pth"), help="an agecli .pth (mt head)")
    ap.add_argument("--every", type=int, default=1, help="every Nth face of the UTKFace and AAF splits")
    ap.add_argument("--fairface", type=Path, default=Path("../shared/data/fairface540"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, meta = model_from_checkpoint(args.model)
    rows: dict[str, dict] = {}
    for (name, split), faces in cross_dataset.screen_splits(meta, args.every).items():
        for how, (age, g) in variants(passes(model, meta, faces.images)).items():
            cross_dataset.screen_figures(rows.setdefault(how, {"variant": how}), name, split, age, faces, g)
    faces, labels = fairface.load(args.fairface, Path("data") / fairface.NAME, meta)
    inside = {}
    for how, (age, g) in variants(passes(model, meta, faces.images)).items():
        s = fairface.score(age, None, (g > 0.5).astype(int), faces.frame, labels)
        rows[how].update({"FairFace in-group": s["in-group"], "worst group": s["worst group"],
                          "distance": s["distance"], "FairFace gender": s["gender acc"]})
        inside[how] = fairface.per_face(age, None, faces.frame, labels)["inside"].to_numpy()
    print(cross_dataset.markdown(pd.DataFrame(rows.values())))
    rng = np.random.default_rng(0)
    base, gains, chosen = inside["flip (as shipped)"], [], {}
    for _ in range(200):
        half = rng.random(len(base)) < 0.5
        best = max(inside, key=lambda k: inside[k][half].mean())
        chosen[best] = chosen.get(best, 0) + 1
        gains.append(inside[best][~half].mean() - base[~half].mean())
    lo, hi = np.percentile(gains, [5, 95])
    print(f"\nFairFace-540, chosen on a random half and judged on the other (200 halves): held-out in-group "
          f"gain over the shipped flip {np.mean(gains):+.3f} [5-95 %: {lo:+.3f}, {hi:+.3f}]; chosen most: "
          + ", ".join(f"{k} ({n})" for k, n in sorted(chosen.items(), key=lambda kv: -kv[1])[:3]))


if __name__ == "__main__":
    main()
