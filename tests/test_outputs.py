"""Unwritable outputs of `val` and `export` are found before the work, exit 3, and
leave no temporary files (issue 10)."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agecli.cli import app

from .conftest import REPO


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_val_output_dir_that_is_a_file(tiny_aligned, tiny_checkpoint, tmp_path):
    blocker = tmp_path / "reports"
    blocker.write_text("a file, not a folder")
    res = cli("val", "--resume", tiny_checkpoint, "--data-dir", tiny_aligned, "--dataset", "utkface",
              "--split", "valid", "--output-dir", blocker)
    assert res.exit_code == 3 and "--output-dir" in res.stderr and "cannot write" in res.stderr, res.output
    assert blocker.read_text() == "a file, not a folder"


def test_val_workers_zero_is_bad_usage(tiny_aligned, tiny_checkpoint, tmp_path):
    res = cli("val", "--resume", tiny_checkpoint, "--data-dir", tiny_aligned, "--dataset", "utkface",
              "--workers", "0", "--output-dir", tmp_path / "v")
    assert res.exit_code == 2 and "--workers" in res.stderr, res.output


def test_export_output_that_is_a_folder(tiny_checkpoint, tmp_path):
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    res = cli("export", "--resume", tiny_checkpoint, "--output", folder)
    assert res.exit_code == 3 and "is a folder" in res.stderr, res.output
    assert not list(tmp_path.rglob("*.tmp"))


def test_export_int8_without_faces_is_refused(tiny_checkpoint, tmp_path):
    res = cli("export", "--resume", tiny_checkpoint, "--int8", "--output", tmp_path / "m.onnx")
    assert res.exit_code == 2 and "--images" in res.stderr, res.output
    assert not (tmp_path / "m.onnx").exists()


def test_failed_atomic_write_removes_its_temporary(tmp_path):
    from agecli.atomic import OutputError, write_bytes

    target = tmp_path / "sub"
    target.write_text("a file where a folder should be")
    try:
        write_bytes(target / "x.csv", b"data")
    except OutputError as e:
        assert "x.csv" in str(e)
    else:
        raise AssertionError("the write should have failed")
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "x.csv").mkdir()  # a folder where the file should go: rename fails after the temp is written
    try:
        write_bytes(tmp_path / "ok" / "x.csv", b"data")
    except OutputError:
        pass
    assert not list(tmp_path.rglob("*.tmp"))


def test_onnx_runtimes_fallback_banner_never_reaches_stdout(capfd):
    """ONNX Runtime prints "EP Error ... Falling back" to stdout when a provider fails while
    a session is built; on agecli's stdout that line lands among the result rows. A real
    failure: a thread-affinity setting ONNX Runtime rejects."""
    import onnxruntime as ort

    from agecli.onnxrt import open_session

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.add_session_config_entry("session.intra_op_thread_affinities", "not-a-cpu")
    with pytest.raises(Exception, match="Processor id"):
        open_session((REPO / "weights" / "agecli_default.onnx").read_bytes(), opts, ["CPUExecutionProvider"])
    out, err = capfd.readouterr()
    assert out == "" and "Falling back" in err
