"""The seams of training and data: the label vocabularies in one light module, the loss
and reader registries the CLI's help is generated from, the error root."""
from __future__ import annotations

import subprocess
import sys
import textwrap


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
