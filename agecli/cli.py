"""The `agecli` command: one thin function per subcommand, no logic here.

Exit codes: 0 success; 1 some inputs failed (reported on stderr and in the output);
2 bad usage, missing model or a subcommand that is not built yet.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

err = Console(stderr=True)
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Facial age estimation: prepare face sets, train, validate, run and export age models.\n\n"
         "Exit codes: 0 success, 1 some inputs failed (reported), 2 bad usage or missing model.",
)


def fail(msg: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {msg}")
    raise typer.Exit(code)


@app.command(epilog="Examples:\n\n  agecli prepare --dataset utkface --data-dir data/UTKFace\n\n"
                    "  agecli prepare --dataset fgnet --data-dir FGNET/images --split subject --folds 82\n\n"
                    "  agecli prepare --dataset csv --data-dir photos --out aligned")
def prepare(
    dataset: str = typer.Option(..., help="utkface, fgnet, megaage, megaage_asian, morph, aaf, afad, appa, csv, folder"),
    data_dir: Path = typer.Option(..., exists=True, file_okay=False, help="Dataset root (images, lists)."),
    out: Optional[Path] = typer.Option(None, help="Where to write the CSVs (default: the data dir)."),
    split: str = typer.Option("auto", help="auto (official if the set has one, else hash), official, hash, subject."),
    folds: int = typer.Option(5, help="Number of folds for --split subject."),
    name: Optional[str] = typer.Option(None, help="Prefix of the output files (default: the dataset name)."),
    workers: int = typer.Option(2, help="Processes running the detector."),
    threshold: float = typer.Option(0.8, help="Detector score threshold."),
) -> None:
    """Detect and align every face of a labelled set; write <name>_{train,valid,test}_align.csv."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .data.prepare import prepare as run_prepare

    if split not in ("auto", "official", "hash", "subject"):
        fail(f"--split must be auto, official, hash or subject, not {split!r}")
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("aligning", total=None)
        try:
            summary = run_prepare(dataset, data_dir, out, split=split, folds=folds, workers=workers,
                                  score_threshold=threshold, name=name,
                                  progress=lambda d, t: bar.update(task, completed=d, total=t))
        except ValueError as e:
            fail(str(e))
    err.print(f"{summary['accepted']}/{summary['total']} faces aligned, {summary['rejected']} rejected "
              f"({summary['rejected_file']})")
    for part, n in summary["splits"].items():
        err.print(f"  {part}: {n}  {summary['files'][part]}")
    err.print(f"report: {summary['report']}")


def _not_built(name: str) -> None:
    fail(f"`agecli {name}` is not built yet", 2)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context) -> None:
    """Train an age model (classification + expectation, mean-variance, regression...)."""
    _not_built("train")


@app.command("train-ldl", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_ldl(ctx: typer.Context) -> None:
    """Train with label distribution learning (DLDL-v2: KL + L1 on the expectation)."""
    _not_built("train-ldl")


@app.command("train-mt", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train_mt(ctx: typer.Context) -> None:
    """Train age + gender + ethnicity together (multi-task)."""
    _not_built("train-mt")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def val(ctx: typer.Context) -> None:
    """Evaluate a model on an aligned CSV: MAE, CA(3/5/7), per-group error reports."""
    _not_built("val")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def demo(ctx: typer.Context) -> None:
    """Estimate the age of every face in images, a video or the webcam."""
    _not_built("demo")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def export(ctx: typer.Context) -> None:
    """Export a checkpoint to ONNX or TorchScript, checked against the torch model."""
    _not_built("export")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
