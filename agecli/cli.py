"""The `agecli` command: one thin function per subcommand, no logic here.

Exit codes (agecli/exits.py, the same for every subcommand): 0 done; 1 some inputs
failed (reported); 2 bad usage; 3 an output or the environment failed; 130
interrupted; 141 stdout closed by the reader. A command that needs the `train` extra
(torch) on the light install exits 2.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperCommand, TyperGroup
from rich.console import Console
from rich.markup import escape

from . import __version__
from .errors import RAY_EXTRA_HINT, OptionError
from .exits import BROKEN_PIPE, DONE, INPUTS_FAILED, INTERRUPTED, TABLE, USAGE, exit_table, guard
from .demo.formats import format_help
from .demo.rows import COLUMNS
from .data.readers import READERS
from .model.objectives import loss_help

err = Console(stderr=True)


class _FlagsAsFlags:
    """typer 0.29's rich help prints a type after every option, flags too (`--webcam <bool>`),
    which reads as if the flag took a value; an empty metavar leaves the type column blank."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for p in params:
            if getattr(p, "is_flag", False) and p.metavar is None:
                p.metavar = ""
        return params


# The running command's settings -> their flags, set as it parses its arguments; module
# state, not the click context, so that a log line from a reader thread finds it too.
_FLAGS: dict[str, str] = {}


def flag_names(command, args: list[str]) -> dict[str, str]:
    """Each option of `command` by its parameter name, which is the library's name for the
    setting (`output_dir`), -> its flag: the spelling in `args` where the user typed one of
    several (`--resume` for `--model`), else the first. Read from the command itself, so it
    cannot fall behind an option."""
    typed = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    flags = {}
    for p in command.params:
        names = [o for o in p.opts if o.startswith("--")]  # an argument's opts are its name alone
        if names:
            flags[p.name] = next((o for o in names if o in typed), names[0])
    return flags


SETTING = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")  # how library messages name a setting (errors.AgecliError)


def flag_words(text: str) -> str:
    """A library message in the CLI's words: each `setting` the running command has as an
    option becomes its flag (`expand` -> --expand); other backticked names stay as written."""
    return SETTING.sub(lambda m: _FLAGS.get(m[1], m[0]), text)


class Command(_FlagsAsFlags, TyperCommand):
    def parse_args(self, ctx, args):
        _FLAGS.clear()
        _FLAGS.update(flag_names(self, list(args)))
        return super().parse_args(ctx, args)


class Group(_FlagsAsFlags, TyperGroup):
    pass


app = typer.Typer(
    cls=Group,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Facial age estimation: prepare face sets, train, validate, run and export age models.\n\n" + TABLE,
)


def log(msg: str) -> None:
    """One plain line on stderr (no markup, no wrapping), above any progress bar; the
    settings a library message names become flags."""
    err.print(flag_words(msg), markup=False, highlight=False, soft_wrap=True)


