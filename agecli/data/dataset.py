"""Aligned face crops for training and evaluation, cached as one uint8 array per split.

The first use of an aligned CSV decodes and warps every image with `crop_face` (the
same function inference uses) and stores the crops in `<cache>/<key>.npy`; the key
covers the CSV's content, crop size and expand, so a changed input never reuses a
stale cache. Later epochs and runs read the array and do no JPEG work at all.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from ..errors import DataError
from ..face.align import CROP_VERSION, box_problem, crop_face, template_params
from ..parallel import ordered_map
from ..vocab import AUG_KINDS
from .images import ImageError, load_rgb
from .records import LANDMARK_COLUMNS, read_align_csv

if TYPE_CHECKING:  # torch only where batches are built (training): `val` on ONNX runs without it
    import torch



def _crop_rows(args: tuple[str, list[tuple], float, int, list | None]) -> tuple[np.ndarray, list[str]]:
    """Crops of CSV rows (photo, deg, box1..box4[, lm1..lm10]): the stored box alignment,
    or with `template` the landmark template fitted to the stored landmarks."""
    root, rows, expand, size, template = args
    cv2.setNumThreads(1)
    out = np.zeros((len(rows), size, size, 3), np.uint8)
    errors = []
    for i, (photo, deg, b1, b2, b3, b4, *landmarks) in enumerate(rows):
        try:
            rgb = load_rgb(os.path.join(root, photo))
        except ImageError as e:
            errors.append(str(e))
            continue
        box = (b1, b2, b3, b4)
        if template is not None:
            p = template_params(np.asarray(landmarks, np.float64).reshape(5, 2), rgb.shape[0], rgb.shape[1], template)
            deg, box = p.deg, p.box
        problem = box_problem(rgb.shape[0], rgb.shape[1], deg, box)
        if problem is None:
            out[i] = crop_face(rgb, deg, box, expand, size)
        errors.append(problem or "")
    return out, errors


def _images_state(root: str | Path, photos) -> bytes:
    """Size and modification time of every image: part of the cache key, so a photo
    replaced under the same name is cropped again instead of answered from the old crop."""
    h = hashlib.sha256()
    for photo in photos:
        try:
            st = os.stat(os.path.join(root, photo))
            h.update(f"{st.st_size}:{st.st_mtime_ns};".encode())
        except OSError:
            h.update(b"-;")
    return h.digest()


@dataclass
class AlignedFaces:
    """All crops of one aligned CSV in memory, with their labels (-1 = unknown)."""

    images: np.ndarray  # (N, S, S, 3) uint8 RGB
    ages: np.ndarray  # (N,) float32, true ages (not clipped)
    genders: np.ndarray  # (N,) int64
    races: np.ndarray  # (N,) int64
    frame: pd.DataFrame  # the CSV rows, in the same order
    skipped: list[str] = field(default_factory=list)  # "photo: reason" of rows whose image could not be read

    def __len__(self) -> int:
        return len(self.ages)

    @classmethod
    def load(cls, csv_path: str | Path, image_root: str | Path, size: int, expand: float,
             cache_dir: str | Path | None = None, workers: int = 2, log=None, template=None) -> "AlignedFaces":
        """The split's crops (from the cache when it holds them): the stored box
        alignment, or with `template` (a model trained on template crops) the template
        fitted to the landmarks prepare stored."""
        csv_path = Path(csv_path)
        df = read_align_csv(csv_path)
        lms = []
        if template is not None:
            template = [[float(v) for v in p] for p in template]
            lms = LANDMARK_COLUMNS
            if any(c not in df for c in lms) or df[lms].isna().any(axis=None):
                raise DataError(f"{csv_path}: no face landmarks (columns lm1..lm10), which a model trained on "
                                "template crops is cut from; run `agecli prepare` again to add them")
        key = hashlib.sha256(csv_path.read_bytes() + f"|{Path(image_root).resolve()}|{size}|{expand}|{CROP_VERSION}".encode())
        if template is not None:
            key.update(f"|template {template}".encode())
        key.update(_images_state(image_root, df["photo"]))
        cache = Path(cache_dir) if cache_dir else None
        npy = cache / f"{csv_path.stem}_{size}_{key.hexdigest()[:12]}.npy" if cache else None
        images = _load_cache(npy, df, size, log) if npy is not None else None
        skipped: list[str] = []
        if images is not None:
            mask = npy.with_suffix(".skip.npy")
            if mask.exists():  # rows whose image was unreadable when the cache was built: said every run
                bad = np.load(mask)
                skipped = [f"{p}: unreadable when the crop cache was built" for p in df["photo"][bad]]
                df = df[~bad].reset_index(drop=True)
        else:
            rows = list(df[["photo", "deg", "box1", "box2", "box3", "box4", *lms]].itertuples(index=False, name=None))
            chunk = max(1, math.ceil(len(rows) / (workers * 8)))
            parts = [(str(image_root), rows[i:i + chunk], expand, size, template) for i in range(0, len(rows), chunk)]
            if workers > 1 and len(parts) > 1:
                # the one process pool of agecli (spawned, main script hidden, workers that
                # ignore Ctrl-C and die with their parent), so a script calling this at its
                # top level without a main guard works too
                done = list(ordered_map(_crop_rows, parts, workers))
            else:
                done = [_crop_rows(p) for p in parts]
            images = np.concatenate([d[0] for d in done]) if done else np.zeros((0, size, size, 3), np.uint8)
            errors = [e for d in done for e in d[1]]
            bad = np.array([bool(e) for e in errors], dtype=bool)
            if bad.any():
                skipped = [f"{p}: {e}" for p, e, b in zip(df["photo"], errors, bad) if b]
                images, df = images[~bad], df[~bad].reset_index(drop=True)
            if npy is not None:
                _save_cache(npy, images, bad)
        if skipped and log:
            log(f"{csv_path.name}: {len(skipped)} images could not be read and are skipped (first: {skipped[0]})")
        def labels(col: str) -> np.ndarray:
            if col not in df:
                return np.full(len(df), -1, np.int64)
            return df[col].fillna(-1).astype(np.int64).to_numpy()
        return cls(images, df["age"].to_numpy(np.float32), labels("gender"), labels("race"), df.reset_index(drop=True),
                   skipped)

    @classmethod
    def concat(cls, parts: list["AlignedFaces"]) -> "AlignedFaces":
        """Several sets pooled for one training run (a single set is returned as is)."""
        if len(parts) == 1:
            return parts[0]
        return cls(np.concatenate([p.images for p in parts]), np.concatenate([p.ages for p in parts]),
                   np.concatenate([p.genders for p in parts]), np.concatenate([p.races for p in parts]),
                   pd.concat([p.frame for p in parts], ignore_index=True), [s for p in parts for s in p.skipped])

def _load_cache(npy: Path, df: pd.DataFrame, size: int, log) -> np.ndarray | None:
    """The cached crops, memory-mapped (a set larger than RAM still trains); None when
    absent, or unusable (cut short, corrupt, wrong shape), which is said and rebuilt."""
    if not npy.exists():
        return None
    try:
        images = np.load(npy, mmap_mode="r")
        skipped = npy.with_suffix(".skip.npy")
        rows = len(df) - (int(np.load(skipped).sum()) if skipped.exists() else 0)
        if images.dtype != np.uint8 or images.shape != (rows, size, size, 3):
            raise DataError(f"shape {images.shape}, expected {(rows, size, size, 3)}")
        return images
    except (OSError, ValueError, EOFError) as e:  # DataError is one
        if log:
            log(f"crop cache {npy.name} is unusable ({str(e).splitlines()[0][:120]}); rebuilding it")
        return None


def _save_cache(npy: Path, images: np.ndarray, bad: np.ndarray) -> None:
    """Save the crops (and which rows were unreadable) atomically; a cache that cannot be
    written (read-only data folder, full disk) only costs the next run the crop work."""
    tmp = npy.with_name(npy.stem + ".tmp.npy")
    try:
        npy.parent.mkdir(parents=True, exist_ok=True)
        skipped = npy.with_suffix(".skip.npy")
        if bad.any():
            np.save(skipped, bad)
        else:
            skipped.unlink(missing_ok=True)
        np.save(tmp, images)
        os.replace(tmp, npy)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        # a warning record (the CLI marks it "warning:"), whichever command loads the set
        logging.getLogger("agecli").warning(
            "cannot save the crop cache in %s (%s); continuing without it (set DATA.CACHE_DIR or "
            "`cache_dir` to a writable folder)", npy.parent, e.strerror or e)

def augment(images: np.ndarray, rng: np.random.Generator, kind: str = "basic") -> np.ndarray:
    """Augmentation on uint8 crops (`kind` one of `vocab.AUG_KINDS`): flip, small rotation,
    scale and shift; from `photo` on, also how real photos differ from a curated set: low
    resolution, blur, JPEG artefacts, an occluding patch, and a face at the frame edge (a
    black band, as `crop_face` pads); with `fill`, half the crops have the black beyond
    their photo filled in (`fill_beyond_photo`) first; with `chip`, the other half are
    blacked out beyond a UTKFace chip's edge (`chip_border`): every collection's faces
    then come bordered and borderless alike, and a border says nothing about which."""
    n, s = images.shape[:2]
    out = np.empty_like(images)
    photo = AUG_KINDS.index(kind) >= AUG_KINDS.index("photo")
    # drawn only for fill and chip, so that the seeded stream of the other kinds stays as it was
    fills = rng.random(n) < 0.5 if kind in ("fill", "chip") else np.zeros(n, bool)
    chips = ~fills if kind == "chip" else np.zeros(n, bool)
    edges = rng.uniform(-CHIP_JITTER, CHIP_JITTER, (n, 4)) if kind == "chip" else None
    flips = rng.random(n) < 0.5
    angles = rng.uniform(-10, 10, n)
    scales = rng.uniform(0.9, 1.1, n)
    shifts = rng.uniform(-0.05, 0.05, (n, 2)) * s
    for i in range(n):
        m = cv2.getRotationMatrix2D((s / 2, s / 2), angles[i], scales[i])
        m[:, 2] += shifts[i]
        img = fill_beyond_photo(images[i]) if fills[i] else images[i]
        img = chip_border(img, edges[i]) if chips[i] else img
        img = img[:, ::-1] if flips[i] else img
        out[i] = cv2.warpAffine(np.ascontiguousarray(img), m, (s, s), borderMode=cv2.BORDER_REPLICATE)
        if photo:
            out[i] = _photo_effects(out[i], rng)
    return out


# Where UTKFace's chips have content in a box crop at expand 0.25 (left, top, right, bottom,
# fractions of the crop: bench/crop_border.py), and how far `chip` moves each edge.
CHIP_WINDOW = (0.156, 0.18, 0.844, 0.906)
CHIP_JITTER = 0.04


def chip_border(img: np.ndarray, jitter=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """The crop black beyond CHIP_WINDOW (each edge moved by `jitter`, fractions of the
    crop): any face framed as UTKFace's chips are, the border they carry included."""
    s = img.shape[0]
    lo = [int(round((w + j) * s)) for w, j in zip(CHIP_WINDOW[:2], jitter[:2])]
    hi = [int(round((w + j) * s)) for w, j in zip(CHIP_WINDOW[2:], jitter[2:])]
    out = np.zeros_like(img)
    out[lo[1]:hi[1], lo[0]:hi[0]] = img[lo[1]:hi[1], lo[0]:hi[0]]
    return out


