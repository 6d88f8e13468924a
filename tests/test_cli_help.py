"""What a newcomer reads first: `--version`, the help texts and the install hints, which
must name commands that work (there is no agecli on PyPI)."""
from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from agecli import __version__
from agecli.cli import app
from agecli.demo.rows import COLUMNS


def _help(*args: str) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    return res.output


def test_version_prints_the_package_version():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.output.strip() == f"agecli {__version__}"


def test_demo_help_lists_every_row_column_and_shows_flags_as_flags():
    out = _help("demo")
    words = set(out.replace(",", " ").replace("(", " ").split())
    assert set(COLUMNS) <= words, set(COLUMNS) - words
    for flag in ("--webcam", "--save-crops", "--skip-existing", "--help"):
        line = next(ln for ln in out.splitlines() if f"{flag} " in ln)
        assert "<bool>" not in line, line
    assert "<int>" in out  # options that take a value still show its type


def test_train_help_says_what_aug_does_by_default():
    out = " ".join(_help("train").split())
    assert "<bool>" not in out
    assert "DATA.AUG photo (the default)" in out and "DATA.AUG basic" in out


def test_install_hints_name_what_works(tmp_path, monkeypatch):
    import agecli.errors

    monkeypatch.setattr(agecli.errors, "torch_installed", lambda: False)
    res = CliRunner().invoke(app, ["train", "--data-dir", str(tmp_path), "--dataset", "utkface"])
    assert res.exit_code == 2
    assert 'pip install ".[train]"' in res.output and "agecli[" not in res.output
    assert "download.pytorch.org/whl/cpu" in res.output

    ray_help = " ".join(_help("demo").split())
    assert 'pip install ".[ray]"' in ray_help and "agecli[" not in ray_help

    from agecli.demo.ray_backend import RayError, connect

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RayError, match=r'pip install "\.\[ray\]"'):
        connect("local", print)


def test_package_metadata_carries_the_licence(tmp_path):
    """What `pip show agecli` prints comes from this metadata (built in a copy of the
    project, so nothing is written into the checkout)."""
    import shutil
    import subprocess
    from pathlib import Path

    pytest.importorskip("setuptools")
    repo = Path(__file__).resolve().parents[1]
    for f in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(repo / f, tmp_path / f)
    shutil.copytree(repo / "agecli", tmp_path / "agecli", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "weights").mkdir()
    (tmp_path / "md").mkdir()
    code = "from setuptools import build_meta; print(build_meta.prepare_metadata_for_build_wheel('md'))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    meta = (tmp_path / "md" / proc.stdout.split()[-1] / "METADATA").read_text()
    assert "License-Expression: MIT" in meta
    assert "License-File: LICENSE" in meta


def test_webcam_without_a_camera_is_one_line_not_opencv_warnings():
    """`--webcam` with no camera printed 8 lines of OpenCV warnings before the clean error."""
    import os
    import subprocess
    import sys

    from .conftest import REPO

    if any(os.path.exists(f"/dev/video{i}") for i in range(4)):
        pytest.skip("this machine has a camera")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "agecli", "demo", "--webcam"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "no webcam could be opened" in proc.stderr
    assert "WARN" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
