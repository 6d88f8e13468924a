"""`agecli demo` at a terminal: with --output-dir the rows stay in predictions.csv and
stderr gets a summary (issue 22, item 2); into a pipe or file nothing changes."""
from __future__ import annotations

import csv
import errno
import os
import pty
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from agecli.cli import app, rows_to_stdout
from agecli.demo.rows import COLUMNS

from .conftest import REPO, utk_files

HEADER = ",".join(COLUMNS)


def test_rows_go_to_stdout_unless_a_terminal_has_them_in_predictions_csv():
    assert rows_to_stdout(is_tty=False, output_dir=Path("out"), force=False)  # a pipe: as always
    assert rows_to_stdout(is_tty=False, output_dir=None, force=False)
    assert rows_to_stdout(is_tty=True, output_dir=None, force=False)  # nowhere else to see them
    assert not rows_to_stdout(is_tty=True, output_dir=Path("out"), force=False)
    assert rows_to_stdout(is_tty=True, output_dir=Path("out"), force=True)  # --stdout


def _demo_on_a_terminal(*args: str, cwd: Path) -> tuple[str, str]:
    """Run `python -m agecli demo ARGS` with stdout on a pseudo-terminal; (what the
    terminal showed, stderr)."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "agecli", "demo", *args], stdout=slave, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, cwd=cwd, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        os.close(slave)
        slave = -1
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError as e:  # Linux: EIO once the slave side is closed and drained
                if e.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, stderr
    return shown.decode(errors="replace"), stderr


def test_a_terminal_gets_a_summary_not_the_rows(tmp_path):
    chip = str(utk_files(1)[0])
    shown, stderr = _demo_on_a_terminal(chip, "--output-dir", "out", "--workers", "1", cwd=tmp_path)
    assert HEADER not in shown and chip not in shown
    with open(tmp_path / "out" / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["file"] == chip and rows[0]["age"]
    assert "1 images, 1 faces" in stderr and "ages: " in stderr
    assert os.path.join("out", "predictions.csv") in stderr

    forced, _ = _demo_on_a_terminal(chip, "--output-dir", "out2", "--workers", "1", "--stdout", cwd=tmp_path)
    assert HEADER in forced and chip in forced


def test_a_pipe_still_gets_every_row_and_quiet_silences_the_summary(tmp_path):
    chip = str(utk_files(1)[0])
    res = CliRunner().invoke(app, ["demo", chip, "--output-dir", str(tmp_path / "out"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == HEADER and len(res.stdout.splitlines()) == 2
    assert "1 images, 1 faces" in res.stderr
    quiet = CliRunner().invoke(app, ["demo", chip, "--output-dir", str(tmp_path / "q"), "--workers", "1", "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stdout.splitlines()[0] == HEADER and quiet.stderr == ""
    bad = CliRunner().invoke(app, ["demo", chip, "--quiet", "--threshold", "2"])
    assert bad.exit_code == 2 and "--threshold" in bad.stderr  # errors are never silenced
