"""Library messages name settings in the words of the Python API; only the CLI names
flags (issue 21). A Python user of `AgeEstimator(expand=...)` or `agecli.evaluate(...)`
is never told about a `--flag` they did not type; a CLI user still reads the flag."""
from __future__ import annotations

import typer.main

from agecli.cli import app


def test_the_cli_names_the_flag_the_user_typed():
    """An option with two spellings (--model, --resume) is named as the user typed it."""
    from agecli.cli import flag_names

    demo = typer.main.get_command(app).commands["demo"]
    assert flag_names(demo, ["--resume", "m.onnx"])["model"] == "--resume"
    assert flag_names(demo, ["--model=m.onnx"])["model"] == "--model"
    assert flag_names(demo, [])["model"] == "--model" and flag_names(demo, [])["output_dir"] == "--output-dir"
