"""Size and time of the two installs, and how long `agecli demo` takes to start and
finish on one photo.

    python bench/bench_install.py [--python python3.11] [--runs 3]

Creates two fresh virtual environments in a temporary folder and times README's
install commands in them: the light one (`pip install -e .`: ONNX Runtime, no torch)
and the full one (`pip install torch==2.13.0 -e ".[train,test]"`). Reports each
environment's size on disk, checks that `import torch` fails in the light one, then
times `agecli demo` on the sample photo (no arguments besides an output folder) in each,
the median of --runs runs, wall clock from process start to exit, and the CPU seconds
(what a busy shared machine distorts least).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTALLS = {"light": ["-e", str(REPO)], "full": ["torch==2.13.0", "-e", f"{REPO}[train,test]"]}


def dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def timed(cmd: list[str], **kw) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children): on a busy machine
    the wall clock says more about the neighbours, the CPU time about the command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, **kw)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default="python3.11")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="agecli-install-") as tmp:
        for name, spec in INSTALLS.items():
            venv = Path(tmp) / name
            subprocess.run([args.python, "-m", "venv", str(venv)], check=True)
            py, exe = venv / "bin" / "python", venv / "bin" / "agecli"
            seconds, cpu = timed([str(py), "-m", "pip", "install", "-q", *spec], stderr=subprocess.DEVNULL)
            size = dir_size(venv)
            has_torch = subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode == 0
            out = Path(tmp) / f"out_{name}"
            starts = [timed([str(exe), "demo", "--output-dir", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tmp) for _ in range(args.runs)]
            wall = statistics.median(s[0] for s in starts)
            demo_cpu = statistics.median(s[1] for s in starts)
            rows.append((name, " ".join(spec).replace(str(REPO), "."), seconds, cpu, size, has_torch, wall, demo_cpu))
            print(f"{name}: install {seconds:.0f} s ({cpu:.0f} s CPU), {size / 1e6:.0f} MB, torch importable: "
                  f"{has_torch}, demo on one photo {wall:.2f} s ({demo_cpu:.2f} s CPU)", file=sys.stderr)
    print("| install | command | time (CPU) | size on disk | `import torch` | `agecli demo` on one photo (CPU) |")
    print("|---|---|---|---|---|---|")
    for name, spec, seconds, cpu, size, has_torch, wall, demo_cpu in rows:
        print(f"| {name} | `pip install {spec}` | {seconds:.0f} s ({cpu:.0f} s) | {size / 1e6:.0f} MB | "
              f"{'works' if has_torch else 'fails'} | {wall:.2f} s ({demo_cpu:.2f} s) |")


if __name__ == "__main__":
    main()
