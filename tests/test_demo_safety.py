"""`agecli demo` never replaces a file it did not write, names every input as given,
never hangs on a FIFO, and exits with the documented codes (issue 10)."""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agecli.cli import app

from .conftest import REPO, chip_video, utk_files


def demo(*args):
    return CliRunner().invoke(app, ["demo", *map(str, args)])


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300, stdin: str | None = None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "agecli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout, input=stdin)


@pytest.fixture
def photos(tmp_path) -> Path:
    """photos/a.jpg, photos/b.jpg (real faces) with their bytes remembered."""
    d = tmp_path / "photos"
    d.mkdir()
    for f, name in zip(utk_files(2), ("a.jpg", "b.jpg")):
        shutil.copy(f, d / name)
    return d


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_output_dir_equal_to_the_input_dir_is_refused(photos, tiny_onnx):
    before = snapshot(photos)
    res = demo("--img-dir", photos, "--output-dir", photos, "--resume", tiny_onnx)
    assert res.exit_code == 2, res.output
    assert "would replace the input" in res.stderr and res.stdout == ""
    assert snapshot(photos) == before  # not one photo touched


def test_output_dir_dot_beside_the_photos_is_refused(photos, tiny_onnx, monkeypatch):
    monkeypatch.chdir(photos)
    before = snapshot(photos)
    res = demo("a.jpg", "b.jpg", "--output-dir", ".", "--resume", tiny_onnx)
    assert res.exit_code == 2 and "would replace the input" in res.stderr, res.output
    assert snapshot(photos) == before


def test_output_dir_above_the_inputs_never_replaces_another_photo(photos, tiny_onnx):
    """--img-dir ph/2023 --output-dir ph: the copy of ph/2023/a.jpg would land on ph/a.jpg."""
    year = photos / "2023"
    year.mkdir()
    shutil.copy(photos / "b.jpg", year / "a.jpg")
    before = snapshot(photos)
    res = demo("--img-dir", year, "--output-dir", photos, "--resume", tiny_onnx)
    assert res.exit_code == 2 and "was not written by agecli" in res.stderr, res.output
    assert snapshot(photos) == before


