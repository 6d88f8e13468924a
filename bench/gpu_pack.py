"""Train the default model's recipe on a lent GPU from a compact pack of aligned crops.

A GPU machine here gets only the checkout and a few carried folders (64 MiB in all), not
the collections, so the crops travel packed: every train and valid face of the prepared
sets, cut by the one crop function at the model's size and expand, WebP-encoded into one
`.npz` (~45 MB for UTKFace + All-Age-Faces at 128 px, quality 75).

    # here (CPU): pack the prepared sets
    python bench/gpu_pack.py pack --data-dir data/utkface --data-dir data/aaf --out gpu/pack.npz
    # there (device run, carry gpu/): unpack and train with agecli's own trainer (CUDA, AMP)
    python3 bench/gpu_pack.py train --pack gpu/pack.npz --out $OUT/run -- \
        --pretrained weights/agecli_default.pth TRAIN.EPOCHS 20 TRAIN.LR 0.0003

`unpack` writes each crop as an image with an aligned CSV whose box makes `crop_face`
return that crop unchanged (eyes already level: deg 0; a centred box of side S / (1 +
expand)), so `agecli train-mt` runs on it as on any prepared set. A pack of template
crops (`pack --align template`) also gets landmarks on the template's points in that box,
which the template fits exactly, so its run is DATA.ALIGN template (`train` adds it, and
the pack's expand) and the model carries the template as one trained here would. The
test splits stay out of the pack: the model comes back and is scored here (`bench/cross_dataset.py`).
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

SPLITS = ("train", "valid")
LABELS = ("age", "gender", "race")


def pack(data_dirs: list[Path], out: Path, size: int, expand: float, quality: int, align: str = "box") -> dict:
    """Crop, encode and store every train/valid face of each prepared set in `data_dirs`
    (one set per folder, named by its CSVs); returns what it wrote."""
    from agecli.data.dataset import AlignedFaces
    from agecli.data.records import csv_name, resolve_image_root
    from agecli.face.align import FACE_TEMPLATE

    template = [list(p) for p in FACE_TEMPLATE] if align == "template" else None

    blobs, arrays, index = [], {}, []
    for d in data_dirs:
        found = sorted(d.glob("*_train_align.csv"))
        if len(found) != 1:
            raise SystemExit(f"{d}: expected one prepared set (NAME_train_align.csv), found {len(found)}")
        name = found[0].name[:-len("_train_align.csv")]
        for split in SPLITS:
            faces = AlignedFaces.load(d / csv_name(name, split), resolve_image_root(d, name), size, expand,
                                      d / ".agecli_cache", log=print, template=template)
            encoded = [cv2.imencode(".webp", np.ascontiguousarray(im[:, :, ::-1]), [cv2.IMWRITE_WEBP_QUALITY, quality])[1]
                       for im in faces.images]
            blobs += encoded
            key = f"{name}/{split}"
            arrays[f"{key}/labels"] = np.stack([faces.ages, faces.genders, faces.races], 1).astype(np.float32)
            index.append({"set": name, "split": split, "n": len(encoded)})
    lengths = np.array([len(b) for b in blobs], np.int64)
    meta = {"size": size, "expand": expand, "quality": quality, "parts": index, "template": template}
    buf = io.BytesIO()
    np.savez(buf, blob=np.concatenate(blobs) if blobs else np.zeros(0, np.uint8), lengths=lengths,
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(out)
    return {**meta, "bytes": out.stat().st_size, "faces": int(len(lengths))}


def unpack(pack_path: Path, out: Path) -> list[Path]:
    """Each set of the pack as a prepared folder under `out` (images/ + aligned CSVs);
    returns the folders, in the pack's order."""
    from agecli.data.records import csv_name

    z = np.load(pack_path)
    meta = json.loads(z["meta"].tobytes())
    size, expand, template = meta["size"], meta["expand"], meta.get("template")
    side = size / (1 + expand)  # crop_face's square: side x (1 + expand) = the whole image
    lo, hi = (size - side) / 2, (size + side) / 2
    landmarks = {} if template is None else {  # the template's points in that square: it fits them exactly
        f"lm{i}": lo + v * side for i, v in enumerate(np.asarray(template, np.float64).reshape(-1), 1)}
    ends = np.cumsum(z["lengths"])
    blob, k, folders = z["blob"], 0, []
    for part in meta["parts"]:
        folder = out / part["set"]
        (folder / "images").mkdir(parents=True, exist_ok=True)
        labels = z[f"{part['set']}/{part['split']}/labels"]
        rows = []
        for i in range(part["n"]):
            photo = f"images/{part['split']}_{i:06d}.webp"
            start = ends[k - 1] if k else 0
            (folder / photo).write_bytes(blob[start:ends[k]].tobytes())
            age, gender, race = labels[i]
            rows.append({"photo": photo, "age": float(age), "deg": 0.0, "box1": lo, "box2": lo, "box3": hi,
                         "box4": hi, "gender": None if gender < 0 else int(gender),
                         "race": None if race < 0 else int(race), **landmarks})
            k += 1
        frame = pd.DataFrame(rows)
        for c in ("gender", "race"):
            frame[c] = frame[c].astype("Int64")
        frame.to_csv(folder / csv_name(part["set"], part["split"]), index=False)
        if folder not in folders:
            folders.append(folder)
    return folders


def train(pack_path: Path, out: Path, work: Path, extra: list[str]) -> int:
    """Unpack, then `agecli train-mt` on every set of the pack with the default recipe's
    size and augmentation; `extra` (the start, epochs, learning rate) follows it."""
    folders = unpack(pack_path, work)
    meta = json.loads(np.load(pack_path)["meta"].tobytes())
    align = ["DATA.ALIGN", "template"] if meta.get("template") else []
    cmd = [sys.executable, "-m", "agecli", "train-mt", "--dataset", ",".join(f.name for f in folders),
           *[a for f in folders for a in ("--data-dir", str(f))], "--aug", "--checkpoint", str(out),
           "--exist-ok", "MODEL.IMG_SIZE", str(meta["size"]), "DATA.EXPAND", str(meta["expand"]), *align, *extra]
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd).returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="crop and pack the prepared sets")
    p.add_argument("--data-dir", type=Path, action="append", required=True,
                   help="a prepared set's folder (data/utkface); once per set")
    p.add_argument("--out", type=Path, default=Path("gpu/pack.npz"))
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--expand", type=float, default=0.25)
    p.add_argument("--quality", type=int, default=75, help="WebP quality of the packed crops")
    p.add_argument("--align", choices=("box", "template"), default="box", help="the crops' alignment (DATA.ALIGN)")
    u = sub.add_parser("unpack", help="write the pack's sets as prepared folders")
    u.add_argument("--pack", type=Path, required=True)
    u.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("train", help="unpack and train-mt; arguments after -- go to train-mt")
    t.add_argument("--pack", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True, help="the run folder (best.pth, last.pth, log.csv)")
    t.add_argument("--work", type=Path, default=Path("/tmp/agecli_pack"), help="where the crops are unpacked")
    t.add_argument("extra", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.cmd == "pack":
        print(json.dumps(pack(args.data_dir, args.out, args.size, args.expand, args.quality, args.align)))
    elif args.cmd == "unpack":
        print("\n".join(str(f) for f in unpack(args.pack, args.out)))
    else:
        sys.exit(train(args.pack, args.out, args.work, [a for a in args.extra if a != "--"]))


if __name__ == "__main__":
    main()
