"""The formats `demo` writes its rows in, one registry: `--format` (its choices, its help
and its check) and every writer read `FORMATS`. A format turns rows (dicts over a
column list; None for an empty value) into text: a header written once (empty for
none) and the lines of some rows. The rows go to stdout in the chosen format; a
video's table of people goes to `tracks.csv` and, in another format, also to
`tracks.<suffix>`; `predictions.csv` (which a resumed run reads back) is always CSV.

A new format is a `RowFormat` below and its name in the `FORMATS` line. Standard
library only: `cli.py` imports this for `demo --help`.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Rows = Sequence[dict[str, Any]]


@dataclass(frozen=True)
class RowFormat:
    name: str  # the --format value
    suffix: str  # the extension of its files (tracks.<suffix>)
    help: str  # how --format's help describes it
    header: Callable[[list[str]], str]  # the text before the first row
    lines: Callable[[Rows, list[str]], str]  # the text of some rows, each ending in a newline

    def table(self, rows: Rows, columns: list[str]) -> str:
        """A whole table: header and rows."""
        return self.header(columns) + self.lines(rows, columns)


def _csv_text(columns: list[str], rows: Rows, header: bool) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    if header:
        w.writeheader()
    w.writerows({k: "" if r[k] is None else r[k] for k in columns} for r in rows)
    return buf.getvalue()


CSV = RowFormat("csv", "csv", "csv (header once)", header=lambda columns: _csv_text(columns, (), True),
                lines=lambda rows, columns: _csv_text(columns, rows, False))
JSONL = RowFormat("jsonl", "jsonl", "jsonl (one JSON object a line)", header=lambda columns: "",
                  lines=lambda rows, columns: "".join(json.dumps({k: r[k] for k in columns}, ensure_ascii=False) + "\n"
                                                      for r in rows))

FORMATS: dict[str, RowFormat] = {f.name: f for f in (CSV, JSONL)}


def format_names() -> str:
    """The names for a message: "csv or jsonl", "csv, jsonl or tsv"."""
    names = list(FORMATS)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def format_help() -> str:
    """--format's help, from the registry."""
    helps = [f.help for f in FORMATS.values()]
    return "Rows on stdout: " + (helps[0] if len(helps) == 1 else f"{', '.join(helps[:-1])} or {helps[-1]}") + "."
