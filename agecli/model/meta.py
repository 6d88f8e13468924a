"""What a model records about itself, without torch: the checkpoint format tag, the
normalisation, the metadata dict every checkpoint and ONNX file carries (`model_meta`),
the typed view of it every runner gives (`ModelMeta`, with the one rule for which crop
expansion to use), and the short file hash reports quote. Torch-free, so `val` on an
ONNX model needs no torch."""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UsageError

FORMAT = "agecli-checkpoint-1"
MEAN = (0.5, 0.5, 0.5)  # EfficientNet-Lite's normalisation: (x/255 - 0.5) / 0.5
STD = (0.5, 0.5, 0.5)


def model_meta(cfg: dict, head: str, loss: str) -> dict[str, Any]:
    """The metadata a new model carries: everything inference needs to feed it."""
    m = cfg["MODEL"]
    meta = {"format": FORMAT, "arch": m["ARCH"], "head": head, "loss": loss, "img_size": m["IMG_SIZE"],
            "expand": cfg["DATA"]["EXPAND"], "age_min": m["AGE_MIN"], "age_max": m["AGE_MAX"],
            "range_width": m["RANGE_WIDTH"], "dropout": m["DROPOUT"], "mean": list(MEAN), "std": list(STD), "color": "RGB"}
    window = parse_window(cfg["DATA"].get("WINDOW", ""))
    if window:
        meta["window"] = list(window)
    template = crop_template(cfg)
    if template is not None:
        meta["template"] = template
    return meta


def crop_template(cfg: dict) -> list[list[float]] | None:
    """The landmark template a run's crops are cut with (DATA.ALIGN template), None for
    the box alignment. Written into the model, so a model keeps the template it learnt."""
    if cfg["DATA"].get("ALIGN", "box") != "template":
        return None
    from ..face.align import FACE_TEMPLATE

    return [list(p) for p in FACE_TEMPLATE]


def parse_window(text: str) -> tuple[float, float, float, float] | None:
    """DATA.WINDOW "left,top,right,bottom" (fractions of the crop) -> a tuple, "" -> None.

    The model sees black outside that window, in training and in every runner alike
    (`AgeNet.forward`): faces from a collection of tight chips (UTKFace's end at the
    chip, black beyond) and faces with their surroundings (All-Age-Faces, users'
    photos) then look alike, so the black border cannot tell a model which collection
    (and which labelling habits) a face came from."""
    if not text:
        return None
    try:
        left, top, right, bottom = (float(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"DATA.WINDOW {text!r}: give left,top,right,bottom as fractions of the crop") from None
    if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1) or abs(left - (1 - right)) > 1e-6:
        raise ValueError(f"DATA.WINDOW {text!r}: need 0 <= left < right <= 1, 0 <= top < bottom <= 1 and "
                         "left = 1 - right (the window must look the same in a mirror image)")
    return left, top, right, bottom


EXPAND_RANGE = (0.0, 3.0)  # crop margin: 0 = the face box, 3 = four times its side
IMG_SIZE_RANGE = (32, 1024)
MIRROR_ZOOM_RANGE = (0.5, 1.0)  # the share of the crop's side the mirror pass sees (AgeNet.mirror_view)


