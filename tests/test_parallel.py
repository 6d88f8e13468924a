"""Worker pools: `ordered_map` keeps input order, never runs far ahead of its consumer and
reports a dead worker; `demo --workers` and `prepare --workers` give the rows of one
process; the CLI's --workers and --ray usage errors."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agecli.cli import _bare_ray, app
from agecli.parallel import WorkerError, default_workers, ordered_map

from .conftest import utk_files


def square(x: int) -> int:
    return x * x


def die_on_three(x: int) -> int:
    if x == 3:
        os._exit(1)  # what the kernel's OOM killer looks like from the parent
    return x


def test_ordered_map_keeps_order():
    items = list(range(20))
    assert list(ordered_map(square, items, 2)) == [x * x for x in items]


def test_ordered_map_reads_ahead_at_most_its_window():
    pulled = []

    def source():
        for i in range(1000):
            pulled.append(i)
            yield i

    results = ordered_map(square, source(), 2, window=4)
    assert next(results) == 0
    assert len(pulled) <= 5  # Executor.map or Pool.imap would have taken all 1000
    results.close()


def test_ordered_map_dead_worker_is_a_worker_error():
    with pytest.raises(WorkerError, match="worker process died"):
        list(ordered_map(die_on_three, range(8), 2))


def test_default_workers_is_the_usable_cores():
    assert default_workers() == len(os.sched_getaffinity(0))


def test_bare_ray_means_local():
    assert _bare_ray(["demo", "x.jpg", "--ray"]) == ["demo", "x.jpg", "--ray", "local"]
    assert _bare_ray(["demo", "--ray", "--workers", "2"]) == ["demo", "--ray", "local", "--workers", "2"]
    assert _bare_ray(["demo", "--ray", "ray://h:10001"]) == ["demo", "--ray", "ray://h:10001"]


@pytest.fixture
def inputs(tmp_path, photos_dir):
    """3 UTKFace chips, a group photo, a file that is not an image."""
    root = tmp_path / "in"
    root.mkdir()
    for f in utk_files(3):
        shutil.copy(f, root / f.name)
    shutil.copy(photos_dir / "group_1.jpg", root / "group_1.jpg")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def test_demo_workers_give_the_rows_and_copies_of_one_process(inputs, tiny_onnx, tmp_path, monkeypatch):
    runs = {}
    for w in (1, 2):
        (tmp_path / f"w{w}").mkdir()
        monkeypatch.chdir(tmp_path / f"w{w}")  # the same --output-dir spelling: the output column names it
        out = Path("out")
        res = CliRunner().invoke(app, ["demo", "--img-dir", str(inputs), "--resume", str(tiny_onnx),
                                       "--output-dir", str(out), "--workers", str(w), "--save-crops"])
        assert res.exit_code == 1, res.output  # the broken file
        runs[w] = (res.stdout, {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
                                if p.is_file()})
    assert runs[1][0] == runs[2][0]
    assert "group_1.jpg" in runs[2][1] and any(k.startswith("crops/") for k in runs[2][1])
    assert runs[1][1] == runs[2][1]  # predictions.csv, annotated copies and crops, byte for byte


@pytest.mark.parametrize("cmd", ["demo", "prepare"])
def test_workers_below_one_is_a_usage_error(cmd, inputs, tiny_onnx, tmp_path):
    args = (["demo", str(inputs), "--resume", str(tiny_onnx)] if cmd == "demo"
            else ["prepare", "--dataset", "utkface", "--data-dir", str(inputs), "--out", str(tmp_path / "o")])
    res = CliRunner().invoke(app, [*args, "--workers", "0"])
    assert res.exit_code == 2
    assert "--workers must be" in res.output


def test_ray_given_an_input_instead_of_an_address(inputs, tiny_onnx):
    res = CliRunner().invoke(app, ["demo", "--resume", str(tiny_onnx), "--ray", str(inputs)])
    assert res.exit_code == 2
    assert "--ray takes a cluster address" in res.output


def test_ray_not_installed_says_how_to_get_it(inputs, tiny_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    res = CliRunner().invoke(app, ["demo", str(inputs), "--resume", str(tiny_onnx), "--ray", "local"])
    assert res.exit_code == 2
    assert 'pip install ".[ray]"' in res.output  # agecli is not on PyPI: from a clone


def test_prepare_workers_give_the_csvs_of_one_process(tmp_path):
    from agecli.data.prepare import prepare

    root = tmp_path / "utk"
    root.mkdir()
    for f in utk_files(70):  # two chunks of work, so two workers both get some
        shutil.copy(f, root / f.name)
    outs = {}
    for w in (1, 2):
        s = prepare("utkface", root, tmp_path / f"out{w}", workers=w)
        outs[w] = {k: open(v, encoding="utf-8").read() for k, v in s["files"].items()}
    assert outs[1] == outs[2] and sum(len(t.splitlines()) for t in outs[2].values()) > 60


def test_default_workers_for_demo_follow_the_input_count():
    """A worker costs start-up time: a handful of photos runs in one process, a folder
    gets one worker per core; a GPU gets one process."""
    from agecli.demo.run import MIN_INPUTS_PER_WORKER, default_worker_count

    cores = default_workers()
    assert default_worker_count(MIN_INPUTS_PER_WORKER - 1) == 1
    assert default_worker_count(MIN_INPUTS_PER_WORKER * cores) == cores
    assert default_worker_count(None) == cores  # a video of unknown length
    assert default_worker_count(10_000, "cuda") == 1