def test_a_second_run_into_its_own_output_dir_is_allowed(photos, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    for _ in range(2):
        res = demo("--img-dir", photos, "--output-dir", out, "--resume", tiny_onnx)
        assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.jpg", "b.jpg", "predictions.csv"]


def test_file_column_is_the_input_as_given(photos, tiny_onnx, tmp_path):
    """An absolute path and the same file twice: `file` shows each input as typed, and
    `output` the distinct annotated copies."""
    out = tmp_path / "out"
    a = photos / "a.jpg"
    res = demo(a, a, "--output-dir", out, "--resume", tiny_onnx)
    assert res.exit_code == 0, res.output
    got = [(r["file"], r["output"]) for r in rows(res.stdout) if r["face"] in ("", "0")]
    assert got == [(str(a), str(out / "a.jpg")), (str(a), str(out / "a~2.jpg"))]
    assert (out / "a.jpg").is_file() and (out / "a~2.jpg").is_file()


def test_fifo_gif_and_dangling_link_each_get_a_row(photos, tiny_onnx):
    """A FIFO named *.jpg used to hang demo forever; GIFs and dangling links vanished."""
    os.mkfifo(photos / "pipe.jpg")
    (photos / "gone.jpg").symlink_to(photos / "nowhere.jpg")
    from PIL import Image

    face = Image.open(photos / "a.jpg").convert("RGB")
    face.save(photos / "moving.gif", save_all=True, append_images=[face.rotate(5)])
    proc = run_cli("demo", "--img-dir", photos, "--resume", tiny_onnx, timeout=240)
    assert proc.returncode == 1, proc.stderr  # two inputs unreadable
    by_name = {Path(r["file"]).name: r for r in rows(proc.stdout)}
    assert set(by_name) == {"a.jpg", "b.jpg", "pipe.jpg", "gone.jpg", "moving.gif"}
    assert by_name["pipe.jpg"]["error"] == "unreadable" and by_name["gone.jpg"]["error"] == "unreadable"
    assert by_name["moving.gif"]["error"] == "" and float(by_name["moving.gif"]["age"]) > 0
    assert "not a regular file" in proc.stderr


def test_fifo_given_by_name_does_not_hang(tmp_path, tiny_onnx):
    os.mkfifo(tmp_path / "p.jpg")
    proc = run_cli("demo", tmp_path / "p.jpg", "--resume", tiny_onnx, timeout=240)
    assert proc.returncode == 1 and "unreadable" in proc.stdout


def test_closed_pipe_ends_quietly(photos, tiny_onnx):
    """`demo | head -1`: no 'Broken pipe' message, no traceback, code 141 (as `yes | head`)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for i in range(40):
        shutil.copy(photos / "a.jpg", photos / f"c{i:02d}.jpg")
    proc = subprocess.run(f"'{sys.executable}' -m agecli demo --img-dir '{photos}' --resume '{tiny_onnx}' "
                          "--batch-size 1 | head -1; echo \"${PIPESTATUS[0]}\" >&2",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=300)
    assert proc.stdout.startswith("file,face,age")
    assert "Broken pipe" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "141"


def test_closed_pipe_with_an_output_dir_still_finishes_the_folder(photos, tmp_path):
    """`demo --output-dir out | head -1`: the rows stop, the run does not: every copy and
    predictions.csv are written, stderr says so, and the code is still 141."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    shutil.copy(photos / "a.jpg", photos / "c.jpg")  # 3 images
    out = tmp_path / "out"
    proc = subprocess.run(f"'{sys.executable}' -m agecli demo --img-dir '{photos}' --output-dir '{out}' "
                          "--workers 1 --batch-size 1 | head -1; echo \"${PIPESTATUS[0]}\" >&2",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, env=env, timeout=300)
    assert proc.stdout.startswith("file,face,age") and len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "141"
    assert "stdout was closed by the reader" in proc.stderr and "predictions.csv" in proc.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "a.jpg", "b.jpg", "c.jpg", "predictions.csv"]
    assert sorted(Path(r["file"]).name for r in rows((out / "predictions.csv").read_text())) == ["a.jpg", "b.jpg", "c.jpg"]


def test_empty_img_list_is_bad_usage(tmp_path, tiny_onnx):
    (tmp_path / "list.txt").write_text("# nothing yet\n")
    res = demo("--img-list", tmp_path / "list.txt", "--resume", tiny_onnx)
    assert res.exit_code == 2 and "no images" in res.stderr


def test_truncated_video_is_reported(tmp_path, tiny_onnx):
    video = chip_video(tmp_path / "clip.avi", 20)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])  # the header still declares 20 frames
    res = demo("--video", video, "--resume", tiny_onnx)
    assert res.exit_code == 1, res.output
    assert "the video ended at frame" in res.stderr