def fill_beyond_photo(img: np.ndarray) -> np.ndarray:
    """The crop with its black beyond the photo (pixels 0 in every channel, as `crop_face`
    pads) filled by the colours of the nearest photo pixels, blurred like an out-of-focus
    background. UTKFace's chips end at the face, so its crops carry a black border that
    no other collection has: a model reads the collection (and that collection's way of
    labelling ages and ethnicity) from it. Filled, a UTKFace face looks like a face from
    anyone's photo, and the model has to read it from the face."""
    beyond = (img == 0).all(2)
    if not beyond.any() or beyond.all():
        return img
    s = img.shape[0]
    # and the photo's edge, which the crop's interpolation darkened
    beyond = cv2.dilate(beyond.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, s // 64)) > 0
    have = (~beyond).astype(np.float32)
    colour = img.astype(np.float32) * have[..., None]

    def blurred(sigma: float, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The mean colour of the photo pixels around each pixel (and their weight), at
        `size` px for speed, brought back to the crop's size."""
        c, w = (cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA) for a in (colour, have))
        c, w = cv2.GaussianBlur(c, (0, 0), sigma * size / s), cv2.GaussianBlur(w, (0, 0), sigma * size / s)
        return (cv2.resize(a, (s, s), interpolation=cv2.INTER_LINEAR) for a in (c, w))

    near_c, near_w = blurred(s / 32, s // 2)  # near the photo, its own colours
    far_c, far_w = blurred(s / 4, 16)  # farther, a wide blur, as an out-of-focus background
    mean = colour.sum((0, 1)) / max(have.sum(), 1.0)
    far = np.where(far_w[..., None] > 1e-3, far_c / np.maximum(far_w, 1e-3)[..., None], mean)
    t = np.clip(near_w / 0.2, 0, 1)[..., None]  # 1 where the near blur has photo pixels enough
    fill = t * near_c / np.maximum(near_w, 1e-3)[..., None] + (1 - t) * far
    return np.where(beyond[..., None], np.clip(fill + 0.5, 0, 255).astype(img.dtype), img)


def _photo_effects(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One crop through a random subset of the ways a real photo degrades a face."""
    s = img.shape[0]
    u = rng.random(5)
    if u[0] < 0.2:  # low resolution: a small face upscaled by the crop
        small = max(8, int(s * rng.uniform(0.2, 0.6)))
        img = cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (s, s),
                         interpolation=cv2.INTER_LINEAR)
    elif u[0] < 0.35:  # focus or motion blur
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.6))
    if u[1] < 0.25:  # JPEG artefacts of a compressed or re-saved photo
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 60))])
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else img
    img = img.copy()
    if u[2] < 0.15:  # an occluder: a hand, a cup, another head
        w, h = (rng.uniform(0.15, 0.4, 2) * s).astype(int)
        x, y = rng.integers(0, s - w), rng.integers(0, s - h)
        img[y:y + h, x:x + w] = rng.integers(0, 256, 3, dtype=np.uint8)
    if u[3] < 0.1:  # the face at the frame edge: the crop's square runs off the photo
        band = int(s * rng.uniform(0.08, 0.3))
        side = rng.integers(4)
        if side == 0:
            img[:, :band] = 0
        elif side == 1:
            img[:, s - band:] = 0
        elif side == 2:
            img[:band] = 0
        else:
            img[s - band:] = 0
    return img


def color_jitter(x: torch.Tensor, gen: torch.Generator, kind: str = "basic") -> torch.Tensor:
    """Brightness, contrast, saturation and gamma jitter on a [0,1] float batch; with
    kind `photo`, also grayscale and colour-cast scans and sensor noise; with `print`, also
    faded prints (lifted blacks, dulled whites, a warm tint), so that an old print or a
    scan of one does not look older than the same face in a fresh photo."""
    import torch

    photo = kind != "basic"

    n = x.shape[0]
    def u(lo: float, hi: float, shape=(n, 1, 1, 1)) -> torch.Tensor:
        return (torch.rand(shape, generator=gen) * (hi - lo) + lo)
    x = x * u(0.8, 1.2)
    if photo:  # a colour cast (old prints, tungsten light) on a third of the faces
        cast = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.3, u(0.85, 1.15, (n, 3, 1, 1)), 1.0)
        x = x * cast
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * u(0.8, 1.2) + mean
    gray = x.mean(1, keepdim=True)
    sat = u(0.7, 1.3)
    if photo:  # black-and-white photos and scans
        sat = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.15, 0.0, sat)
    x = (x - gray) * sat + gray
    if AUG_KINDS.index(kind) >= AUG_KINDS.index("print"):  # a quarter of the faces as faded, tinted prints
        faded = torch.rand(n, 1, 1, 1, generator=gen) < 0.25
        gray = x.mean(1, keepdim=True)
        x_print = gray + (x - gray) * u(0.0, 0.6)
        x_print = x_print * torch.cat([u(1.0, 1.12), u(0.88, 1.0), u(0.65, 0.95)], dim=1)
        lo, hi = u(0.05, 0.3), u(0.75, 1.0)
        x = torch.where(faded, lo + x_print.clamp(0, 1) * (hi - lo), x)
    if photo:
        noisy = (torch.rand(n, 1, 1, 1, generator=gen) < 0.2) * u(0.0, 0.04)
        x = x + torch.randn(x.shape, generator=gen) * noisy
    return x.clamp_(0, 1).pow_(u(0.8, 1.25))


def batch_tensor(images: np.ndarray, mean, std, aug: bool, rng: np.random.Generator | None,
                 gen: torch.Generator | None, kind: str = "basic") -> torch.Tensor:
    """A model-ready batch: optional augmentation of one of `vocab.AUG_KINDS`, then
    normalisation, channels_last."""
    import torch

    if aug:
        images = augment(images, rng, kind)
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    if aug:
        x = color_jitter(x, gen, kind)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    sd = torch.tensor(std).view(1, 3, 1, 1)
    return ((x - m) / sd).contiguous(memory_format=torch.channels_last)
