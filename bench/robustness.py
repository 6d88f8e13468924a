"""Age error when the photo is worse than the training photos: scans, old prints, phones.

    python bench/robustness.py [--model NAME=PATH ...] [--every 4] [--bias]

Takes the cached aligned test crops of each prepared set (data/utkface, data/aaf; every
k-th face) and scores each model on them as they are and degraded one way at a time:
grayscale, a faded sepia print, a faded colour print scanned, low resolution (the face
at 24 px, scaled back up), blur, heavy JPEG and sensor noise; and a UTKFace face as it
comes in anyone's photo: its chip's black border (the part of the crop beyond the photo;
All-Age-Faces' crops have almost none) filled in, blurred (`DATA.AUG fill`'s family) or
flat grey (outside it). Degradations are seeded, so every model sees the same pixels.
The crops are degraded after alignment: this measures the age model, not the detector.

Prints MAE per condition and set, and each condition's change from the clean crops, and,
for a model with an ethnicity head, its accuracy on UTKFace's ethnicity labels per
condition (All-Age-Faces' are unknown) and the share of faces it calls Asian. With
--bias, also each condition's mean bias (prediction - truth) per age group: a degraded
face is pulled toward the middle ages, the young read older. Without --model it scores
the shipped model.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from agecli.eval.metrics import age_group, age_group_names  # noqa: E402
from agecli.infer.default_model import default_model_path  # noqa: E402
from agecli.data.dataset import fill_beyond_photo  # noqa: E402
from agecli.infer.runners import open_runner  # noqa: E402
from agecli.vocab import RACES  # noqa: E402
from cross_dataset import SETS, test_crops  # noqa: E402



def grayscale(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def sepia_print(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A faded brown print: grey tones tinted, contrast halved, lifted blacks."""
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = 60 + 0.55 * g
    return np.clip(np.stack([g * 1.07, g * 0.92, g * 0.72], axis=2), 0, 255).astype(np.uint8)


def faded_colour_scan(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A faded colour print, scanned: its cyan dye gone (a magenta cast), contrast cut to
    0.6 over lifted blacks, the scanner's softness. Outside `DATA.AUG print`'s family
    (whose tints are warm and whose prints are sharp), so it checks that training on
    faded prints carries over to prints faded another way."""
    x = img.astype(np.float32) * np.array([1.08, 0.86, 1.02], np.float32)
    x = 45 + 0.6 * x
    return cv2.GaussianBlur(np.clip(x, 0, 255).astype(np.uint8), (0, 0), sigmaX=1.0)


def low_res(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    small = cv2.resize(img, (24, 24), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigmaX=2.0)


def jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 15])
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img.astype(np.float32) + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def border_filled(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return fill_beyond_photo(img)


def border_grey(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The black beyond the photo (0 in every channel) as a flat grey backdrop."""
    out = img.copy()
    out[(img == 0).all(2)] = 128
    return out


CONDITIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray] | None] = {
    "clean": None, "grayscale": grayscale, "sepia print": sepia_print, "faded colour scan": faded_colour_scan,
    "24 px": low_res,
    "blur σ2": blur, "JPEG q15": jpeg, "noise σ12": noise, "border filled": border_filled, "border grey": border_grey}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="NAME=PATH (.onnx or .pth); may repeat")
    ap.add_argument("--every", type=int, default=4, help="score every k-th test face")
    ap.add_argument("--bias", action="store_true", help="also the mean bias per age group of each condition")
    args = ap.parse_args()
    models = dict(m.partition("=")[::2] for m in args.model) or {"shipped": str(default_model_path())}
    runners = {name: open_runner(Path(path)) for name, path in models.items()}
    def crop_of(r) -> tuple:
        t = r.meta.get("template")
        return r.meta["img_size"], r.meta["expand"], None if t is None else tuple(map(tuple, t))

    recipes = {crop_of(r): r.meta for r in runners.values()}  # one crop per recipe, however many models
    results: dict[tuple[str, str, str], float] = {}
    biases: dict[tuple[str, str, str], pd.Series] = {}
    ethnicity: dict[tuple[str, str, str], tuple[float, float]] = {}  # (accuracy on known labels, Asian share)
    for ds in SETS:
        for recipe, meta in recipes.items():
            data = test_crops(ds, meta)
            crops, ages = data.images[:: args.every], data.ages[:: args.every]
            races = data.races[:: args.every]
            for cond, fn in CONDITIONS.items():
                rng = np.random.default_rng(0)
                x = crops if fn is None else np.stack([fn(c, rng) for c in crops])
                for name, r in runners.items():
                    if crop_of(r) == recipe:
                        out = r.predict(x)
                        err = out["age"] - ages
                        if "race_probs" in out and (races >= 0).any():
                            called = out["race_probs"].argmax(1)
                            ethnicity[name, ds, cond] = (float((called == races)[races >= 0].mean()),
                                                         float((called == RACES.index("asian")).mean()))
                        results[name, ds, cond] = float(np.abs(err).mean())
                        biases[name, ds, cond] = pd.Series(err).groupby([age_group(a) for a in ages]).mean()
        print(f"{ds}: {len(ages)} faces scored", flush=True)
    print("\n| model | set | " + " | ".join(CONDITIONS) + " |")
    print("|---|---|" + "---|" * len(CONDITIONS))
    for name in models:
        for ds in SETS:
            clean = results[name, ds, "clean"]
            cells = [f"{clean:.2f}"] + [f"{results[name, ds, c]:.2f} ({results[name, ds, c] - clean:+.2f})"
                                        for c in list(CONDITIONS)[1:]]
            print(f"| {name} | {ds} | " + " | ".join(cells) + " |")
    if ethnicity:
        print("\nethnicity (UTKFace's labels): accuracy / share of faces called Asian")
        print("\n| model | set | " + " | ".join(CONDITIONS) + " |")
        print("|---|---|" + "---|" * len(CONDITIONS))
        for name, ds in sorted({k[:2] for k in ethnicity}, key=lambda k: list(models).index(k[0])):
            print(f"| {name} | {ds} | " + " | ".join("%.3f / %.2f" % ethnicity[name, ds, c] for c in CONDITIONS) + " |")
    if args.bias:
        groups = age_group_names()
        print("\nmean bias (prediction - truth, years) per age group")
        print("\n| model | set | condition | " + " | ".join(groups) + " |")
        print("|---|---|---|" + "---|" * len(groups))
        for name in models:
            for ds in SETS:
                for cond in CONDITIONS:
                    b = biases[name, ds, cond]
                    print(f"| {name} | {ds} | {cond} | " + " | ".join(f"{b.get(g, np.nan):+.2f}" for g in groups) + " |")


if __name__ == "__main__":
    main()
