"""Heads on top of a backbone, and the model that decodes them into ages.

A head's raw outputs go to the losses; `AgeNet.predict` turns them into
age / std / distribution (+ gender / ethnicity probabilities) for every runner.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OptionError
from .backbones import build_backbone
from .meta import ATTRIBUTE_OUTPUTS

HEADS = ("dist", "reg", "range", "mt")
N_GENDER, N_RACE = 2, 5


class AgeNet(nn.Module):
    """Backbone + age head.

    head "dist": logits over ages age_min..age_max (CE, LDL, mean-variance, EMD, focal).
    head "reg": one number, the age (L1/MSE).
    head "range": logits over `range_width`-year bins, read out at the bin centres.
    head "mt": gender and ethnicity heads whose probabilities join the shared features
    that feed the age distribution layer.
    """

    def __init__(self, arch: str, head: str, age_min: int = 0, age_max: int = 100, range_width: int = 5,
                 dropout: float = 0.2, pretrained: bool | str = False, set_heads: int = 1) -> None:
        super().__init__()
        if head not in HEADS:
            raise OptionError(f"unknown head {head!r}; choose from {HEADS}")
        self.head, self.age_min, self.age_max = head, age_min, age_max
        self.backbone = build_backbone(arch, pretrained)
        nf = self.backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.set_fc = nn.ModuleList()  # per-collection age layers beyond `fc` (dist and mt heads only)
        if head == "reg":
            bins = torch.zeros(1)
            self.fc = nn.Linear(nf, 1)
        elif head == "range":
            edges = torch.arange(age_min, age_max + 1, range_width, dtype=torch.float32)
            bins = edges + min(range_width, age_max + 1 - age_min) / 2 - 0.5
            self.fc = nn.Linear(nf, len(edges))
        else:
            bins = torch.arange(age_min, age_max + 1, dtype=torch.float32)
            extra = N_GENDER + N_RACE if head == "mt" else 0
            self.fc = nn.Linear(nf + extra, len(bins))
            # MODEL.SET_HEADS: one more age layer per training collection beyond the first
            # (`fc` is the first's). Each collection's faces train their own layer, so how a
            # collection labels ages (its annotators' habits, its age range) lives in that
            # layer instead of in features that recognise the collection from the picture;
            # at inference the layers' distributions are averaged.
            self.set_fc.extend(nn.Linear(nf + extra, len(bins)) for _ in range(set_heads - 1))
        if head == "mt":
            self.gender_fc = nn.Linear(nf, N_GENDER)
            self.race_fc = nn.Linear(nf, N_RACE)
        self.register_buffer("bins", bins, persistent=False)
        # Calibrates the distribution's spread into an honest +-1 std (see calibrate_std);
        # set from the checkpoint's meta, so it lives in the exported graph too.
        self.register_buffer("std_scale", torch.ones(()), persistent=False)
        # Estimate each face from its crop and its mirror image and mix the two answers
        # (set from the checkpoint's meta `flip_tta`, so it lives in the exported graph).
        self.flip_tta = False
        # The mirror image seen a little closer: its middle `mirror_zoom` of the crop's side
        # scaled back up (meta `mirror_zoom`; 1 = the whole mirror image). Two looks that
        # differ in scale as well as side disagree more, so their mixture errs less.
        self.mirror_zoom = 1.0
        # Fed as it is (meta `mirror_rescale` false), that middle is a smaller input: the same
        # face at the crop's own scale, framed tighter, and a cheaper second pass.
        self.mirror_rescale = True
        self._zoom_box: tuple[int, int] | None = None  # (offset, side) in pixels, from set_mirror_zoom
        # attributes computed (the ethnicity head still feeds the age layer) but not given
        # (set from the checkpoint's meta `withheld`: the exported graph has no such output)
        self.withheld: frozenset[str] = frozenset()
        # Black outside this part of the crop (left, top, right, bottom fractions; set from
        # the checkpoint's meta `window`, so training, every runner and the graph agree).
        self.window: tuple[float, float, float, float] | None = None
        self.register_buffer("keep", torch.ones(1, 1), persistent=False)  # 1 inside the window
        self.register_buffer("black", -torch.ones(3), persistent=False)  # a 0 pixel, normalised

    def set_window(self, window, size: int, mean, std) -> None:
        """Black outside `window` for `size` x `size` inputs (None: the whole crop)."""
        self.window = tuple(window) if window else None
        keep = torch.ones(size, size)
        if self.window:
            left, top, right, bottom = self.window
            rows, cols = torch.zeros(size), torch.zeros(size)
            rows[round(top * size):round(bottom * size)] = 1
            cols[round(left * size):round(right * size)] = 1
            keep = rows[:, None] * cols[None, :]
        self.keep = keep.to(self.keep.device)
        self.black = torch.tensor([(0.0 - m) / s for m, s in zip(mean, std)], dtype=torch.float32,
                                  device=self.black.device)

    def set_mirror_zoom(self, zoom: float, size: int, rescale: bool = True) -> None:
        """The mirror pass sees the centre `zoom` x `zoom` of each `size` px crop, scaled back
        to `size` (1: the whole crop) or, `rescale` false, as it is. Pixel counts are fixed
        here, so the exported graph holds constants."""
        self.mirror_zoom, self.mirror_rescale = float(zoom), bool(rescale)
        side = round(size * self.mirror_zoom)
        self._zoom_box = ((size - side) // 2, side) if side < size else None

    def mirror_view(self, x: torch.Tensor) -> torch.Tensor:
        """The second look of `flip_tta`: the mirror image, zoomed on its centre (or only
        its centre, unscaled)."""
        x = x.flip(3)  # NCHW: the mirror image flips the width axis
        if self._zoom_box is None:
            return x
        off, side = self._zoom_box
        middle = x[:, :, off:off + side, off:off + side]
        if not self.mirror_rescale:
            return middle
        return F.interpolate(middle, size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)

    def _windowed(self, x: torch.Tensor) -> torch.Tensor:
        keep = self.keep.to(x.dtype)
        return x * keep + self.black.to(x.dtype)[:, None, None] * (1 - keep)

    def _age_logits(self, feat: torch.Tensor, sets: torch.Tensor | None) -> torch.Tensor:
        """The age layer's logits; with per-collection layers, each face's own collection's
        (`sets`, in training) or the log of their averaged distributions (inference)."""
        if not len(self.set_fc):
            return self.fc(feat)
        each = torch.stack([self.fc(feat)] + [fc(feat) for fc in self.set_fc])  # (sets, N, bins)
        if sets is not None:
            return each.gather(0, sets.view(1, -1, 1).expand(1, -1, each.shape[2])).squeeze(0)
        return torch.logsumexp(each.float().log_softmax(2), 0) - math.log(len(self.set_fc) + 1)

    def forward(self, x: torch.Tensor, sets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Raw outputs: {'logits' | 'age', and 'gender_logits', 'race_logits' for mt}.
        `sets`: each face's training collection (index), for per-collection age layers."""
        if self.window is not None:
            x = self._windowed(x)
        feat = self.dropout(self.backbone(x))
        if self.head == "reg":
            return {"age": self.fc(feat).squeeze(1) + (self.age_min + self.age_max) / 2}
        if self.head != "mt":
            return {"logits": self._age_logits(feat, sets)}
        g, r = self.gender_fc(feat), self.race_fc(feat)
        joint = torch.cat([feat, g.softmax(1), r.softmax(1)], 1)
        return {"logits": self._age_logits(joint, sets), "gender_logits": g, "race_logits": r}

    def decode(self, out: dict[str, torch.Tensor], pairs: bool = False) -> dict[str, torch.Tensor]:
        """Raw outputs -> age, std (the model's own spread), probs, gender/ethnicity probs.
        `pairs`: the batch is N crops then their N mirror images; each face's answer is
        the mixture of its two (probabilities averaged, then age and std read from them)."""
        def mix(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(2, -1, *t.shape[1:]).mean(0) if pairs else t

        if "age" in out:
            age = mix(out["age"]).clamp(self.age_min, self.age_max)
            return {"age": age, "std": torch.zeros_like(age)}
        probs = mix(out["logits"].float().softmax(1))
        age = probs @ self.bins
        var = probs @ (self.bins ** 2) - age ** 2
        res = {"age": age, "std": var.clamp_min(0).sqrt() * self.std_scale, "probs": probs}
        if "gender_logits" in out:
            res["gender_probs"] = mix(out["gender_logits"].float().softmax(1))
            res["race_probs"] = mix(out["race_logits"].float().softmax(1))
        return res

    def predict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.flip_tta:
            return self.decode(self(x))
        mirror = self.mirror_view(x)
        if self._zoom_box is None or self.mirror_rescale:  # the two looks the same size: one batch
            return self.decode(self(torch.cat([x, mirror])), pairs=True)
        first, second = self(x), self(mirror)  # a smaller second look: its own pass
        return self.decode({k: torch.cat([v, second[k]]) for k, v in first.items()}, pairs=True)


def mix_looks(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Raw outputs of N crops then their N second looks -> the raw outputs of each face's
    mixture (logits that are the log of the two looks' mean probabilities), what
    `decode(pairs=True)` reads: so training on the mixture trains what inference gives."""
    def mixed(logits: torch.Tensor) -> torch.Tensor:
        logp = logits.float().log_softmax(1).reshape(2, -1, logits.shape[1])
        return torch.logsumexp(logp, 0) - math.log(2)

    return {k: mixed(v) for k, v in out.items()}


def calibrate_std(pred: np.ndarray, std: np.ndarray, true: np.ndarray, coverage: float = 0.683) -> float:
    """The factor that makes +-1 std cover `coverage` of the true ages (a normal's 68.3%).

    A label-distribution head's spread reflects its training targets (sigma 2 years),
    not its error; one factor fitted on the validation faces makes "31 +-6" mean that
    the true age lies in 25-37 about two times in three."""
    ratio = np.abs(pred - true) / np.maximum(std, 1e-3)
    return float(np.quantile(ratio, coverage)) if len(ratio) else 1.0


class Predictor(nn.Module):
    """What export traces: image batch -> decoded outputs, as a tuple in OUTPUT_NAMES order."""

    def __init__(self, net: AgeNet) -> None:
        super().__init__()
        self.net = net

    def output_names(self) -> list[str]:
        names = ["age", "std"]
        if self.net.head != "reg":
            names.append("probs")
        if self.net.head == "mt":
            names += [out for a, out in ATTRIBUTE_OUTPUTS.items() if a not in self.net.withheld]
        return names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        d = self.net.predict(x)
        return tuple(d[k] for k in self.output_names())
