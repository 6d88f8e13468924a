"""End-to-end `demo` speed over a folder of photos, with annotated output, per worker count.

    python bench/bench_demo.py [--photos ../shared/photos] [--model M.onnx|M.pth] [--limit N]
                               [--workers 1,2,4] [--repeat 3] [--copies K]

Runs the real demo (decode, detect, align, age model, draw, write annotated copies and
predictions.csv into a temporary folder) once per `--workers` value (default: 1, 2 and
the machine's cores), each `--repeat` times, runs interleaved so that a change in the
machine's load hits every setting alike. Prints photos/s and faces/s (the median run),
the CPU seconds of the main process and of the workers (on a busy machine the wall
time says more about the other jobs than about agecli; the CPU seconds do not), the
time in each stage (decode, detect and align summed over the workers), the load
average before and after, and checks that every setting found the same faces. Without
--model it uses the shipped default model. `--copies K` runs over K copies of the photos
(in copy_1/ ... copy_K/): the steady rate of a large folder, where starting the worker
processes (about a second) no longer weighs.
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from agecli.errors import AgecliError  # noqa: E402
from agecli.infer.demo import DemoOptions, read_rows, run_demo  # noqa: E402
from agecli.infer.pipeline import STAGES  # noqa: E402
from agecli.infer.sources import walk_images  # noqa: E402
from agecli.parallel import default_workers  # noqa: E402


def worker_counts(spec: str | None) -> list[int]:
    """1, 2 and the machine's cores by default; duplicates dropped, order kept."""
    counts = [int(w) for w in spec.split(",")] if spec else [1, 2, default_workers()]
    return list(dict.fromkeys(counts))


def faces_found(out_dir: Path) -> list[tuple]:
    """Every face row of a run (file, face, box), to check that runs agree."""
    return [(name, r["face"], r["x1"], r["y1"], r["x2"], r["y2"])
            for name, rows in sorted(read_rows(out_dir / "predictions.csv").items()) for r in rows]


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds used so far by this process and by its finished children (the workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=Path("../shared/photos"))
    ap.add_argument("--model", type=Path, default=None, help="checkpoint or .onnx (default: the shipped model)")
    ap.add_argument("--runner", default="auto", choices=["auto", "torch", "onnx"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N photos (0 = all)")
    ap.add_argument("--workers", default=None, help="comma-separated worker counts (default: 1,2,<cores>)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per worker count; the median is reported")
    ap.add_argument("--copies", type=int, default=1, help="run over K copies of the photos (a larger folder)")
    args = ap.parse_args()
    counts = worker_counts(args.workers)
    load_before = os.getloadavg()
    runs: dict[int, list] = {w: [] for w in counts}
    faces: dict[int, list[tuple]] = {}
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
            for w in counts:
                out = Path(tmp) / f"out_{w}_{rep}"
                opts = DemoOptions(img_dir=photos, model=args.model, runner=args.runner, device=args.device,
                                   output_dir=out, workers=w)
                before = cpu_seconds()
                try:
                    s = run_demo(opts, io.StringIO())
                except AgecliError as e:
                    ap.error(str(e))
                s.cpu = tuple(b - a for a, b in zip(before, cpu_seconds()))
                runs[w].append(s)
                faces.setdefault(w, faces_found(out))
    load_after = os.getloadavg()
    print(f"{default_workers()} cores; load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} "
          f"{load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    base = None
    print("| workers | photos | faces | s (median) | photos/s | faces/s | vs 1 worker | CPU s: main + workers |")
    print("|---|---|---|---|---|---|---|---|")
    for w in counts:
        s = sorted(runs[w], key=lambda r: r.seconds)[len(runs[w]) // 2]
        n = s.images + s.unreadable
        rate = n / s.seconds
        base = base or (rate if w == 1 else None)
        ratio = f"{rate / base:.2f}x" if base else ""
        spread = f" ({min(r.seconds for r in runs[w]):.2f}-{max(r.seconds for r in runs[w]):.2f})" if args.repeat > 1 else ""
        print(f"| {w} | {n} | {s.faces} | {statistics.median(r.seconds for r in runs[w]):.2f}{spread} | "
              f"{rate:.2f} | {s.faces / s.seconds:.1f} | {ratio} | {s.cpu[0]:.2f} + {s.cpu[1]:.2f} |")
    same = all(f == faces[counts[0]] for f in faces.values())
    print(f"same faces found (file, face, box) for every worker count: {'yes' if same else 'NO'}")
    for w in counts:
        s = sorted(runs[w], key=lambda r: r.seconds)[len(runs[w]) // 2]
        n = max(s.images + s.unreadable, 1)
        print(f"stages, {w} worker(s), ms/photo: " + "  ".join(
            f"{stage} {1000 * s.stages.get(stage, 0.0) / n:.1f}" for stage in STAGES))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
