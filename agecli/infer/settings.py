"""How to run inference, in one object: the runner, where it runs, the detector's
settings, the crop expansion, what each face carries, the int8 and detector choices.

`InferSettings` is built by keyword and checked once, when it is built, against one set
of bounds; `AgeEstimator`, `demo` (`DemoOptions.settings`), `val` (`ValOptions.settings`)
and the demo's worker processes (`WorkerSettings.infer`) all take it, so a new option is
one field here (and its use). Frozen and picklable: it travels to worker processes as
it is.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import OptionError
from ..model.meta import expand_problem
from .pipeline import parse_attributes
from .runners import RUNNERS

MIN_MAX_SIDE = 64  # a photo is never scaled below this side for detection


@dataclass(frozen=True, kw_only=True)
class InferSettings:
    """What every inference entry point takes besides the model file. `attributes` None
    means "what the model has of age and gender"; an explicit set must be met. `expand`
    None means the model's own (`ModelMeta.crop_expand`). `providers` (ONNX Runtime
    execution providers, first preferred; None: CPU, CUDA first on a cuda device) may be
    given as "A,B". Raises OptionError naming the first value out of bounds (`setting`)."""

    runner: str = "auto"  # auto, or a name in runners.RUNNER_TABLE
    device: str = "cpu"  # cpu, cuda or cuda:N
    batch_size: int = 64  # faces per age-model batch, >= 1
    det_threshold: float = 0.8  # the face detector's score threshold, in (0, 1)
    max_side: int = 1280  # photos are scaled to this side for detection, >= MIN_MAX_SIDE
    expand: float | None = None  # crop expansion override, in EXPAND_RANGE (0-3)
    threads: int = 0  # ONNX Runtime and detector threads; 0: its default
    providers: tuple[str, ...] | None = None
    attributes: frozenset[str] | None = None  # besides age: gender, ethnicity
    int8: bool = False  # the shipped int8 detector and (without a model) int8 age model
    detector: Path | None = None  # a face detector network file in place of the float (or int8) one

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS:
            raise OptionError(f"`runner` must be {', '.join(RUNNERS[:-1])} or {RUNNERS[-1]}, not {self.runner!r}",
                              setting="runner")
        if not isinstance(self.device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise OptionError(f"`device` must be cpu, cuda or cuda:N, not {self.device!r}", setting="device")
        if not _number(self.det_threshold) or not 0.0 < self.det_threshold < 1.0:
            raise OptionError("`det_threshold` must be between 0 and 1", setting="det_threshold")
        if not _number(self.max_side) or self.max_side < MIN_MAX_SIDE:
            raise OptionError(f"`max_side` must be at least {MIN_MAX_SIDE}, not {self.max_side}", setting="max_side")
        if not _number(self.batch_size) or self.batch_size < 1:
            raise OptionError(f"`batch_size` must be at least 1, not {self.batch_size}", setting="batch_size")
        if not _number(self.threads) or self.threads < 0:
            raise OptionError(f"`threads` must be 0 or more, not {self.threads}", setting="threads")
        if self.expand is not None and expand_problem(self.expand):
            raise OptionError(f"`expand` {expand_problem(self.expand)}", setting="expand")
        if self.attributes is not None:
            try:
                object.__setattr__(self, "attributes", parse_attributes(self.attributes))
            except ValueError as e:
                raise OptionError(f"`attributes`: {e}", setting="attributes") from None
        if self.providers is not None:
            object.__setattr__(self, "providers", _providers(self.providers))
        if self.detector is not None:
            object.__setattr__(self, "detector", Path(self.detector))


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _providers(value: str | Iterable[str]) -> tuple[str, ...] | None:
    names = [p.strip() for p in (value.split(",") if isinstance(value, str) else value)]
    names = [p for p in names if p]
    return tuple(names) or None
