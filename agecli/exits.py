"""One table of exit codes for every subcommand, and the guard that honours it.

Library code raises typed errors; the guard around each CLI command turns the ones
that escape into one line on stderr and the code below. A closed pipe (`| head`) ends
quietly, as Unix tools do (`demo --output-dir` first finishes its folder: the rows stop,
not the run).
"""
from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

DONE = 0  # everything processed
INPUTS_FAILED = 1  # finished, but some inputs failed (reported in the output and on stderr)
USAGE = 2  # bad usage: options, config values, labels, models that cannot be used
OUTPUT = 3  # an output or the environment failed: unwritable, disk full, no CUDA
INTERRUPTED = 130  # Ctrl-C
TERMINATED = 143  # SIGTERM (128 + 15), handled as Ctrl-C is
BROKEN_PIPE = 141  # stdout closed by the reader (128 + SIGPIPE, what `yes | head` gives)

MEANINGS = {DONE: "done", INPUTS_FAILED: "some inputs failed (reported)",
            USAGE: "bad usage (options, config, labels, model)",
            OUTPUT: "an output or the environment failed (unwritable, disk full)",
            INTERRUPTED: "interrupted (Ctrl-C)", TERMINATED: "terminated (SIGTERM)",
            BROKEN_PIPE: "stdout closed by the reader"}


def exit_table(notes: dict[int, str] | None = None) -> str:
    """The exit codes as one sentence for a help text, from MEANINGS; `notes` adds what a
    code means for one command (demo: which inputs count as failed)."""
    notes = notes or {}
    parts = [f"{code} {meaning}" + (f": {notes[code]}" if code in notes else "") for code, meaning in MEANINGS.items()]
    return "Exit codes: " + "; ".join(parts) + "."


TABLE = exit_table()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test runner's buffer)
        pass


def guard(fail: Callable[[str, int], None], resume_hint: str = "") -> Callable:
    """Decorate a command: KeyboardInterrupt -> 130, SIGTERM -> 143 (with how to resume), BrokenPipeError
    -> 141 quietly, an output/environment failure (OutputError, OSError) -> 3."""
    from .atomic import OutputError

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Terminated:
                fail("terminated (SIGTERM)" + (f"; {resume_hint}" if resume_hint else ""), TERMINATED)
            except KeyboardInterrupt:
                fail("interrupted" + (f"; {resume_hint}" if resume_hint else ""), INTERRUPTED)
            except BrokenPipeError:
                _silence_stdout()
                sys.exit(BROKEN_PIPE)
            except OutputError as e:
                fail(str(e), OUTPUT)
            except OSError as e:
                where = f"{e.filename}: " if e.filename else ""
                fail(f"{where}{e.strerror or e}", OUTPUT)
        return wrapper
    return deco


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `timeout`, systemd and batch schedulers send): stopped as Ctrl-C
    stops a run (partial outputs kept, workers ended), then exit 143."""


def terminate_like_ctrl_c() -> None:
    """In the CLI process: turn SIGTERM into Terminated, raised in the main thread."""
    import signal

    def stop(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, stop)
