"""The seams of training and data: the label vocabularies in one light module, the loss
and reader registries the CLI's help is generated from, the error root."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_a_pipeline_naming_genders_loads_no_pandas():
    """Every demo worker named its faces' genders through data/records.py, which imports
    pandas (0.2 s a process); the names now come from agecli/vocab.py."""
    out = _run("""
        import sys
        import numpy as np
        from agecli.face.detector import Face
        from agecli.infer.pipeline import AgePipeline
        from agecli.infer.sources import Item

        class Runner:
            meta = {"img_size": 32, "expand": 0.25, "head": "mt"}
            def predict(self, crops):
                n = len(crops)
                return {"age": np.full(n, 30.0), "std": np.ones(n), "gender_probs": np.tile([0.2, 0.8], (n, 1)),
                        "race_probs": np.tile([0.1, 0.1, 0.6, 0.1, 0.1], (n, 1))}

        class Detector:
            def detect(self, rgb):
                eyes = [[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]]
                return [Face(np.array([10.0, 10, 90, 90]), 0.99, np.array(eyes, float))]

        image = np.zeros((100, 100, 3), np.uint8)
        pipe = AgePipeline(Runner(), Detector(), attributes=frozenset({"age", "gender", "ethnicity"}))
        [res] = list(pipe.run([Item("a.jpg", lambda: image)]))
        print(res.faces[0].gender, res.faces[0].ethnicity, "pandas" in sys.modules)
    """)
    assert out == "female asian False"


def test_the_vocabularies_are_one_set_of_names():
    from agecli import config, vocab
    from agecli.data import records
    from agecli.eval import metrics

    assert records.GENDERS is vocab.GENDERS and records.RACES is vocab.RACES and records.MAX_AGE == vocab.MAX_AGE
    assert metrics.AGE_GROUPS is vocab.AGE_GROUPS
    assert config.RULES["MODEL.AGE_MAX"][1] == vocab.MAX_AGE


def test_every_registered_loss_has_its_function_and_the_help_names_it():
    from typer.testing import CliRunner

    from agecli.cli import app
    from agecli.model import losses
    from agecli.model.objectives import LOSSES, TAUGHT_LOSSES

    assert set(losses.AGE_LOSSES) == set(LOSSES)
    assert losses.AGE_LOSSES["mt"] is losses.ldl_loss and set(TAUGHT_LOSSES) == {"ldl", "mt", "emd"}
    out = " ".join(CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output.split())
    for name, objective in LOSSES.items():
        assert f"{name}: {objective.help}" in out, name


def test_a_new_loss_is_one_function_and_one_line(monkeypatch):
    """The registry the issue asked for: a name in objectives.LOSSES and `<name>_loss` in
    losses.py are all a new objective needs; a name without its function fails at import."""
    from agecli.model import losses, objectives

    monkeypatch.setitem(objectives.LOSSES, "half_l1", objectives.Objective("half the L1 error", head="reg"))
    with pytest.raises(ImportError, match="half_l1_loss"):  # what importing losses.py would say
        losses._age_losses()
    monkeypatch.setattr(losses, "half_l1_loss", lambda out, age, bins, cfg, teacher=None: (out["age"] - age).abs().mean() / 2,
                        raising=False)
    assert losses._age_losses()["half_l1"] is losses.half_l1_loss
    assert objectives.head_for("half_l1") == "reg"


def test_every_agecli_error_has_one_root():
    """One root for every error agecli raises on purpose (`except AgecliError` catches
    them all); the ones users' code caught as ValueError stay ValueErrors too."""
    import importlib
    import inspect
    import pkgutil

    import agecli
    from agecli.errors import AgecliError

    found = {}
    for info in pkgutil.walk_packages(agecli.__path__, "agecli."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an extra that is not installed (ray)
            continue
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == info.name:
                found[f"{info.name}.{name}"] = obj
    assert len(found) >= 20, sorted(found)
    strays = sorted(n for n, c in found.items() if not issubclass(c, AgecliError))
    assert not strays, strays

    from agecli.config import apply_overrides, default_config
    from agecli.data.readers import read_dataset
    from agecli.errors import DataError, OptionError

    with pytest.raises(OptionError, match="TRAIN.LR"):
        apply_overrides(default_config(), ["TRAIN.LR", "-1"])
    with pytest.raises(ValueError, match="unknown dataset") as e:
        read_dataset("nope", ".")
    assert isinstance(e.value, DataError)
