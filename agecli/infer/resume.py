"""Resume bookkeeping of `demo --output-dir`: rows are appended to
`predictions.csv.partial` as images finish (before their annotated copy is written, so
an existing copy means saved rows); at the end they are merged into `predictions.csv`
(written atomically) and the partial file is removed. With `skip_existing` the rows of
images whose annotated copy is already there are re-used, so an interrupted run
finishes only the rest, but only when `.agecli-demo.json` says the same model and settings
produced them (`prior_rows`)."""
from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

from ..atomic import write_bytes
from .outputs import PARTIAL, PREDICTIONS, OutputFolder, annotated_path
from .rows import COLUMNS, csv_cells, read_rows

logger = logging.getLogger(__name__)
Rows = list[dict[str, Any]]


def prior_rows(folder: OutputFolder, settings: dict) -> dict[str, Rows]:
    """Rows an earlier run left for --skip-existing, kept only when the same model and
    settings produced them."""
    prior = read_rows(folder.path / PREDICTIONS)
    prior.update(read_rows(folder.path / PARTIAL))
    before = folder.state()
    changed = [k for k in settings if k != "model" and (before or {}).get(k) != settings[k]]
    if prior and changed:
        what = ("no record of the model that produced them" if before is None else
                ", ".join(f"{k} {before.get(k)} -> {settings[k]}" for k in changed))
        logger.info("--skip-existing: the earlier rows in %s do not match this run (%s); "
                    "processing every image again", folder.path, what)
        return {}
    return prior


class PredictionsLog:
    """The partial file of a run, the rows kept from an earlier one, and the merge."""

    def __init__(self, folder: OutputFolder, prior: dict[str, Rows]) -> None:
        self.folder = folder
        self.out_dir = out_dir = folder.path
        self.prior = prior
        partial = out_dir / PARTIAL
        keep = bool(prior) and partial.is_file()
        self.fh = open(partial, "a" if keep else "w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.fh, fieldnames=COLUMNS, lineterminator="\n")
        if not keep:
            self.writer.writeheader()
        elif not _ends_with_newline(partial):
            self.fh.write("\n")  # the last line was cut by the interruption: start a new one
        self.order: list[str] = []
        self.new_rows: dict[str, Rows] = {}

    def done_before(self, name: str) -> bool:
        """True when an earlier run saved this image's rows and its annotated copy."""
        return name in self.prior and annotated_path(self.out_dir, name).exists()

    def kept(self, name: str) -> Rows:
        """The earlier run's rows of a skipped image (they go into the merge as they are)."""
        self.order.append(name)
        return self.prior[name]

    def record(self, name: str, rows: Rows) -> None:
        """Save one image's fresh rows (flushed, before its copy is written)."""
        self.order.append(name)
        self.writer.writerows(csv_cells(r) for r in rows)
        self.fh.flush()
        self.new_rows[name] = rows

    def close(self) -> None:
        self.fh.close()

    def merge(self) -> None:
        """predictions.csv = this run's images in input order (new rows, or the kept rows
        of skipped images), written atomically; then the partial file goes."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for name in self.order:
            w.writerows(csv_cells(r) for r in self.new_rows.get(name) or self.prior.get(name, []))
        write_bytes(self.folder.claim(self.out_dir / PREDICTIONS), buf.getvalue().encode("utf-8"))
        (self.out_dir / PARTIAL).unlink(missing_ok=True)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
