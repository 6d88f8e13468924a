"""`demo --ray`: a local Ray cluster on loopback (2 CPUs, so 2 actors) writes the rows,
predictions.csv and annotated copies of a single-process run, byte for byte, and
resumes the same way. Skipped when Ray is not installed (CI installs it)."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from agecli.demo.run import DemoOptions, run_demo

from .conftest import utk_files

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture
def inputs(tmp_path, photos_dir):
    """A group photo, 3 UTKFace chips, a blank image (no face), a broken file, in two folders."""
    import cv2
    import numpy as np

    root = tmp_path / "in"
    (root / "chips").mkdir(parents=True)
    for f in utk_files(3):
        shutil.copy(f, root / "chips" / f.name)
    shutil.copy(photos_dir / "group_1.jpg", root / "group_1.jpg")
    cv2.imwrite(str(root / "blank.png"), np.full((120, 160, 3), 200, np.uint8))
    (root / "chips" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def outputs(out_dir):
    return {p.relative_to(out_dir).as_posix(): p.read_bytes() for p in sorted(out_dir.rglob("*")) if p.is_file()}


def test_ray_rows_and_copies_equal_a_single_process_run(cluster, inputs, tiny_onnx, tmp_path, monkeypatch):
    runs = {}
    for mode in ("local", "ray"):
        (tmp_path / mode).mkdir()
        monkeypatch.chdir(tmp_path / mode)  # one --output-dir spelling for both: the output column names it
        stdout = io.StringIO()
        opts = DemoOptions(img_dir=inputs, model=tiny_onnx, output_dir=Path("out"), save_crops=True,
                           workers=1 if mode == "local" else None, ray="local" if mode == "ray" else None)
        s = run_demo(opts, stdout)
        runs[mode] = (stdout.getvalue(), outputs(tmp_path / mode / "out"), (s.images, s.faces, s.no_face, s.unreadable))
    # 3 chips + the group photo (8 faces when synthetic, 40+ when real), one unreadable file
    assert runs["ray"][2] == runs["local"][2] and runs["local"][2][1] >= 11 and runs["local"][2][3] == 1
    assert runs["ray"][0] == runs["local"][0]  # the rows, in input order
    assert runs["ray"][1] == runs["local"][1]  # predictions.csv, annotated copies, crops
    assert "group_1.jpg" in runs["ray"][1] and "blank.png" in runs["ray"][1]

    # an interrupted Ray run finishes with --skip-existing like a local one (cwd: tmp_path/ray)
    out = Path("out")
    (out / "group_1.jpg").unlink()
    stdout = io.StringIO()
    s = run_demo(DemoOptions(img_dir=inputs, model=tiny_onnx, output_dir=out, save_crops=True, skip_existing=True,
                             ray="local"), stdout)
    assert s.images == 1 and s.skipped == 4  # group_1 again, and the broken file is retried
    assert stdout.getvalue() == runs["local"][0] and outputs(out) == runs["local"][1]
