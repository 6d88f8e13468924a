"""Resume bookkeeping of `demo --output-dir`: rows are appended to
`.predictions.csv.agecli-partial` as images finish (before their annotated copy is written, so
an existing copy means saved rows); at the end they are merged into `predictions.csv`
(written atomically) and the partial file is removed. With `skip_existing` the rows of
images whose annotated copy is already there are re-used, so an interrupted run
finishes only the rest, but only when `.agecli-demo.json` says the same model and settings
produced them (`prior_rows`)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..atomic import write_bytes
from .outputs import OUTPUT_DIR_KEY, PARTIAL, PREDICTIONS, OutputFolder, annotated_path
from .formats import CSV
from .rows import COLUMNS, read_rows

logger = logging.getLogger(__name__)
Rows = list[dict[str, Any]]


def prior_rows(folder: OutputFolder, settings: dict) -> dict[str, Rows]:
    """Rows an earlier run left for --skip-existing, kept only when the same model and
    settings produced them; keyed by the copy's path inside the folder."""
    before = folder.state()
    under = (before or {}).get(OUTPUT_DIR_KEY)
    prior = {}
    for f in (PREDICTIONS, PARTIAL):
        prior.update({_in_folder(output, under): rows for output, rows in read_rows(folder.path / f).items()})
    changed = [k for k in settings if k != "model" and (before or {}).get(k) != settings[k]]
    if prior and changed:
        what = ("no record of the model that produced them" if before is None else
                ", ".join(f"{k} {before.get(k)} -> {settings[k]}" for k in changed))
        logger.info("`skip_existing`: the earlier rows in %s do not match this run (%s); "
                    "processing every image again", folder.path, what)
        return {}
    return prior


def _in_folder(output: str, under: str | None) -> str:
    """An `output` cell as the copy's path inside the folder: a row holds the path a user
    can open, the --output-dir of its run (`under`) joined with that; rows of older
    versions hold the inner path alone."""
    if under is not None:
        try:
            return Path(output).relative_to(under).as_posix()
        except ValueError:
            pass
    return output


class PredictionsLog:
    """The partial file of a run, the rows kept from an earlier one, and the merge."""

    def __init__(self, folder: OutputFolder, prior: dict[str, Rows]) -> None:
        self.folder = folder
        self.out_dir = out_dir = folder.path
        self.prior = prior
        partial = out_dir / PARTIAL
        keep = bool(prior) and partial.is_file()
        # surrogateescape: a file name that is not UTF-8 (caf\xe9.jpg) is written as its own bytes
        self.fh = open(partial, "a" if keep else "w", newline="", encoding="utf-8", errors="surrogateescape")
        if not keep:
            self.fh.write(CSV.header(COLUMNS))
        elif not _ends_with_newline(partial):
            self.fh.write("\n")  # the last line was cut by the interruption: start a new one
        self.order: list[str] = []
        self.rows: dict[str, Rows] = {}  # this run's rows by input name: fresh, or kept from the earlier run

    def done_before(self, name: str) -> bool:
        """True when an earlier run saved this image's rows and its annotated copy."""
        copy = annotated_path(self.out_dir, name)
        return self.folder.rel(copy) in self.prior and copy.exists()

    def kept(self, name: str) -> Rows:
        """The earlier run's rows of a skipped image, their `output` spelled as this run's
        (the folder may have been given another way: relative, absolute); they go into
        the merge like that."""
        copy = annotated_path(self.out_dir, name)
        rows = [{**r, "output": copy.as_posix()} for r in self.prior[self.folder.rel(copy)]]
        self.order.append(name)
        self.rows[name] = rows
        return rows

    def record(self, name: str, rows: Rows) -> None:
        """Save one image's fresh rows (flushed, before its copy is written)."""
        self.order.append(name)
        self.fh.write(CSV.lines(rows, COLUMNS))
        self.fh.flush()
        self.rows[name] = rows

    def close(self) -> None:
        self.fh.close()

    def merge(self) -> None:
        """predictions.csv = this run's images in input order (new rows, or the kept rows
        of skipped images), written atomically; then the partial file goes."""
        text = CSV.table([r for name in self.order for r in self.rows[name]], COLUMNS)
        write_bytes(self.folder.claim(self.out_dir / PREDICTIONS), text.encode("utf-8", "surrogateescape"))
        (self.out_dir / PARTIAL).unlink(missing_ok=True)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