def test_an_mp4_cut_before_its_index_is_an_input_that_failed(tmp_path, tiny_onnx):
    """An MP4 keeps its index at the end: copied only in part it cannot be opened at all,
    and that exited 2 (bad usage) where README's table says 1 (an input failed)."""
    import cv2

    chip = cv2.imread(str(utk_files(1)[0]))
    writer = cv2.VideoWriter(str(tmp_path / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5,
                             (chip.shape[1], chip.shape[0]))
    if not writer.isOpened():
        pytest.skip("no MP4 video writer in this OpenCV build")
    for _ in range(20):
        writer.write(chip)
    writer.release()
    data = (tmp_path / "clip.mp4").read_bytes()
    assert data.rfind(b"moov") > len(data) // 2  # the index is in the second half
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    res = demo("--video", tmp_path / "cut.mp4", "--resume", tiny_onnx)
    assert res.exit_code == 1 and "cut.mp4: unreadable" in res.stderr, res.output
    missing = demo("--video", tmp_path / "absent.mp4", "--resume", tiny_onnx)
    assert missing.exit_code == 2, missing.output  # a path that is not there stays bad usage


def test_skip_existing_with_another_model_does_not_keep_old_ages(photos, tiny_onnx, tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    first = demo("--img-dir", photos, "--output-dir", out, "--resume", tiny_onnx)
    assert first.exit_code == 0, first.output
    other = tmp_path / "other.onnx"
    other.write_bytes(tiny_onnx.read_bytes() + b"")  # same model, another file: still the same identity
    same = demo("--img-dir", photos, "--output-dir", out, "--resume", other, "--skip-existing")
    assert "2 skipped" in same.stderr, same.output
    res = demo("--img-dir", photos, "--output-dir", out, "--resume", tiny_checkpoint, "--runner", "torch",
               "--skip-existing")
    assert res.exit_code == 0, res.output
    assert "do not match this run" in res.stderr and "0 skipped" in res.stderr


@pytest.mark.parametrize("args, code, words", [
    (["--threshold", "2"], 2, "--threshold"),
    (["--threshold", "nan"], 2, "--threshold"),
    (["--expand", "-1"], 2, "--expand"),
    (["--batch-size", "0"], 2, "--batch-size"),
])
def test_demo_bad_numbers_are_bad_usage(photos, tiny_onnx, args, code, words):
    res = demo(photos / "a.jpg", "--resume", tiny_onnx, *args)
    assert res.exit_code == code and words in res.stderr, res.output


def test_help_documents_the_exit_codes():
    for cmd in ([], ["prepare"], ["train"], ["val"], ["demo"], ["export"]):
        text = CliRunner().invoke(app, [*cmd, "--help"]).stdout
        assert "3" in text and "130" in text and "Exit codes" in text, cmd


def test_a_newline_in_a_file_name_cannot_forge_a_ledger_entry(tiny_onnx, tmp_path):
    """`x\\nline.jpg` was listed in .agecli-demo-files as two names, `x` and `line.jpg`; a
    later run then took the user's out/line.jpg for its own and replaced it."""
    chip = utk_files(1)[0]
    odd, plain = tmp_path / "odd", tmp_path / "plain"
    odd.mkdir()
    plain.mkdir()
    shutil.copy(chip, odd / "x\nline.jpg")
    shutil.copy(chip, plain / "line.jpg")
    out = tmp_path / "out"
    assert demo("--img-dir", odd, "--output-dir", out, "--resume", tiny_onnx).exit_code == 0
    assert (out / "x\nline.jpg").is_file()
    (out / "line.jpg").write_bytes(b"the user's own file")
    res = demo("--img-dir", plain, "--output-dir", out, "--resume", tiny_onnx)
    assert res.exit_code == 2 and "not written by agecli" in res.stderr, res.output
    assert (out / "line.jpg").read_bytes() == b"the user's own file"
    # the odd name itself is still known as agecli's: re-running over it is allowed
    assert demo("--img-dir", odd, "--output-dir", out, "--resume", tiny_onnx).exit_code == 0


def test_working_files_have_names_no_user_file_has(tiny_onnx, tmp_path):
    """demo deleted a user's predictions.csv.partial and a.jpg.tmp in --output-dir: its
    working files now carry agecli-specific names, and only those are cleaned up."""
    chips = tmp_path / "in"
    chips.mkdir()
    for f in utk_files(2):
        shutil.copy(f, chips / f.name)
    out = tmp_path / "out"
    out.mkdir()
    mine = {"predictions.csv.partial": b"my partial", f"{utk_files(1)[0].name}.tmp": b"my tmp"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    res = demo("--img-dir", chips, "--output-dir", out, "--resume", tiny_onnx)
    assert res.exit_code == 0, res.output
    for name, data in mine.items():
        assert (out / name).read_bytes() == data, name
    assert not [p.name for p in out.iterdir() if "agecli-" in p.name and p.name.endswith((".tmp", "-partial"))]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("sig", ["TERM", "KILL"])
def test_workers_end_with_their_parent(photos_dir, tiny_onnx, tmp_path, sig):
    """SIGTERM ended demo with 143 and no message, and after SIGKILL of the parent its
    workers (700-800 MB each) lived on with parent 1. Now SIGTERM stops the run as
    Ctrl-C does (a message, exit 143) and the workers end with the parent either way."""
    import signal
    import time

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    src = tmp_path / "in"
    src.mkdir()
    for i in range(60):
        shutil.copy(photos_dir / "group_1.jpg", src / f"p{i:02d}.jpg")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "agecli", "demo", "--img-dir", str(src), "--output-dir",
                             str(tmp_path / "out"), "--resume", str(tiny_onnx), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 120
        while len(_children(proc.pid)) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert proc.poll() is None and len(workers) >= 2, "the run ended before its workers could be seen"
        proc.send_signal(getattr(signal, f"SIG{sig}"))
        _, stderr = proc.communicate(timeout=120)
        deadline = time.time() + 60
        while any(_alive(w) for w in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers)
        if sig == "TERM":
            assert proc.returncode == 143 and "terminated" in stderr and "--skip-existing" in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_file_name_that_is_not_utf8_is_processed_and_resumed(tiny_onnx, tmp_path):
    """`caf\\xe9.jpg` ended demo --output-dir with a traceback, and the next file was never processed."""
    src = tmp_path / "in"
    src.mkdir()
    odd = os.fsencode(src) + b"/caf\xe9.jpg"
    with open(odd, "wb") as fh:
        fh.write(utk_files(1)[0].read_bytes())
    shutil.copy(utk_files(2)[1], src / "b.jpg")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "agecli", "demo", "--img-dir", str(src), "--output-dir", str(out),
           "--resume", str(tiny_onnx)]
    first = subprocess.run(cmd, capture_output=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert b"caf\xe9.jpg" in first.stdout and b"b.jpg" in first.stdout
    assert os.path.exists(os.fsencode(out) + b"/caf\xe9.jpg") and (out / "b.jpg").is_file()
    again = subprocess.run(cmd + ["--skip-existing"], capture_output=True, env=env, timeout=300)
    assert again.returncode == 0 and b"2 skipped" in again.stderr, again.stderr[-2000:]
    assert again.stdout.count(b"caf\xe9.jpg") == first.stdout.count(b"caf\xe9.jpg")


def test_a_glob_covering_the_output_folder_leaves_out_the_runs_own_copies(tiny_onnx, tmp_path, monkeypatch):
    """`'ph/**/*.jpg' --output-dir ph/out` picked up the first run's copies on the next run,
    which was then refused; the output folder is left out of globs as of --img-dir."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ph").mkdir()
    for f in utk_files(2):
        shutil.copy(f, tmp_path / "ph" / f.name)
    for _ in range(2):
        res = demo("ph/**/*.jpg", "--output-dir", "ph/out", "--resume", tiny_onnx)
        assert res.exit_code == 0, res.output
        files = {r["file"] for r in csv.DictReader(io.StringIO(res.stdout))}
        assert len(files) == 2 and not any("out" in f.split("/") for f in files), files


def test_save_crops_names_are_unique_per_input(tiny_onnx, tmp_path):
    """a.jpg and a.png both wrote crops/a_face0.jpg (one lost); an input under crops/
    collided with the crops."""
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    chip = cv2.imread(str(utk_files(1)[0]))
    cv2.imwrite(str(src / "a.jpg"), chip)
    cv2.imwrite(str(src / "a.png"), chip)
    out = tmp_path / "out"
    res = demo("--img-dir", src, "--output-dir", out, "--resume", tiny_onnx, "--save-crops")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "crops").iterdir()) == ["a.jpg_face0.jpg", "a.png_face0.jpg"]
    (src / "crops").mkdir()
    shutil.copy(src / "a.jpg", src / "crops" / "a.jpg_face0.jpg")
    res = demo("--img-dir", src, "--output-dir", tmp_path / "out2", "--resume", tiny_onnx, "--save-crops")
    assert res.exit_code == 2 and "where the crops go" in res.stderr, res.output


def test_an_unreadable_sub_folder_is_named_not_skipped_silently(tiny_onnx, tmp_path, monkeypatch):
    """A mode-000 sub-folder was skipped without a word by demo and prepare. (The tests
    may run as root, who reads such folders, so the folder's listing is made to fail.)"""
    from agecli.data.readers import list_images

    src = tmp_path / "in"
    (src / "locked").mkdir(parents=True)
    shutil.copy(utk_files(1)[0], src / "a.jpg")
    shutil.copy(utk_files(1)[0], src / "locked" / "b.jpg")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    res = demo("--img-dir", src, "--resume", tiny_onnx)
    assert res.exit_code == 0 and "locked" in res.stderr and "cannot read this folder" in res.stderr, res.output
    import logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger("agecli").addHandler(handler)
    try:
        assert [p.name for p in list_images(src)] == ["a.jpg"]  # what prepare reads
    finally:
        logging.getLogger("agecli").removeHandler(handler)
    assert any("cannot read this folder" in m and "locked" in m for m in seen), seen


def test_a_second_run_into_a_busy_folder_is_refused_and_a_dead_runs_lock_taken_over(photos_dir, tiny_onnx, tmp_path):
    """Two demo runs into one folder lost one run's rows (with a false "not written by
    agecli" message) and shared one partial file."""
    import signal
    import time

    src = tmp_path / "in"
    src.mkdir()
    for i in range(60):
        shutil.copy(photos_dir / "group_1.jpg", src / f"p{i:02d}.jpg")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([sys.executable, "-m", "agecli", "demo", "--img-dir", str(src), "--output-dir", str(out),
                              "--resume", str(tiny_onnx), "--workers", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 120
        while not (out / ".agecli.lock").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, "the first run ended before the second could start"
        second = demo("--img-dir", src, "--output-dir", out, "--resume", tiny_onnx)
        assert second.exit_code == 2 and "another agecli run" in second.stderr, second.output
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert (out / ".agecli.lock").exists()  # a killed run cannot clean up
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(utk_files(1)[0], one / "a.jpg")
    res = demo("--img-dir", one, "--output-dir", out, "--resume", tiny_onnx)
    assert res.exit_code == 0, res.output
    assert not (out / ".agecli.lock").exists()


def test_an_hdr_bomb_named_jpg_gets_a_row_and_the_run_goes_on(photos, tiny_onnx, tmp_path):
    """A Radiance HDR file named .jpg declaring 20000x20000 (Pillow cannot read its
    header) was decoded to 4.8 GB of floats before the pixel limit refused it."""
    from .test_prepare_inputs import make_float_bomb

    make_float_bomb(photos / "c.jpg", "hdr")
    res = demo("--img-dir", photos, "--resume", tiny_onnx)
    assert res.exit_code == 1, res.output
    by_file = {r["file"]: r for r in rows(res.stdout)}
    assert by_file[str(photos / "c.jpg")]["error"] == "unreadable"
    assert "c.jpg" in res.stderr and "20000x20000 exceeds" in res.stderr
    assert by_file[str(photos / "a.jpg")]["age"] != ""


HEIC_HEAD = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"  # how an iPhone photo begins


def test_photos_agecli_cannot_decode_get_a_row_saying_so(photos, tiny_onnx):
    """An iPhone's .heic photos (and camera RAW files) vanished from the run without a word."""
    (photos / "IMG_0001.HEIC").write_bytes(HEIC_HEAD + bytes(2000))
    (photos / "raw.dng").write_bytes(b"II*\x00" + bytes(64))
    res = demo("--img-dir", photos, "--resume", tiny_onnx)
    assert res.exit_code == 1, res.output
    by_name = {Path(r["file"]).name: r for r in rows(res.stdout)}
    assert set(by_name) == {"a.jpg", "b.jpg", "IMG_0001.HEIC", "raw.dng"}
    assert by_name["IMG_0001.HEIC"]["error"] == "unreadable" and by_name["raw.dng"]["error"] == "unreadable"
    said = " ".join(res.stderr.split())
    assert "IMG_0001.HEIC" in said and "HEIC file, which agecli has no decoder for" in said
    assert "convert it to JPEG or PNG" in said


def test_annotated_png_copies_print_no_opencv_warnings(photos, tiny_onnx, tmp_path):
    """Each PNG copy printed OpenCV's "[ WARN ] ... unsupported key" (a JPEG setting
    given to the PNG encoder)."""
    import cv2

    cv2.imwrite(str(photos / "c.png"), cv2.imread(str(photos / "a.jpg")))
    proc = run_cli("demo", "--img-dir", photos, "--resume", tiny_onnx, "--output-dir", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "c.png").read_bytes().startswith(b"\x89PNG")
    assert "WARN" not in proc.stderr, proc.stderr
