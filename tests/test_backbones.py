"""Every registered backbone builds, runs forward/backward at small sizes, loads a
`--pretrained` state dict by name and shape, and the torchvision/Cadene twins keep
those projects' parameter names and counts."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from agecli.model.backbones import BACKBONES, build_backbone
from agecli.model.heads import AgeNet

ARCHS = sorted(BACKBONES)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny inputs run fastest on one thread; with a busy CPU, two threads spin-wait (~30x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shapes(arch: str) -> None:
    net = build_backbone(arch).eval()
    with torch.no_grad():
        for size in (64, 112):
            out = net(torch.randn(2, 3, size, size))
            assert out.shape == (2, net.num_features)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_backward_reaches_every_parameter(arch: str) -> None:
    net = build_backbone(arch).train()
    out = net(torch.randn(2, 3, 64, 64))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_agenet_resnet18_dist() -> None:
    net = AgeNet("resnet18", "dist").eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64))
        pred = net.predict(torch.randn(2, 3, 64, 64))
    assert out["logits"].shape == (2, 101)
    assert pred["age"].shape == (2,)
    assert ((pred["age"] >= 0) & (pred["age"] <= 100)).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_pretrained_path_loads_by_name_and_ignores_classifier(arch: str, tmp_path: Path) -> None:
    src = build_backbone(arch)
    saved = {k: v.clone() for k, v in src.state_dict().items()}
    path = tmp_path / "w.pt"
    torch.save({**saved, "fc.weight": torch.randn(7, 3)}, path)
    torch.manual_seed(1)  # a different random init, so equality below proves loading
    net = build_backbone(arch, pretrained=str(path))
    got = net.state_dict()
    for k, v in saved.items():
        assert torch.equal(got[k], v), k


def test_pretrained_accepts_wrapped_dataparallel_state(tmp_path: Path) -> None:
    src = build_backbone("resnet18")
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, path)
    net = build_backbone("resnet18", pretrained=str(path))
    assert torch.equal(net.conv1.weight, src.conv1.weight)


@pytest.mark.parametrize("arch", ["mobilenet_v2", "resnet18", "se_resnext50_32x4d", "c3ae"])
def test_pretrained_wrong_shape_raises(arch: str, tmp_path: Path) -> None:
    state = build_backbone(arch).state_dict()
    key = next(k for k, v in state.items() if v.dim() == 4)
    state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
    path = tmp_path / "w.pt"
    torch.save(state, path)
    with pytest.raises(ValueError):
        build_backbone(arch, pretrained=str(path))


# Names (and shapes) from torchvision's resnet18/resnet50/mobilenet_v2 and Cadene's
# se_resnext50_32x4d state dicts; their key counts minus the classifier's two keys.
KNOWN_KEYS = {
    "resnet18": ({"conv1.weight": (64, 3, 7, 7), "bn1.running_mean": (64,),
                  "layer1.0.conv1.weight": (64, 64, 3, 3), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                  "layer2.0.downsample.1.running_var": (128,), "layer4.1.bn2.running_var": (512,)}, 120),
    "resnet50": ({"layer1.0.conv3.weight": (256, 64, 1, 1), "layer1.0.downsample.1.weight": (256,),
                  "layer3.5.conv3.weight": (1024, 256, 1, 1), "layer4.2.bn3.bias": (2048,)}, 318),
    "mobilenet_v2": ({"features.0.0.weight": (32, 3, 3, 3), "features.1.conv.0.0.weight": (32, 1, 3, 3),
                      "features.1.conv.1.weight": (16, 32, 1, 1), "features.2.conv.3.running_var": (24,),
                      "features.17.conv.2.weight": (320, 960, 1, 1), "features.18.0.weight": (1280, 320, 1, 1),
                      "features.18.1.running_var": (1280,)}, 312),
    "se_resnext50_32x4d": ({"layer0.conv1.weight": (64, 3, 7, 7), "layer0.bn1.running_mean": (64,),
                            "layer1.0.conv2.weight": (128, 4, 3, 3),
                            "layer1.0.se_module.fc1.weight": (16, 256, 1, 1),
                            "layer4.2.se_module.fc2.bias": (2048,),
                            "layer1.0.downsample.0.weight": (256, 64, 1, 1)}, 382),
}


@pytest.mark.parametrize("arch", sorted(KNOWN_KEYS))
def test_reference_parameter_names(arch: str) -> None:
    known, n_keys = KNOWN_KEYS[arch]
    state = build_backbone(arch).state_dict()
    for k, shape in known.items():
        assert k in state, k
        assert tuple(state[k].shape) == shape, k
    assert len(state) == n_keys


# Published totals minus the classifier: torchvision resnet18 11,689,512 - 513,000;
# resnet34 21,797,672 - 513,000; resnet50 25,557,032 - 2,049,000; mobilenet_v2
# 3,504,872 - 1,281,000; Cadene se_resnext50_32x4d 27,559,896 - 2,049,000.
FEATURE_PARAMS = {"resnet18": 11_176_512, "resnet34": 21_284_672, "resnet50": 23_508_032,
                  "mobilenet_v2": 2_223_872, "se_resnext50_32x4d": 25_510_896}


@pytest.mark.parametrize("arch", sorted(FEATURE_PARAMS))
def test_parameter_counts_match_published(arch: str) -> None:
    net = build_backbone(arch)
    assert sum(p.numel() for p in net.parameters()) == FEATURE_PARAMS[arch]


def test_compact_widths_and_c3ae_layout() -> None:
    assert build_backbone("thin_age").num_features == 256
    assert build_backbone("tiny_age").num_features == 128
    net = build_backbone("c3ae").eval()
    with torch.no_grad():  # the C3AE paper's plain model ends at 4x4x32 for 64x64 input
        assert net.features(torch.zeros(1, 3, 64, 64)).shape == (1, 32, 4, 4)


def test_dlib_age_backbone_pads_its_shortcuts_at_any_input_size():
    """dlib's downsampling blocks (unpadded strided conv, average-pool shortcut padded in
    channels and, where the conv output is smaller, the main path at bottom/right) give
    256 features at 64 px and at sizes where the two paths differ."""
    import torch

    from agecli.model.backbones import build_backbone

    net = build_backbone("dlib_age").eval()
    for size in (64, 72, 97):
        with torch.no_grad():
            feats = net(torch.zeros(2, 3, size, size))
        assert feats.shape == (2, 256) and torch.isfinite(feats).all()


def test_mobilefacenet_pads_stride_two_convolutions_as_tensorflow_does():
    """The weights come from a TensorFlow graph, whose SAME padding of a stride-2 3x3
    convolution pads one pixel at the bottom and right only: the first output pixel
    sees input rows and columns 0-2 (symmetric padding would see -1..1)."""
    from agecli.model.mobilefacenet import Conv

    conv = Conv(1, 1, 3, 2).eval()
    torch.nn.init.ones_(conv.conv.weight)
    torch.nn.init.zeros_(conv.conv.bias)
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 2, 2] = 1.0
    with torch.no_grad():
        out = conv(x)
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, :2, :2] = 1.0  # rows/columns 0-2 and 2-4 both hold pixel 2 (symmetric: only 1-3)
    assert torch.equal(out, expected)
