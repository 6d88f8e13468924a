"""The seams of issue 21 on the inference side: typed model metadata read without a
runner, one settings object with one set of bounds, the runner table and --providers,
and --model (with --resume as its alias) on demo, val and export."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from agecli import AgeEstimator
from agecli.cli import app
from agecli.errors import CheckpointError, OptionError, UsageError
from agecli.infer.default_model import default_model_path
from agecli.infer.runners import RUNNER_TABLE, RUNNERS, OnnxRunner, open_runner, read_meta
from agecli.infer.settings import InferSettings
from agecli.model.meta import ModelMeta

from .conftest import utk_files


def cli(*args):
    return CliRunner().invoke(app, [*map(str, args)])


def test_model_meta_is_read_from_the_file_without_a_runner(tiny_onnx, tiny_checkpoint):
    meta = read_meta(tiny_onnx)
    opened = OnnxRunner(tiny_onnx).meta
    assert isinstance(meta, ModelMeta) and dict(meta) == dict(opened) and meta == opened
    assert (meta.img_size, meta.expand, meta.head) == (opened["img_size"], opened["expand"], opened["head"])
    assert read_meta(tiny_checkpoint).img_size == meta.img_size  # a .pth: its checkpoint (torch)
    shipped = read_meta(default_model_path())  # the shipped file, its format unchanged
    assert shipped.img_size == 128 and shipped.expand == 0.25 and shipped.attributes >= {"age", "gender"}
    with pytest.raises(TypeError):
        meta["img_size"] = 1  # read-only
    with pytest.raises(CheckpointError, match="no such model file"):
        read_meta(tiny_onnx.parent / "missing.onnx")


def test_val_reads_the_trained_sets_without_opening_a_runner(tiny_onnx, monkeypatch):
    from agecli.eval.evaluate import val_sets

    def no_session(*a, **k):
        raise AssertionError("val_sets opened a runner")

    monkeypatch.setattr(OnnxRunner, "__init__", no_session)
    assert val_sets(tiny_onnx, None, []) == [(None, None)]  # trained on one set: evaluate resolves it


def test_expand_is_resolved_in_one_place():
    meta = ModelMeta.from_dict({"img_size": 64, "expand": 0.25})
    assert meta.crop_expand(None) == (0.25, None)
    expand, note = meta.crop_expand(0.4)
    assert expand == 0.4 and note.startswith("`expand` 0.4 differs from the model's 0.25")
    assert meta.crop_expand(0.25) == (0.25, None)
    with pytest.raises(UsageError, match="`expand` is required"):
        ModelMeta.from_dict({"img_size": 64}).crop_expand(None)
    with pytest.raises(CheckpointError, match="img_size"):
        ModelMeta.from_dict({"img_size": 5, "expand": 0.25})


@pytest.mark.parametrize("bad, words", [({"expand": 3.5}, "`expand`"), ({"expand": -0.1}, "`expand`"),
                                        ({"det_threshold": 1.0}, "`det_threshold`"), ({"max_side": 63}, "`max_side`"),
                                        ({"batch_size": 0}, "`batch_size`"), ({"threads": -1}, "`threads`"),
                                        ({"device": "gpu"}, "`device`"), ({"runner": "tf"}, "`runner`"),
                                        ({"attributes": "age,mood"}, "mood")])
def test_one_set_of_bounds_for_every_entry_point(bad, words):
    """Named by the keyword the caller gave, carried as `setting`; an OptionError, so a ValueError too."""
    for build in (InferSettings, AgeEstimator):
        with pytest.raises(OptionError, match=words) as e:
            build(**bad)
        assert e.value.setting == next(iter(bad)) and isinstance(e.value, UsageError) and isinstance(e.value, ValueError)


def test_settings_travel_whole(tiny_onnx):
    s = InferSettings(expand=0.3, batch_size=4, providers="CPUExecutionProvider", attributes="age")
    assert s.providers == ("CPUExecutionProvider",) and s.attributes == frozenset({"age"})
    est = AgeEstimator(tiny_onnx, settings=s)
    assert est.settings is s and est.expand == 0.3 and est.batch_size == 4 and est.attributes == {"age"}
    assert est.expand_warning and "differs" in est.expand_warning
    with pytest.raises(TypeError, match="not both"):
        AgeEstimator(tiny_onnx, settings=s, batch_size=8)


def test_the_runner_table_names_the_runners(tiny_onnx):
    assert RUNNERS == ("auto", *RUNNER_TABLE) and {"onnx", "torch"} <= set(RUNNER_TABLE)
    r = open_runner(tiny_onnx)
    assert (r.kind, r.device) == ("onnx", "cpu") and isinstance(r.meta, ModelMeta)
    with pytest.raises(UsageError, match="`runner` must be auto, torch or onnx"):
        open_runner(tiny_onnx, "tf")


def test_an_unknown_provider_is_refused_naming_those_there_are(tiny_onnx, tiny_aligned, tmp_path):
    chip = utk_files(1)[0]
    for args in (["demo", chip, "--model", tiny_onnx],
                 ["val", "--model", tiny_onnx, "--data-dir", tiny_aligned, "--dataset", "utkface",
                  "--output-dir", tmp_path / "v"]):
        res = cli(*args, "--providers", "NoSuchExecutionProvider")
        assert res.exit_code == 2, (args, res.output)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "NoSuchExecutionProvider" in lines[0], res.stderr
        assert all(p in lines[0] for p in ort.get_available_providers())
        assert res.stdout == "" and not (tmp_path / "v").exists()
    res = cli("demo", chip, "--model", tiny_onnx, "--providers", "CPUExecutionProvider")
    assert res.exit_code == 0 and res.stdout.startswith("file,face,age"), res.output


def test_model_and_resume_name_one_option(tiny_onnx, tiny_checkpoint, tiny_aligned, tmp_path):
    """--model is the option's name on demo, val and export; --resume, its former name,
    still works (the seed command `agecli val --ldl --resume best.pth`)."""
    chip = utk_files(1)[0]
    rows = {name: cli("demo", chip, name, tiny_onnx) for name in ("--model", "--resume")}
    assert rows["--model"].exit_code == rows["--resume"].exit_code == 0, rows["--model"].output
    assert rows["--model"].stdout == rows["--resume"].stdout and rows["--model"].stdout.count("\n") >= 2
    maes = {}
    for name in ("--model", "--resume"):
        out = tmp_path / f"val{name}"
        res = cli("val", name, tiny_onnx, "--data-dir", tiny_aligned, "--dataset", "utkface", "--output-dir", out)
        assert res.exit_code == 0, res.output
        maes[name] = json.loads((out / "summary.json").read_text())["mae"]
    assert maes["--model"] == maes["--resume"]
    for name in ("--model", "--resume"):
        out = tmp_path / f"export{name}.onnx"
        res = cli("export", name, tiny_checkpoint, "--output", out)
        assert res.exit_code == 0 and out.is_file(), res.output
    for cmd in ("demo", "val", "export"):
        text = CliRunner().invoke(app, [cmd, "--help"], terminal_width=200).stdout
        assert "--model" in text and "--resume" in text, cmd


def test_infer_never_imports_the_layers_above_it():
    """infer/ is the inference core: the API, the demo command and eval sit above it."""
    root = Path(__file__).resolve().parents[1] / "agecli" / "infer"
    above = re.compile(r"from \.\.(api|demo|eval)\b|agecli\.(api|demo|eval)\b")
    assert [p.name for p in root.glob("*.py") if above.search(p.read_text())] == []
    code = "import agecli.infer.pipeline, agecli.infer.runners, agecli.infer.settings, sys; " \
           "print(sorted(m for m in sys.modules if m.startswith(('agecli.api', 'agecli.demo', 'agecli.eval'))))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "[]"


def test_a_row_format_is_one_registration(tiny_onnx, monkeypatch):
    """demo's --format choices, help and writers all come from formats.FORMATS: a format
    added there (here TSV) is accepted and written, and the help lists every format."""
    import io

    from agecli.demo import formats
    from agecli.demo.rows import COLUMNS
    from agecli.demo.run import DemoOptions, DemoError, run_demo

    text = " ".join(CliRunner().invoke(app, ["demo", "--help"], terminal_width=400).stdout.split())
    assert all(f.help in text for f in formats.FORMATS.values())
    chip = str(utk_files(1)[0])
    with pytest.raises(DemoError, match="`fmt` must be csv or jsonl, not 'tsv'"):
        run_demo(DemoOptions(inputs=[chip], model=tiny_onnx, fmt="tsv"), io.StringIO())
    tsv = formats.RowFormat("tsv", "tsv", "tsv", header=lambda cols: "\t".join(cols) + "\n",
                            lines=lambda rows, cols: "".join("\t".join("" if r[c] is None else str(r[c]) for c in cols)
                                                             + "\n" for r in rows))
    monkeypatch.setitem(formats.FORMATS, "tsv", tsv)
    out = io.StringIO()
    run_demo(DemoOptions(inputs=[chip], model=tiny_onnx, fmt="tsv"), out)
    lines = out.getvalue().splitlines()
    assert lines[0].split("\t") == COLUMNS and len(lines) >= 2 and lines[1].split("\t")[0] == chip
