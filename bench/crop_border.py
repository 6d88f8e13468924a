"""How much of each collection's crops is black border, and the window that UTKFace's chips fill.

    python bench/crop_border.py
    python bench/crop_border.py --align template --expand 0.3   # the crop of DATA.ALIGN template

UTKFace's chips end at the face, so the crop around its box is partly black; faces
cut from whole photos (All-Age-Faces, FairFace-540, users' photos) are not. Prints the
mean share of pure-black pixels in the test crops of each prepared set (and FairFace-540
when `bench/fairface.py` has detected it), and the rectangle of the UTKFace train
crops' pixels that have content in at least 80 % of them (every 7th train crop, as the
window was chosen; all of them give columns 19-107): the card's `DATA.WINDOW`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from agecli.data.dataset import AlignedFaces
from agecli.data.records import csv_name, resolve_image_root
from agecli.face.align import FACE_TEMPLATE

SIZE = 128


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--align", choices=("box", "template"), default="box")
    ap.add_argument("--expand", type=float, default=0.25)
    args = ap.parse_args()
    template = FACE_TEMPLATE if args.align == "template" else None

    def crops(folder: Path, name: str, split: str) -> np.ndarray:
        return AlignedFaces.load(folder / csv_name(name, split), resolve_image_root(folder, name), SIZE,
                                 args.expand, folder / ".agecli_cache", template=template).images

    for name in ("utkface", "aaf", "fairface540"):
        folder = Path("data") / name
        if (folder / csv_name(name, "test")).exists():
            black = (crops(folder, name, "test").max(-1) == 0).mean((1, 2))
            print(f"{name}: {black.mean():.1%} of a test crop is black on average")
    share = (crops(Path("data/utkface"), "utkface", "train")[::7].max(-1) > 0).mean(0)  # every 7th, as chosen
    rows, cols = np.where(share >= 0.8)
    print(f"every 7th UTKFace train crop: content in >= 80 % of them in rows {rows.min()}-{rows.max()}, "
          f"columns {cols.min()}-{cols.max()} of {SIZE}: DATA.WINDOW {cols.min() / SIZE:.3f},{rows.min() / SIZE:.3f},"
          f"{(cols.max() + 1) / SIZE:.3f},{(rows.max() + 1) / SIZE:.3f}")


if __name__ == "__main__":
    main()
