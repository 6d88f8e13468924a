"""A pool of worker processes that maps a function over a stream, results in input order.

`demo` (decode, detect, align) and `prepare` (detect, align) use it. Unlike
`Pool.imap` or `Executor.map`, it never runs ahead of the consumer by more than
`window` items, so memory stays bounded however long the input is. Workers start by
spawn (a fork after torch's or ONNX Runtime's threads have run can hang) and ignore
Ctrl-C: the parent stops them.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from .errors import AgecliError

T = TypeVar("T")
R = TypeVar("R")
_END: Any = object()


class WorkerError(AgecliError):
    """A worker process died (killed for memory, or a crash in native code)."""


def default_workers() -> int:
    """The cores this process may run on (the CPU affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def die_with_parent(parent: int) -> None:
    """Ask Linux to end this process when its parent dies (SIGKILL included): a worker of
    a killed run (700-800 MB each) must not live on with parent 1. A parent that died
    while this worker was starting, before the request, is caught by its pid. Elsewhere
    a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """While workers start: a spawned process re-runs the main script (to find functions
    defined there) unless it has no file. Ours live in modules, and re-running a script
    that imports torch would cost every worker seconds."""
    main = sys.modules.get("__main__")
    path = main.__dict__.pop("__file__", None) if main is not None and getattr(main, "__spec__", None) is None else None
    try:
        yield
    finally:
        if path is not None:
            main.__file__ = path


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops the pool
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int,
                initializer: Callable[..., None] | None = None, initargs: tuple = (),
                window: int | None = None) -> Iterator[R]:
    """`fn(item)` for every item, in input order, run in `workers` processes.

    At most `window` items (default 4 per worker) are submitted but not yet consumed.
    `fn`, the items and the results must pickle, and `fn` and
    `initializer` must live in an importable module (workers do not run the main script). Raises
    WorkerError when a worker dies; stopping early (break, an exception) cancels the rest.
    """
    window = max(1, window or 4 * workers)
    pending: deque[Future] = deque()
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start_worker,
                               initargs=(initializer, initargs, os.getpid()))
    it = iter(items)
    try:
        while True:
            while len(pending) < window:
                item = next(it, _END)
                if item is _END:
                    break
                with _main_script_hidden():  # a submit may start a worker
                    pending.append(pool.submit(fn, item))
            if not pending:
                return
            head = pending.popleft()
            try:
                result = head.result()
            except BrokenProcessPool:
                raise WorkerError("a worker process died (out of memory?); try fewer `workers`", setting="workers") from None
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