def expand_problem(value: object) -> str | None:
    """Why `value` cannot be a crop expansion (None when it can): a finite number in
    EXPAND_RANGE. One rule for the API, every command's --expand and model metadata."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{value!r} is not a finite number"
    lo, hi = EXPAND_RANGE
    return None if lo <= value <= hi else f"{value:g} is outside {lo:g}-{hi:g}"


def meta_problem(meta: object) -> str | None:
    """Why a model's metadata cannot feed it (None when it can): the crop facts every
    runner reads must be there with usable values."""
    if not isinstance(meta, Mapping):
        return "its metadata is not a JSON object"
    size = meta.get("img_size")
    lo, hi = IMG_SIZE_RANGE
    if isinstance(size, bool) or not isinstance(size, int) or not lo <= size <= hi:
        return f"metadata img_size {size!r} is not a whole number of pixels in {lo}-{hi}"
    withheld = meta.get("withheld")
    if withheld is not None and not (isinstance(withheld, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in withheld.items())):
        return f"metadata withheld {str(withheld)[:60]} is not attribute -> reason"
    zoom = meta.get("mirror_zoom", 1.0)
    if isinstance(zoom, bool) or not isinstance(zoom, (int, float)) or not MIRROR_ZOOM_RANGE[0] <= zoom <= 1:
        return f"metadata mirror_zoom {str(zoom)[:30]} is not a fraction of the crop in {MIRROR_ZOOM_RANGE[0]:g}-1"
    if not isinstance(meta.get("mirror_rescale", True), bool):
        return f"metadata mirror_rescale {str(meta.get('mirror_rescale'))[:30]} is not true or false"
    template = meta.get("template")
    if template is not None and not _is_template(template):
        return f"metadata template {str(template)[:60]} is not five (x, y) points"
    if meta.get("expand") is None:
        return None  # older checkpoints: the commands ask for --expand
    why = expand_problem(meta["expand"])
    return None if why is None else f"metadata expand {why}"


def _is_template(value: object) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 5
            and all(isinstance(p, (list, tuple)) and len(p) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p) for p in value))


# the attributes beyond age and the model output that answers each: what a model can give
# (`ModelMeta.attributes`) and what the exported graph leaves out when one is `withheld`
ATTRIBUTE_OUTPUTS = {"gender": "gender_probs", "ethnicity": "race_probs"}


@dataclass(frozen=True, eq=False)
class ModelMeta(Mapping):
    """A model's metadata, read-only and typed: what every runner gives as `meta`.

    The file formats keep the plain JSON dict (`model_meta` writes it; `raw` is it, as
    read); the fields below are the facts inference reads. It is also a read-only
    mapping of `raw` (`meta["arch"]`, `meta.get("metrics")`, `dict(meta)`), so code
    that reads keys the fields do not name keeps working. Build one with `from_dict`,
    which refuses metadata no runner could feed (`meta_problem`)."""

    img_size: int
    expand: float | None  # None: an older checkpoint that did not record it
    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD
    arch: str | None = None
    head: str | None = None
    loss: str | None = None
    age_min: int | None = None
    age_max: int | None = None
    dataset: str | None = None  # what it was trained on ("utkface", "utkface,aaf")
    data_dir: str | None = None
    outputs: tuple[str, ...] | None = None  # ONNX output names (None in a checkpoint: its head says)
    template: tuple[tuple[float, float], ...] | None = None  # a template-crop model's 5 landmark points
    # attributes a head computes but the model does not give, each with the reason (meta `withheld`)
    withheld: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the dict as read: never changed

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any], name: str = "model") -> ModelMeta:
        """The typed view of a metadata dict (a ModelMeta comes back as it is);
        CheckpointError naming `name` when it cannot feed a model."""
        if isinstance(meta, ModelMeta):
            return meta
        problem = meta_problem(meta)
        if problem:
            raise CheckpointError(f"{name}: {problem}; not a usable agecli model")
        outputs = meta.get("outputs")
        return cls(img_size=int(meta["img_size"]),
                   expand=None if meta.get("expand") is None else float(meta["expand"]),
                   mean=tuple(float(v) for v in meta.get("mean", MEAN)), std=tuple(float(v) for v in meta.get("std", STD)),
                   arch=meta.get("arch"), head=meta.get("head"), loss=meta.get("loss"),
                   age_min=meta.get("age_min"), age_max=meta.get("age_max"), dataset=meta.get("dataset") or None,
                   data_dir=meta.get("data_dir") or None, outputs=None if outputs is None else tuple(outputs),
                   template=None if meta.get("template") is None else tuple(tuple(float(v) for v in p)
                                                                           for p in meta["template"]),
                   withheld=dict(meta.get("withheld") or {}), raw=dict(meta))

    def crop_expand(self, override: float | None = None) -> tuple[float, str | None]:
        """The crop expansion to use, decided here for the API, `demo` and `val`: `override`
        when given, else the model's own; with the warning to give when `override` differs
        from what the model was trained with (None when it does not). UsageError when
        neither is known (an older checkpoint without its expand, and no override)."""
        if override is None:
            if self.expand is None:
                raise UsageError("`expand` is required (the model does not record the box expansion it was "
                                 "trained with)", setting="expand")
            return self.expand, None
        note = None
        if self.expand is not None and abs(float(override) - self.expand) > 1e-9:
            note = (f"`expand` {float(override):g} differs from the model's {self.expand:g}: the crops differ "
                    "from training, expect less accurate ages")
        return float(override), note

    @property
    def attributes(self) -> frozenset[str]:
        """What the model can answer: its age always, gender and ethnicity where it has
        those heads (the ONNX `outputs`, or a checkpoint's `mt` head) and does not
        withhold them (`withheld`)."""
        outputs = self.outputs
        if outputs is None:
            outputs = tuple(ATTRIBUTE_OUTPUTS.values()) if self.head == "mt" else ()
        has = {"age"} | {a for a, out in ATTRIBUTE_OUTPUTS.items() if out in outputs}
        return frozenset(has - set(self.withheld))

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


RESUME_KEYS = ("arch", "head", "loss", "img_size", "expand", "age_min", "age_max", "dataset")


def resume_mismatch(run: dict, now: dict) -> str | None:
    """The first fact a resumed run must keep that differs between the run's metadata and
    this command's (`key=run's value, this command's`), or None. A run from before
    datasets were recorded is not held to them."""
    for k in RESUME_KEYS:
        if k == "dataset" and "dataset" not in run:
            continue
        if run.get(k) != now.get(k):
            return f"{k}={run.get(k)!r}, this command {now.get(k)!r}"
    return None


def file_hash(path: str | Path) -> str:
    """Short sha256 of a file: the identity reports quote."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
