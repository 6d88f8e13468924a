"""Output folders that never lose a user's file: a ledger of what agecli wrote there.

Every file a command writes into its output folder is listed in the folder's ledger
(one relative name a line, names escaped so a newline in a file name cannot forge an
entry) before it is written. A file that exists and is not listed is the user's: it is
never replaced or deleted. `demo` and `val` both keep one.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .atomic import OutputError, check_writable_dir
from .errors import UsageError


LOCK = ".agecli.lock"  # the pid of the run writing into the folder now


class FolderBusy(UsageError):
    """Another agecli run is writing into this output folder (exit 2)."""


class OwnedFolder:
    """An output folder and the names in it agecli wrote (and so may replace); `setting`
    is the option that named it, for messages."""

    def __init__(self, path: Path, ledger: str, own: tuple[str, ...] = (), setting: str = "output_dir") -> None:
        check_writable_dir(path, f"`{setting}`")
        self.path, self.setting = path, setting
        self.ledger = path / ledger
        self.written: set[str] = set()
        if self.ledger.is_file():
            self.written = {_unescape(line) for line in self.ledger.read_text(encoding="utf-8", errors="surrogateescape").splitlines()}
        self.written.update((ledger, LOCK, *own))

    def rel(self, target: Path) -> str:
        return target.relative_to(self.path).as_posix()

    def foreign(self, target: Path) -> bool:
        """True when `target` exists and agecli did not write it (a user's file)."""
        return os.path.lexists(target) and self.rel(target) not in self.written

    def claim(self, target: Path) -> Path:
        """List `target` as written by agecli (before writing it); refuse a user's file."""
        if self.foreign(target):
            raise OutputError(f"{target} exists and was not written by agecli; not replacing it")
        rel = self.rel(target)
        if rel not in self.written:
            self.written.add(rel)
            with open(self.ledger, "a", encoding="utf-8", errors="surrogateescape") as fh:
                fh.write(_escape(rel) + "\n")
        return target


    @contextmanager
    def lock(self) -> Iterator[None]:
        """One run at a time in this folder: a second one is refused while the first runs
        (two runs interleaved their rows and shared one partial file). A lock whose process
        is gone (killed) is taken over."""
        path = self.path / LOCK
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                owner = _lock_owner(path)
                if (owner is not None and pid_alive(owner)) or (owner is None and _younger_than(path, 10.0)):
                    raise FolderBusy(f"`{self.setting}` {self.path}: another agecli run (process {owner}) is "
                                     f"writing there; wait for it or choose another folder (no such run? delete "
                                     f"{path})", setting=self.setting) from None
                path.unlink(missing_ok=True)  # its run died without cleaning up
        else:
            raise FolderBusy(f"`{self.setting}` {self.path}: cannot take its lock {path}", setting=self.setting)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _younger_than(path: Path, seconds: float) -> bool:
    """A lock just being written holds no pid yet: not to be taken as stale."""
    import time

    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _escape(name: str) -> str:
    """A name on one line: JSON-quoted when it holds a line break or starts with a quote."""
    return json.dumps(name) if any(c in name for c in "\n\r") or name.startswith('"') else name


def _unescape(line: str) -> str:
    if line.startswith('"'):
        try:
            return json.loads(line)
        except ValueError:
            return line
    return line
