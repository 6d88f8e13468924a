"""Library messages name settings in the words of the Python API; only the CLI names
flags (issue 21). A Python user of `AgeEstimator(expand=...)` or `agecli.evaluate(...)`
is never told about a `--flag` they did not type; a CLI user still reads the flag."""
from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

import agecli
from agecli.cli import app


def test_the_python_api_names_the_keyword():
    """AgeEstimator(expand=-1): the error names `expand`, the keyword the caller typed,
    and carries it as data; it is an OptionError, so also a ValueError."""
    from agecli.errors import OptionError

    with pytest.raises(OptionError) as e:
        agecli.AgeEstimator(expand=-1)
    assert "`expand`" in str(e.value) and "--expand" not in str(e.value)
    assert e.value.setting == "expand" and isinstance(e.value, ValueError)


def test_the_cli_names_the_flag_for_the_same_mistake(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--expand", "-1"])
    assert res.exit_code == 2 and "--expand -1 is outside 0-3" in res.stderr and "`" not in res.stderr, res.output


def test_the_cli_names_the_flag_the_user_typed():
    """An option with two spellings (--model, --resume) is named as the user typed it."""
    from agecli.cli import flag_names

    demo = typer.main.get_command(app).commands["demo"]
    assert flag_names(demo, ["--resume", "m.onnx"])["model"] == "--resume"
    assert flag_names(demo, ["--model=m.onnx"])["model"] == "--model"
    assert flag_names(demo, [])["model"] == "--model" and flag_names(demo, [])["output_dir"] == "--output-dir"
