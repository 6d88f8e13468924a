"""`demo --video` on a 720p clip it makes: frames/s for `--every 1` and `--every 5`, and
what tracking does to the ages (issue 19).

    python bench/bench_video.py [--photos ../shared/photos] [--frames 120] [--every 1,2,3,5] [--keep DIR]

The clip (1280x720, 30 frames/s, MJPG) is made of real face crops (the group photos,
else tests/synth.py's) moved along known paths, as in tests/test_video.py: two faces
that cross, one that leaves for 1.7 s and comes back, one hidden by a card for 0.33 s.
Each `--every` value is one `run_demo` in this process (the models loaded once per run,
outside the timing), with `--output-dir` (the annotated video of every frame,
tracks.csv) and, for 1 and 5, also without one (rows only: skipped frames are not
decoded). Reported per run: input frames per second of the run's wall time, processed
frames per second, the CPU seconds (all threads) and input frames per CPU second (what
a loaded machine does not change much), the time per stage (summed over threads). Then, against the known paths:
id switches and tracks per run, and per face: its still-image age (the model on the
same crop, still and unencoded), the final track age at each `--every`, their spread
(standard deviation) beside the spread of the single frames' ages (`--every 1`), and
the track's error against the still age beside the median single frame's; last, the
`--every 5` run's tracks.csv. On a busy machine the wall times say as much about the
other jobs; the load average is printed.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

SIZE = (1280, 720)
FPS = 30.0
FACE_PX = 110


def make_clip(path: Path, photos: Path, frames: int):
    from tests.clips import face_patches, line, write_clip

    a, b, c, d = face_patches(photos, 4, FACE_PX)
    gone = range(int(frames * 0.2), int(frames * 0.62))  # out of the clip: 1.7 s of 4
    leaving = [None if k in gone else (1000 + 14 * k, 140) if k < gone.start else (1280 + 60 - 14 * (k - gone.stop), 140)
               for k in range(frames)]
    leaving = [p if p is None or -FACE_PX < p[0] < SIZE[0] + FACE_PX else None for p in leaving]
    hidden = set(range(int(frames * 0.4), int(frames * 0.4) + 10))  # 10 frames: 0.33 s
    paths = [line((150, 330), (1130, 330), frames), line((1130, 400), (150, 400), frames), leaving,
             line((200, 590), (500, 590), frames)]
    return write_clip(path, (a, b, c, d), paths, hidden=[set(), set(), set(), hidden], size=SIZE, fps=FPS)


def run(video: Path, every: int, out: Path | None) -> dict:
    from agecli.demo.run import DemoOptions, run_demo

    stdout = io.StringIO()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    s = run_demo(DemoOptions(video=video, every=every, output_dir=out), stdout)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return {"every": every, "out": out, "seconds": s.seconds, "processed": s.images, "cpu": cpu,
            "stages": s.stages, "rows": list(csv.DictReader(io.StringIO(stdout.getvalue()))),
            "tracks": s.tracks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, default=None, help="group photos to cut faces from (default ../shared/photos)")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--every", default="1,2,3,5")
    ap.add_argument("--keep", type=Path, default=None,
                    help="write the clip and each run's outputs (every5/clip720.mp4, tracks.csv, ...) here, not in a "
                         "temporary folder")
    args = ap.parse_args()
    from agecli.api import AgeEstimator
    from tests import synth
    from tests.clips import background, face_patches, ids_per_face, paste, switches

    photos = args.photos or (REPO.parent / "shared" / "photos")
    if not photos.is_dir():
        photos = synth.photos_dir()
    everies = [int(e) for e in args.every.split(",")]
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="agecli-bench-video-"))
    tmp.mkdir(parents=True, exist_ok=True)
    clip = make_clip(tmp / "clip720.avi", photos, args.frames)
    print(f"clip: {SIZE[0]}x{SIZE[1]}, {clip.frames} frames at {FPS:.0f} frames/s, 4 faces {FACE_PX} px wide "
          f"from {photos}; cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f} before")
    runs = [run(clip.path, e, tmp / f"every{e}") for e in everies]
    runs += [run(clip.path, e, None) for e in (1, 5) if e in everies]
    print("\n| --every | outputs | frames/s (input) | processed frames/s | CPU s | input frames per CPU s | stages (s) |"
          "\n|---|---|---|---|---|---|---|")
    for r in runs:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items() if v >= 0.05)
        print(f"| {r['every']} | {'annotated video + tracks.csv' if r['out'] else 'rows only'} | "
              f"{clip.frames / r['seconds']:.1f} | {r['processed'] / r['seconds']:.1f} | {r['cpu']:.1f} | "
              f"{clip.frames / r['cpu']:.1f} | {stages} |")
    print(f"load {os.getloadavg()[0]:.2f} after")

    per_run = {r["every"]: ids_per_face(clip, r["rows"]) for r in runs if r["out"]}
    gap = round(FPS * 1.0)  # the default --track-gap, 1 s
    print("\nid switches (between sightings under the 1 s gap apart) / tracks, per --every: " + "; ".join(
        f"{e}: {sum(switches(s, gap) for s in seen.values())} / {len(r['tracks'])}"
        for (e, seen), r in zip(per_run.items(), runs)) + " (truth: 4 faces, the one leaving for 1.7 s seen twice: 5)")

    est = AgeEstimator()
    print("\n| face | still-image age | track age at --every " + ", ".join(map(str, everies))
          + " | spread of the track ages | spread of single frames | track error | median frame error |\n"
          "|---|---|---|---|---|---|---|")
    for face, patch in enumerate(face_patches(photos, 4, FACE_PX)):
        canvas = background(*SIZE)
        paste(canvas, patch, (SIZE[0] / 2, SIZE[1] / 2))
        still = est.predict(np.clip(canvas, 0, 255).astype(np.uint8))[0].age
        finals = []
        for r in (r for r in runs if r["out"]):
            first = per_run[r["every"]][face][0][1]  # the track that first held the face
            finals.append(next(t.age for t in r["tracks"] if t.track == first))
        base = runs[0]
        ages = {(row["file"], row["track"]): float(row["age"]) for row in base["rows"]}
        singles = [ages[(f"{clip.path.stem}/frame_{k:06d}.jpg", str(t))] for k, t in per_run[base["every"]][face]]
        print(f"| {face} | {still:.1f} | {', '.join(f'{a:.1f}' for a in finals)} | {statistics.pstdev(finals):.2f} | "
              f"{statistics.pstdev(singles):.2f} | {abs(finals[0] - still):.2f} | "
              f"{statistics.median(abs(a - still) for a in singles):.2f} |")


    shown = next((r for r in runs if r["out"] and r["every"] == 5), None)
    if shown is not None:
        print(f"\n{shown['out'] / 'tracks.csv'} (--every 5):\n" + (shown["out"] / "tracks.csv").read_text())


if __name__ == "__main__":
    main()
