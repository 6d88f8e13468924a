"""What a newcomer reads first: `--version`, the help texts and the install hints, which
must name commands that work (there is no agecli on PyPI)."""
from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from agecli.cli import app


def _help(*args: str) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return res.output


def test_install_hints_name_what_works(tmp_path, monkeypatch):
    import agecli.errors

    monkeypatch.setattr(agecli.errors, "torch_installed", lambda: False)
    res = CliRunner().invoke(app, ["train", "--data-dir", str(tmp_path), "--dataset", "utkface"])
    assert res.exit_code == 2
    assert 'pip install ".[train]"' in res.output and "agecli[" not in res.output
    assert "download.pytorch.org/whl/cpu" in res.output

    ray_help = " ".join(_help("demo").split())
    assert 'pip install ".[ray]"' in ray_help and "agecli[" not in ray_help

    from agecli.infer.ray_backend import RayError, connect

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RayError, match=r'pip install "\.\[ray\]"'):
        connect("local", print)