def fail(msg: str, code: int = USAGE) -> None:
    err.print(f"[red]error:[/red] {escape(flag_words(msg))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class StderrLog(logging.Handler):
    """The library's log records as plain stderr lines (warnings marked), above any
    progress bar: library code logs, only the CLI prints."""

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        log(f"warning: {msg}" if record.levelno >= logging.WARNING else msg)


def _print_version(value: bool) -> None:
    if value:
        print(f"agecli {__version__}")
        raise typer.Exit()


@app.callback()
def setup(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the version and exit.")) -> None:
    """Route the `agecli` loggers to stderr once per process."""
    root = logging.getLogger("agecli")
    if not any(isinstance(h, StderrLog) for h in root.handlers):
        root.addHandler(StderrLog())
    root.setLevel(logging.INFO)
    root.propagate = False


def needs_torch(what: str) -> None:
    """One line and exit 2 when the light install lacks torch for this command."""
    from .errors import NeedsTrainExtra, require_torch

    try:
        require_torch(what)
    except NeedsTrainExtra as e:
        fail(str(e))


@app.command(cls=Command, epilog="Examples:\n\n  agecli prepare --dataset utkface --data-dir data/UTKFace\n\n"
                    "  agecli prepare --dataset fgnet --data-dir FGNET/images --split subject --folds 82\n\n"
                    "  agecli prepare --dataset csv --data-dir photos --out aligned\n\n" + TABLE)
@guard(fail, "run the same command again to resume")
def prepare(
    dataset: str = typer.Option(..., help=", ".join(READERS)),
    data_dir: Path = typer.Option(..., exists=True, file_okay=False, help="Dataset root (images, lists)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Where to write the CSVs (default: the data dir)."),
    split: str = typer.Option("auto", help="auto (official if the set has one, else hash), official, hash, subject."),
    folds: int = typer.Option(5, help="Number of folds for --split subject."),
    name: Optional[str] = typer.Option(None, help="Prefix of the output files (default: the dataset name)."),
    workers: Optional[int] = typer.Option(None, help="Processes running the detector (default: one per core)."),
    score_threshold: float = typer.Option(0.8, "--threshold", help="Detector score threshold."),
) -> None:
    """Detect and align every face of a labelled set; write <name>_{train,valid,test}_align.csv."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .data.prepare import prepare as run_prepare
    from .parallel import WorkerError

    if split not in ("auto", "official", "hash", "subject"):
        fail(f"--split must be auto, official, hash or subject, not {split!r}")
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("aligning", total=None)
        try:
            summary = run_prepare(dataset, data_dir, out_dir, split=split, folds=folds, workers=workers,
                                  score_threshold=score_threshold, name=name,
                                  progress=lambda d, t: bar.update(task, completed=d, total=t),
                                  log=lambda m: bar.console.print(flag_words(m), markup=False, highlight=False))
        except ValueError as e:
            fail(str(e))
        except WorkerError as e:
            fail(f"{e}; run again to go on from where it stopped", 1)
    err.print(f"{summary['accepted']}/{summary['total']} faces aligned, {summary['rejected']} rejected "
              f"({summary['rejected_file']})")
    for part, n in summary["splits"].items():
        err.print(f"  {part}: {n}  {summary['files'][part]}")
    err.print(f"report: {summary['report']}")
    if summary.get("failed"):
        err.print(f"{summary['failed']} images unreadable or with bad labels (listed in {summary['rejected_file']})")
        raise typer.Exit(INPUTS_FAILED)


TRAIN_EPILOG = ("Examples:\n\n  agecli {cmd} --data-dir data/utkface --dataset utkface --aug\n\n"
                "  agecli {cmd} --data-dir data/utkface --dataset utkface --aug MODEL.ARCH resnet18 "
                "MODEL.IMG_SIZE 112 TRAIN.OPT sgd TRAIN.LR 0.1 TRAIN.EPOCHS 30 TRAIN.BATCH_SIZE 64\n\n"
                "  agecli {cmd} --data-dir data/utkface --dataset utkface --resume runs/utkface/last.pth\n\n"
                "  agecli {cmd} --dataset utkface,aaf --data-dir data/utkface --data-dir data/aaf --aug\n\n"
                "Trailing KEY VALUE pairs override the defaults (see agecli/config.py). Each run gets its own "
                "folder (runs/x, runs/x2, ...) with its config.json, unless it resumes or --exist-ok is given.")
# Unknown options reach ctx.args, so that a negative override value (TRAIN.LR -1) is a
# value, not "No such option: -1"; a mistyped --option is still refused (_overrides).
TRAIN_CTX = {"allow_extra_args": True, "ignore_unknown_options": True}


def _overrides(args: list[str]) -> list[str]:
    """The trailing KEY VALUE pairs; a word like --agu is a mistyped option, not a key."""
    for a in args[::2]:
        if a.startswith("-"):
            raise OptionError(f"no such option: {a} (see --help)")
    return args


def _train(cmd: str, default_loss: str, ctx: typer.Context, data_dir: list[Path], dataset: str, aug: bool,
           expand: Optional[float], resume: Optional[Path], checkpoint: Optional[Path], multi_gpu: bool,
           pretrained: Optional[str], lr_find: bool, folds: int, exist_ok: bool = False) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    needs_torch(f"`agecli {cmd}`")
    from .model.checkpoint import CheckpointError
    from .runs import check_run, choose_folder, discard_unstarted, records_run, start_run, train_config
    from .train.trainer import DivergedError, TrainingError, TrainJob

    try:
        cfg = train_config(cmd, default_loss, _overrides(list(ctx.args)), expand)
        check_run(cfg, dataset, folds, checkpoint, pretrained, resume)
    except (ValueError, CheckpointError) as e:
        fail(str(e))
    folder = choose_folder(dataset, cfg, checkpoint, resume, exist_ok, multi_gpu)
    ckdir, fresh = folder.path, folder.fresh
    if folder.moved:
        log(f"{folder.wanted} holds an earlier run: this one goes to {ckdir} (--exist-ok to reuse {folder.wanted})")
    if records_run(multi_gpu):
        start_run(ckdir, cfg, {"subcommand": cmd, "data_dir": [str(d) for d in data_dir], "dataset": dataset,
                               "aug": aug, "resume": str(resume) if resume else None, "pretrained": pretrained,
                               "folds": folds, "lr_find": lr_find, "multi_gpu": multi_gpu})
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[stats]}"), console=err, transient=True) as bar:
        task = bar.add_task("loading", total=None, stats="")

        def progress(phase: str, done: int, total: int, stats: dict) -> None:
            text = "  ".join(f"{k} {v:.3g}" for k, v in stats.items())
            bar.update(task, description=phase, completed=done, total=total, stats=text)
            if not err.is_terminal and (done % 50 == 0 or done == total):
                bar.console.print(f"{phase} step {done}/{total}  {text}")  # a log line for nohup runs

        job = TrainJob(cfg, data_dir, dataset, ckdir, aug=aug, resume=resume,
                       pretrained=pretrained if pretrained else True, multi_gpu=multi_gpu,
                       log=lambda m: bar.console.print(flag_words(m)), progress=progress)
        try:
            if lr_find:
                from .train.lr_find import lr_find as run_lr_find

                res = run_lr_find(job)
                err.print(f"suggested TRAIN.LR {res['suggested_lr']:.2e}  (plot: {res['plot']})")
            elif folds > 1:
                from .train.folds import cross_validate

                res = cross_validate(job, folds)
                err.print(f"{folds}-fold MAE {res['mae_mean']:.3f} +- {res['mae_std']:.3f}  ({res['summary']})")
            else:
                from .train.trainer import train as run_train

                best = run_train(job)
                err.print(f"best validation: MAE {best.get('mae', float('nan')):.3f} at epoch {best.get('epoch')}  "
                          f"checkpoints in {ckdir}")
                if best.get("skipped_images"):
                    err.print(f"{best['skipped_images']} images could not be read and were left out (named above)")
                    raise typer.Exit(INPUTS_FAILED)
        except DivergedError as e:
            fail(str(e), INPUTS_FAILED)
        except (TrainingError, CheckpointError, ValueError) as e:
            if fresh:
                discard_unstarted(ckdir)
            fail(str(e))


def _train_options(cmd: str, default_loss: str, help_text: str):
    def command(
        ctx: typer.Context,
        data_dir: list[Path] = typer.Option(..., exists=True, file_okay=False,
                                            help="Folder with the aligned CSVs; once per --dataset set, or once for all."),
        dataset: str = typer.Option(..., help="Dataset name: the CSV prefix (<dataset>_train_align.csv); several train "
                                              "together: utkface,aaf."),
        aug: bool = typer.Option(False, "--aug", help="Augment the training faces. DATA.AUG photo (the default): flip, "
                                 "rotation, scale, shift, colour, gamma, and what real photos add: grayscale, colour "
                                 "cast, blur, low resolution, JPEG, noise, occlusion, frame edge. DATA.AUG print: "
                                 "those and faded, tinted prints. DATA.AUG basic: the first six only."),
        expand: Optional[float] = typer.Option(None, help="Box expansion around the face (default 0.25)."),
        resume: Optional[Path] = typer.Option(None, help="Continue from a checkpoint (last.pth)."),
        checkpoint: Optional[Path] = typer.Option(None, help="Checkpoint/log folder (default runs/<dataset>_<loss>_<arch>)."),
        multi_gpu: bool = typer.Option(False, "--multi-gpu", help="DistributedDataParallel; start with torchrun."),
        pretrained: Optional[str] = typer.Option(None, help="Weights to start from: a backbone state dict, or an agecli checkpoint (its heads too, where they fit: fine-tuning). Default: ImageNet for efficientnet_lite0."),
        lr_find: bool = typer.Option(False, "--lr-find", help="Sweep the learning rate, save the plot, suggest one."),
        folds: int = typer.Option(1, help="K-fold cross-validation over train+valid; reports mean and std MAE."),
        exist_ok: bool = typer.Option(False, "--exist-ok", help="Write into --checkpoint even when it holds an "
                                      "earlier run (default: a new numbered folder, runs/x2)."),
    ) -> None:
        _train(cmd, default_loss, ctx, data_dir, dataset, aug, expand, resume, checkpoint, multi_gpu,
               pretrained, lr_find, folds, exist_ok)

    command.__doc__ = help_text
    hint = "continue with --resume <run folder>/last.pth"
    app.command(cmd, cls=Command, context_settings=TRAIN_CTX, epilog=TRAIN_EPILOG.format(cmd=cmd) + "\n\n" + TABLE)(
        guard(fail, hint)(command))


_train_options("train", "ce", f"Train an age model; TRAIN.LOSS picks the objective, ce by default. {loss_help()}.")
_train_options("train-ldl", "ldl", "Train with label distribution learning (DLDL-v2: KL + lambda * L1 on the expectation).")
_train_options("train-mt", "mt", "Train age + gender + ethnicity together (multi-task, missing labels masked).")


PROVIDERS_HELP = ("ONNX Runtime execution providers, comma-separated, first preferred (e.g. "
                  "CUDAExecutionProvider,CPUExecutionProvider); default: CPU, or CUDA first with --device cuda "
                  "where this onnxruntime has it.")


@app.command(cls=Command, epilog="Examples:\n\n  agecli val --model runs/utkface_ldl_efficientnet_lite0/best.pth --data-dir data/utkface "
                    "--dataset utkface\n\n"
                    "  agecli val --ldl --model best.pth   (dataset from the checkpoint, CSVs in data/<dataset>/)\n\n"
                    "  agecli val --model model.onnx --data-dir data/utkface --dataset utkface --tta flip --baseline"
                    "\n\n" + TABLE)
@guard(fail)
def val(
    model: Optional[Path] = typer.Option(None, "--model", "--resume", help="Checkpoint (.pth) or exported model (.onnx) to evaluate (default: the shipped model)."),
    data_dir: Optional[list[Path]] = typer.Option(None, help="Folder with the aligned CSVs (default: data/<dataset>/ or the current folder, where the CSV is); once per --dataset set, or once for all."),
    dataset: Optional[str] = typer.Option(None, help="CSV prefix, <dataset>_<split>_align.csv (default: the dataset(s) the model was trained on); several are reported one by one: utkface,aaf."),
    split: str = typer.Option("test", help="Which split to evaluate: test, valid, train."),
    ldl: bool = typer.Option(False, "--ldl", help="The model outputs an age distribution; take its expectation (checked against the model's head)."),
    expand: Optional[float] = typer.Option(None, help="Box expansion of the crops (default: the model's; another value is allowed, with a warning)."),
    output_dir: Optional[Path] = typer.Option(None, help="Where the reports go (default: val_<dataset>_<split>/)."),
    runner: str = typer.Option("auto", help="auto (ONNX Runtime on CPU, torch on CUDA), torch or onnx."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    providers: Optional[str] = typer.Option(None, help=PROVIDERS_HELP),
    batch_size: int = typer.Option(64, help="Faces per forward pass."),
    tta: str = typer.Option("none", help="Test-time augmentation: none, or flip (average with the mirrored face)."),
    baseline: bool = typer.Option(False, "--baseline", help="Also report predicting the training median age for every face."),
    worst_threshold: float = typer.Option(10.0, help="worst.csv/worst.png list faces with |error| above this many years."),
    cache_dir: Optional[Path] = typer.Option(None, help="Crop cache (default: <data-dir>/.agecli_cache, shared with training)."),
    workers: int = typer.Option(2, help="Processes cropping faces when the cache is cold."),
) -> None:
    """Evaluate a model on an aligned CSV: MAE, CA(3/5/7), per-group error reports."""
    from .errors import UsageError
    from .eval.evaluate import ValOptions, val_sets
    from .infer.settings import InferSettings

    try:
        settings = InferSettings(runner=runner, device=device, batch_size=batch_size, expand=expand,
                                 providers=providers)
        sets = val_sets(model, dataset, data_dir or [])
    except UsageError as e:
        fail(str(e))
    skipped = 0
    for name, folder in sets:
        out = output_dir / name if output_dir is not None and len(sets) > 1 else output_dir
        if len(sets) > 1:
            err.print(f"== {name}")
        skipped += _val_one(ValOptions(model=model, data_dir=folder, dataset=name, split=split, ldl=ldl,
                                       output_dir=out, settings=settings, tta=tta, baseline=baseline,
                                       worst_threshold=worst_threshold, cache_dir=cache_dir, workers=workers))
    if skipped:
        raise typer.Exit(INPUTS_FAILED)  # the figures stand, over the faces that could be read


def _val_one(opts) -> int:
    """Evaluate one set and write its reports; returns how many of its images were skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .api import AgeEstimator
    from .atomic import OutputError
    from .errors import AgecliError
    from .eval.evaluate import check_options, evaluate_split
    from .eval.reports import check_output_dir, default_output_dir, terminal_tables, write_reports

    problem = ""
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("predicting", total=None)
        try:
            check_options(opts)
            est = AgeEstimator(opts.model, settings=opts.settings)
            ev = evaluate_split(est, opts, progress=lambda d, t: bar.update(task, completed=d, total=t),
                                ready=lambda: check_output_dir(opts.output_dir or Path.cwd(), default=opts.output_dir is None))
        except OutputError:
            raise  # the guard: exit 3
        except AgecliError as e:
            problem = str(e)
    if problem:
        fail(problem)
    ev.warnings[:] = [flag_words(w) for w in ev.warnings]  # summary.json, in the words of the flags typed
    try:
        write_reports(ev, opts.output_dir or default_output_dir(ev))
    except OutputError:
        raise
    except AgecliError as e:
        fail(str(e))
    for table in terminal_tables(ev):
        err.print(table)
    s = ev.summary
    if s.get("std_err_corr") is not None:
        err.print(f"predicted std vs |error|: r = {s['std_err_corr']:.2f}; "
                  f"{100 * s['within_1std']:.0f}% of faces within 1 std")
    err.print(f"reports: {ev.files['summary.json'].parent}/  (summary.json, {s['n_worst']} faces in worst.csv, "
              f"{s['seconds']:.1f} s)", markup=False, highlight=False)
    if s["skipped"]:
        err.print(f"{s['skipped']} images could not be read and are not in the figures (summary.json "
                  "skipped_photos names them)", markup=False, highlight=False)
    return int(s["skipped"])


COLUMN_NOTES = {"small_face": "1: too small for a reliable age", "error": "no_face | unreadable",
                "output": "the annotated copy, with --output-dir", "track": "the person, in a video or the webcam",
                "track_age": "that person's age over the frames so far", "track_std": "its std"}


def _columns_sentence() -> str:
    """demo's row columns for its help, from rows.COLUMNS, so the help cannot fall behind."""
    return ", ".join(f"{c} ({COLUMN_NOTES[c]})" if c in COLUMN_NOTES else c for c in COLUMNS)


DEMO_EPILOG = ("Examples:\n\n  agecli demo --output-dir annotated   (a sample photo: see what it does)\n\n"
               "  agecli demo --img-dir photos --output-dir annotated\n\n"
               "  agecli demo group.jpg 'trip/**/*.jpg' --format jsonl > ages.jsonl\n\n"
               "  find photos -name '*.png' | agecli demo --img-list - --model runs/utkface/best.pth\n\n"
               "  agecli demo --video clip.mp4 --every 5 --output-dir out   (out/clip.mp4 annotated, out/tracks.csv: one row per person)\n\n"
               "  agecli demo --img-dir photos --output-dir annotated --skip-existing   (finish an interrupted run)\n\n"
               "  agecli demo --img-dir /nfs/photos --output-dir annotated --ray ray://head:10001   (on a Ray cluster)\n\n"
               f"Rows (one per face) go to stdout: {_columns_sentence()}. Logs go to stderr. On a terminal with "
               "--output-dir the rows go only to predictions.csv and stderr gets a summary (--stdout: rows too).\n\n"
               "With --output-dir, a file agecli did not write there is never replaced.\n\n"
               + exit_table({INPUTS_FAILED: "inputs unreadable (rows with error=unreadable) or a video that ended early",
                             USAGE: "also a .pth model without the train extra (torch), an output folder holding the "
                                    "inputs or other files, --webcam and no webcam",
                             INTERRUPTED: "run again with --skip-existing to finish",
                             BROKEN_PIPE: "with --output-dir the run still finishes the folder and its predictions.csv"}))


def rows_to_stdout(is_tty: bool, output_dir: Path | None, force: bool) -> bool:
    """Whether demo's rows go to stdout: always into a pipe or file, but not onto a
    terminal when --output-dir keeps them in predictions.csv anyway (hundreds of CSV
    lines mixed with the progress bar help nobody reading a terminal); --stdout forces them."""
    return force or not (is_tty and output_dir is not None)


def _counts_line(s) -> str:
    return (f"{s.images} images, {s.faces} faces, {s.no_face} without a face, {s.unreadable} unreadable, "
            f"{s.skipped} skipped, {s.seconds:.1f} s")


def demo_summary(s, output_dir: Path | None) -> list[str]:
    """What a person at a terminal needs instead of the rows: the counts, the ages by
    decade, and where the annotated copies and predictions.csv are."""
    lines = [_counts_line(s) + (f"; {s.small_faces} faces too small for a reliable age" if s.small_faces else "")]
    if s.decades:
        lines.append("ages: " + ", ".join(f"{d}-{d + 9}: {n}" for d, n in sorted(s.decades.items())))
    if s.tracks:
        lines.append(f"{len(s.tracks)} people (tracks): " + "; ".join(_track_line(t) for t in s.tracks[:MAX_TRACK_LINES])
                     + ("; ..." if len(s.tracks) > MAX_TRACK_LINES else ""))
    if s.video_out is not None:
        lines.append(f"annotated video {s.video_out}, people in {output_dir / 'tracks.csv'}, "
                     f"every row in {output_dir / 'predictions.csv'}")
    elif output_dir is not None:
        lines.append(f"annotated copies in {output_dir}{os.sep}, every row in {output_dir / 'predictions.csv'}")
    return lines


MAX_TRACK_LINES = 10


def _track_line(t) -> str:
    gender = f" {t.gender}" if t.gender else ""
    return f"#{t.track} {t.age:.0f} ±{t.std:.0f}{gender} ({t.first_time:.1f}-{t.last_time:.1f} s)"


@app.command(cls=Command, epilog=DEMO_EPILOG)
@guard(fail, "run again with --skip-existing to finish")
def demo(
    inputs: Optional[list[str]] = typer.Argument(None, help="Image files, folders or quoted globs ('photos/**/*.jpg')."),
    img_dir: Optional[Path] = typer.Option(None, help="Folder of images, read recursively."),
    img_list: Optional[str] = typer.Option(None, help="File with one image path a line; '-' reads stdin."),
    video: Optional[Path] = typer.Option(None, help="Video file: its faces are tracked, one track per person; with "
                                                    "--output-dir an annotated video and tracks.csv are written."),
    every: int = typer.Option(1, help="Use every N-th video/webcam frame."),
    model: Optional[Path] = typer.Option(None, "--model", "--resume", help="Model: checkpoint (.pth) or exported .onnx (default: the shipped model)."),
    runner: str = typer.Option("auto", help="auto (ONNX Runtime on CPU, torch on CUDA), torch or onnx."),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N."),
    providers: Optional[str] = typer.Option(None, help=PROVIDERS_HELP),
    output_dir: Optional[Path] = typer.Option(None, help="Write annotated copies (same relative paths) and predictions.csv here."),
    save_crops: bool = typer.Option(False, "--save-crops", help="Also save each aligned face crop under OUTPUT_DIR/crops."),
    save_frames: bool = typer.Option(False, "--save-frames", help="With --video or --webcam: also save each processed "
                                                                  "frame, annotated, as a JPEG."),
    track_gap: float = typer.Option(1.0, help="Seconds a face may go unseen (hidden, missed) and keep its track."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip images whose annotated copy and rows exist (resume)."),
    fmt: str = typer.Option("csv", "--format", help=format_help()),
    det_threshold: float = typer.Option(0.8, "--threshold", help="Face detector score threshold."),
    max_side: int = typer.Option(1280, help="Larger photos are downscaled to this for detection."),
    expand: Optional[float] = typer.Option(None, help="Override the model's crop expansion (changes accuracy)."),
    batch_size: int = typer.Option(64, help="Faces per age-model batch."),
    webcam: bool = typer.Option(False, "--webcam", help="Read the webcam (Ctrl-C stops)."),
    attributes: Optional[str] = typer.Option(None, help="What each face row gives besides its age: age,gender (default) or "
                                                        "age,gender,ethnicity (asked for, never given by default; needs a model with an ethnicity head)."),
    labels: str = typer.Option("full", help="Labels on the annotated copies: full (\"34 ±4\"), age (\"34\") or none "
                                            "(boxes only). Small faces get a dimmer box and the age alone."),
    force_stdout: bool = typer.Option(False, "--stdout", help="Rows on stdout even on a terminal with --output-dir "
                                                               "(there they are otherwise left to predictions.csv)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary; warnings and errors still go to stderr."),
    int8: bool = typer.Option(False, "--int8", help="Run the shipped int8 face detector and (without --model) int8 age "
                                                    "model: faster on CPU, ages within the model card's int8 table."),
    workers: Optional[int] = typer.Option(None, help="Processes, each running the whole pipeline on one core (default: one per core, one per 24 inputs at most; with --device cuda, 1; 1: this process alone, on every core). With --ray: actors (default: one per CPU, or GPU, of the cluster)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                      help=f"Run on a Ray cluster, which needs Ray: {escape(RAY_EXTRA_HINT)}. ADDRESS such as "
                                           "ray://head:10001 or auto; alone (or 'local'), RAY_ADDRESS, this machine's "
                                           "cluster or a new one. Every node reads the inputs at the same paths; "
                                           "outputs are written here."),
) -> None:
    """Estimate the age of every face in images, a video or the webcam (no input: a sample photo)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .atomic import OutputError
    from .errors import AgecliError
    from .demo.run import DemoOptions, run_demo
    from .infer.settings import InferSettings
    from .infer.sources import UnreadableVideo
    from .parallel import WorkerError

    try:
        settings = InferSettings(runner=runner, device=device, batch_size=batch_size, det_threshold=det_threshold,
                                 max_side=max_side, expand=expand, providers=providers, attributes=attributes,
                                 int8=int8)
    except AgecliError as e:
        fail(str(e))
    opts = DemoOptions(inputs=inputs or [], img_dir=img_dir, img_list=img_list, video=video, every=every, model=model,
                       settings=settings, output_dir=output_dir, save_crops=save_crops, skip_existing=skip_existing,
                       fmt=fmt, webcam=webcam, workers=workers, ray=ray, labels=labels, save_frames=save_frames,
                       track_gap=track_gap)
    to_stdout = rows_to_stdout(sys.stdout.isatty(), output_dir, force_stdout)
    if quiet:
        logging.getLogger("agecli").setLevel(logging.WARNING)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task("images", total=None)
        try:
            s = run_demo(opts, sys.stdout if to_stdout else None,
                         progress=lambda d, t: bar.update(task, completed=d, total=t))
        except UnreadableVideo as e:
            fail(str(e), INPUTS_FAILED)
        except WorkerError as e:
            fail(f"{e}; run again with --skip-existing to finish the rest", 1)
        except OutputError:
            raise  # the guard: exit 3
        except AgecliError as e:
            fail(str(e))
    if not quiet:
        for line in ([_counts_line(s)] if to_stdout else demo_summary(s, output_dir)):
            log(line)
    if s.stdout_closed:
        log(f"stdout was closed by the reader; {output_dir} is complete, every row in {output_dir / 'predictions.csv'}")
        raise BrokenPipeError  # the guard: exit 141, as the table says, quietly
    if s.unreadable or s.ended_early:
        raise typer.Exit(INPUTS_FAILED)


@app.command(cls=Command, epilog="Examples:\n\n  agecli export --model runs/utkface/best.pth --images photos\n\n"
                    "  agecli export --model best.pth --fp16 --output weights/agecli_default.onnx\n\n"
                    "  agecli export --model best.pth --int8 --calibrate data/utkface --calibrate data/aaf --images photos\n\n"
                    "  agecli export --model best.pth --format torchscript\n\n"
                    "The file is written (atomically) only when the exported model's ages agree with the "
                    "torch model's on the same crops: within 0.05 years (fp32) or 0.5 (fp16). --int8 quantizes "
                    "the float32 export statically (int8 weights per channel, activation ranges calibrated on the "
                    "--calibrate faces) and writes it only when its mean |age change| against the float export on "
                    "the --images faces is within --int8-tolerance (0.5 years), unless --force.\n\n"
                    + exit_table({DONE: "the model written and verified",
                                  INPUTS_FAILED: "here, the check failed or int8 changes the ages too much (nothing "
                                                 "written)",
                                  USAGE: "also a file that is not a checkpoint"}))
@guard(fail)
def export(
    checkpoint: Path = typer.Option(..., "--model", "--resume", help="Checkpoint (.pth) to export."),
    fmt: str = typer.Option("onnx", "--format", help="onnx or torchscript."),
    opset: int = typer.Option(17, help="ONNX opset (11-20)."),
    fp16: bool = typer.Option(False, "--fp16", help="Store ONNX weights as float16 (half the file, fp32 maths)."),
    int8: bool = typer.Option(False, "--int8", help="Static int8 quantization (ONNX Runtime, QDQ), calibrated on "
                                                    "--calibrate faces; checked on the --images faces."),
    calibrate: Optional[list[Path]] = typer.Option(None, help="With --int8: a prepared set's folder (its train split's "
                                                              "crops) or a folder of photos; may repeat (shared evenly)."),
    calibration_method: str = typer.Option("minmax", help="With --int8: minmax, entropy or percentile (99.999)."),
    calibration_faces: int = typer.Option(512, help="With --int8: crops that calibrate the activation ranges."),
    int8_tolerance: float = typer.Option(0.5, help="With --int8: the largest mean |age change| (years) against "
                                                   "the float export that is written."),
    force: bool = typer.Option(False, "--force", help="With --int8: write the model even past --int8-tolerance."),
    output: Optional[Path] = typer.Option(None, help="Output file (default: next to the checkpoint, .onnx / .pt)."),
    images: Optional[Path] = typer.Option(None, exists=True, file_okay=False,
                                          help="Photos whose faces verify the export (default: random inputs)."),
) -> None:
    """Export a checkpoint to ONNX or TorchScript, checked against the torch model."""
    needs_torch("`agecli export`")
    from .infer.export import ExportError, export_checked
    from .infer.quantize import METHODS, QuantSettings
    from .model.checkpoint import CheckpointError

    if calibration_faces < 1:
        fail("--calibration-faces must be 1 or more")
    if int8 and calibration_method not in METHODS:  # QuantSettings(method=) has no flag of its own to name
        fail(f"--calibration-method must be one of {', '.join(METHODS)}, not {calibration_method!r}")
    try:
        r = export_checked(checkpoint, fmt, output, opset, fp16, int8, images, calibrate or (),
                           QuantSettings(method=calibration_method), int8_tolerance, force, calibration_faces)
    except (ExportError, CheckpointError) as e:
        fail(str(e))
    print(f"verified on {r.crops_from}: max |age difference| vs torch {r.max_diff:.5f} years "
          f"(tolerance {r.tolerance})")
    if not r.passed:
        fail(f"export does NOT match the torch model ({r.max_diff:.4f} > {r.tolerance} years); "
             f"{r.path} not written", 1)
    if r.int8 is not None:
        print(f"int8 ({calibration_method}, calibrated on {r.calibrated_on}) vs float32 on {r.int8.n} faces: "
              f"mean |age change| {r.int8.mean:.3f} years, 99th percentile {r.int8.p99:.3f}, max {r.int8.max:.3f} "
              f"(tolerance: mean {r.int8_tolerance})")
        if not r.int8_passed:
            if not r.written:
                fail(f"int8 changes the ages too much (mean {r.int8.mean:.3f} > {r.int8_tolerance} years); "
                     f"{r.path} not written (--force writes it anyway)", 1)
            err.print("[yellow]warning:[/yellow] int8 changes the ages past the tolerance; written because of --force")
    print(f"wrote {r.path} ({r.size_bytes / 1e6:.1f} MB)")


def _bare_ray(args: list[str]) -> list[str]:
    """`--ray` without an address (last, or before another option) means `--ray local`:
    Typer has no option with an optional value."""
    out = []
    for i, a in enumerate(args):
        out.append(a)
        if a == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            out.append("local")
    return out


def main() -> None:
    from .exits import terminate_like_ctrl_c

    terminate_like_ctrl_c()
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed as its own bytes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    app(args=_bare_ray(sys.argv[1:]))


if __name__ == "__main__":
    main()
