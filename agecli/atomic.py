"""Atomic writes: every file agecli produces appears whole or not at all.

The bytes go to a working file beside the target (`.<name>.agecli-<pid>.tmp`: a name
no user file has, so a user's `a.jpg.tmp` is never touched) and are renamed over it,
so an interrupted run never leaves a half-written checkpoint, CSV, model or image; a
write that fails (full disk, read-only folder) removes its working file and raises
OutputError naming the file.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from .errors import AgecliError


class OutputError(AgecliError):
    """An output that cannot be written (read-only, full disk, a file where a folder
    should be); the CLI exits with code 3."""


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def check_writable_dir(path: str | Path, what: str) -> Path:
    """Create the folder and prove a file can be written there, before any work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".agecli-write-test-"):
            pass
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot write there ({_reason(e)})") from None
    return path


def check_writable_file(path: str | Path, what: str) -> Path:
    """A file path that can be (re)written: not a folder, its folder writable."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path}: is a folder, not a file name")
    check_writable_dir(path.parent if str(path.parent) else Path("."), what)
    return path


def working_name(path: Path) -> Path:
    """The working file of an atomic write of `path`, agecli's and this process's alone."""
    return path.with_name(f".{path.name}.agecli-{os.getpid()}.tmp")


def write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = working_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise OutputError(f"cannot write {path}: {_reason(e)}") from None


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def figure_png(fig, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
