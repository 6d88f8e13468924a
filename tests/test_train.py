"""Training on real faces: every objective learns, checkpoints are safe, resume is exact."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from agecli.config import apply_overrides, default_config
from agecli.data.dataset import AlignedFaces, augment, batch_tensor, fill_beyond_photo
from agecli.data.records import csv_name
from agecli.model.checkpoint import load_checkpoint, model_meta
from agecli.model.heads import AgeNet
from agecli.model.losses import LOSSES, age_loss, head_for, total_loss
from agecli.train.trainer import TrainingError, epoch_order

from .conftest import train_tiny


@pytest.fixture(scope="module")
def crops(tiny_aligned):
    return AlignedFaces.load(tiny_aligned / csv_name("utkface", "train"), tiny_aligned, 64, 0.25)


@pytest.mark.parametrize("loss", LOSSES)
def test_each_objective_lowers_its_loss(crops, loss):
    torch.manual_seed(0)
    cfg = default_config()
    meta = model_meta(cfg, head_for(loss), loss)
    model = AgeNet("efficientnet_lite0", head_for(loss), pretrained=True).train()
    x = batch_tensor(crops.images[:16], meta["mean"], meta["std"], False, None, None)
    batch = {"age": torch.from_numpy(crops.ages[:16]), "gender": torch.from_numpy(crops.genders[:16]),
             "race": torch.from_numpy(crops.races[:16])}
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    losses = []
    for _ in range(8):
        value = total_loss(loss, model(x), batch, model.bins, cfg)
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(value.item())
    assert losses[-1] < losses[0] * 0.9, losses


def test_trainer_writes_checkpoints_logs_and_curve(tiny_aligned, tmp_path):
    best = train_tiny(tiny_aligned, tmp_path, loss="mt", epochs=2)
    for name in ("last.pth", "best.pth", "log.csv", "learning_curve.png"):
        assert (tmp_path / name).exists(), name
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log["epoch"]) == [1, 2] and log["images_per_s"].gt(0).all()
    ckpt = load_checkpoint(tmp_path / "best.pth")
    meta = ckpt["meta"]
    assert meta["head"] == "mt" and meta["img_size"] == 64 and meta["expand"] == 0.25
    assert meta["mean"] == [0.5, 0.5, 0.5] and meta["age_max"] == 100
    assert best["mae"] == pytest.approx(meta["metrics"]["mae"])
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_continues_exactly(tiny_aligned, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_tiny(tiny_aligned, full, epochs=3)

    class Interrupt(Exception):
        pass

    from agecli.train import trainer

    def stop_in_epoch_2(phase, done, total, stats):
        if phase.startswith("epoch 2"):
            raise Interrupt  # as if the user pressed Ctrl-C during epoch 2

    cfg = apply_overrides(default_config(), ["MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", "3", "TRAIN.MAX_STEPS", "3",
                                             "TRAIN.BATCH_SIZE", "16", "TRAIN.LOSS", "ldl", "TRAIN.WARMUP_EPOCHS", "0"])
    with pytest.raises(Interrupt):
        trainer.train(trainer.TrainJob(cfg, tiny_aligned, "utkface", cut, aug=True, log=lambda m: None,
                                       progress=stop_in_epoch_2))
    assert load_checkpoint(cut / "last.pth")["epoch"] == 0
    train_tiny(tiny_aligned, cut, epochs=3, resume=cut / "last.pth")
    a, b = load_checkpoint(full / "last.pth"), load_checkpoint(cut / "last.pth")
    assert b["epoch"] == 2
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    assert pd.read_csv(full / "log.csv")["val_mae"].tolist() == pd.read_csv(cut / "log.csv")["val_mae"].tolist()


def test_batches_augmented_ahead_by_threads_are_the_same_batches(tiny_aligned, tmp_path):
    """TRAIN.LOADERS threads prepare the next batches (for a GPU, which outruns one core's
    augmentation); each batch's random streams are its own, so the weights after training
    are the same, bit for bit, with none or three threads."""
    train_tiny(tiny_aligned, tmp_path / "inline", epochs=2, extra=["TRAIN.LOADERS", "0"])
    train_tiny(tiny_aligned, tmp_path / "threads", epochs=2, extra=["TRAIN.LOADERS", "3"])
    a, b = load_checkpoint(tmp_path / "inline" / "last.pth"), load_checkpoint(tmp_path / "threads" / "last.pth")
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k


def test_nan_loss_stops_with_a_clear_message(tiny_aligned, tmp_path):
    # the CLI refuses TRAIN.LR 1e12; a library caller can still pass it, and the trainer's
    # guard must stop the diverging run
    from agecli.train.trainer import TrainJob, train

    cfg = apply_overrides(default_config(), ["MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "6",
                                             "TRAIN.BATCH_SIZE", "16", "TRAIN.LOSS", "mse", "TRAIN.OPT", "sgd",
                                             "TRAIN.WARMUP_EPOCHS", "0"])
    cfg["TRAIN"]["LR"] = 1e12
    with pytest.raises(TrainingError, match="loss became"):
        train(TrainJob(cfg, tiny_aligned, "utkface", tmp_path, aug=True, log=lambda m: None))


def test_resume_refuses_a_different_architecture(tiny_aligned, tiny_checkpoint, tmp_path):
    with pytest.raises(TrainingError, match="img_size"):
        train_tiny(tiny_aligned, tmp_path, extra=["MODEL.IMG_SIZE", "96"], resume=tiny_checkpoint)


def test_overrides_are_typed_and_checked():
    cfg = apply_overrides(default_config(), ["TRAIN.LR", "0.1", "TRAIN.EPOCHS", "3", "MODEL.ARCH", "resnet50"])
    assert cfg["TRAIN"]["LR"] == 0.1 and cfg["TRAIN"]["EPOCHS"] == 3 and cfg["MODEL"]["ARCH"] == "resnet50"
    with pytest.raises(ValueError, match="unknown config key"):
        apply_overrides(default_config(), ["TRAIN.NOPE", "1"])
    with pytest.raises(ValueError, match="TRAIN.EPOCHS"):
        apply_overrides(default_config(), ["TRAIN.EPOCHS", "many"])
    with pytest.raises(ValueError, match="pairs"):
        apply_overrides(default_config(), ["TRAIN.LR"])


def test_lr_find_suggests_a_rate(tiny_aligned, tmp_path):
    from agecli.train.lr_find import lr_find
    from agecli.train.trainer import TrainJob

    cfg = apply_overrides(default_config(), ["MODEL.IMG_SIZE", "64", "TRAIN.BATCH_SIZE", "8", "TRAIN.LOSS", "ldl"])
    res = lr_find(TrainJob(cfg, tiny_aligned, "utkface", tmp_path, log=lambda m: None), steps=20)
    assert 1e-7 <= res["suggested_lr"] <= 1.0
    assert (tmp_path / "lr_find.png").exists()
    assert len(np.loadtxt(tmp_path / "lr_find.csv", delimiter=",", skiprows=1)) >= 10


def test_cli_train_rejects_unknown_override(tiny_aligned):
    from typer.testing import CliRunner

    from agecli.cli import app

    res = CliRunner().invoke(app, ["train", "--data-dir", str(tiny_aligned), "--dataset", "utkface", "TRAIN.BOGUS", "1"])
    assert res.exit_code == 2
    assert "unknown config key" in res.output


def test_fine_tuning_from_a_checkpoint_keeps_its_heads(tiny_aligned, tiny_checkpoint, tmp_path):
    """--pretrained with an agecli checkpoint starts from the whole trained model (a new
    input size included), not from its backbone and a fresh head."""
    from agecli.config import apply_overrides, default_config
    from agecli.train.trainer import TrainJob, train

    cfg = apply_overrides(default_config(), ["MODEL.IMG_SIZE", "80", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "1",
                                             "TRAIN.BATCH_SIZE", "16", "TRAIN.LOSS", "ldl", "TRAIN.LR", "1e-12",
                                             "TRAIN.WARMUP_EPOCHS", "0"])
    logged: list[str] = []
    train(TrainJob(cfg, tiny_aligned, "utkface", tmp_path, pretrained=str(tiny_checkpoint), log=logged.append))
    source = load_checkpoint(tiny_checkpoint)["state_dict"]
    tuned = load_checkpoint(tmp_path / "last.pth")
    assert tuned["meta"]["img_size"] == 80
    torch.testing.assert_close(tuned["state_dict"]["fc.weight"].float(), source["fc.weight"].float())
    assert any("2 head tensors" in m for m in logged), logged


def test_balance_draws_rare_ages_more_often():
    ages = np.array([25.0] * 900 + [70.0] * 100)  # two 5-year bins, 9:1
    rng = np.random.default_rng(0)
    plain = epoch_order(rng, ages, 0.0)
    assert sorted(plain) == list(range(1000))  # a permutation: each face once
    even = epoch_order(rng, ages, 1.0)
    assert len(even) == 1000
    assert 0.4 < (ages[even] == 70).mean() < 0.6  # both bins alike
    half = (ages[epoch_order(rng, ages, 0.5)] == 70).mean()
    assert 0.2 < half < 0.3  # sqrt weighting: 100*sqrt(9) vs 900: 1/4 of the draws


def test_average_checkpoints_is_the_mean_of_their_weights(tiny_checkpoint, tmp_path):
    from agecli.errors import CheckpointError
    from agecli.model.checkpoint import average_checkpoints

    a = load_checkpoint(tiny_checkpoint)
    b_path = tmp_path / "b.pth"
    b = {**a, "state_dict": {k: v * 3 if v.is_floating_point() else v for k, v in a["state_dict"].items()}}
    torch.save(b, b_path)
    meta = average_checkpoints([tiny_checkpoint, b_path], tmp_path / "soup.pth", {"std_scale": 0.9})
    soup = load_checkpoint(tmp_path / "soup.pth")
    assert meta["std_scale"] == soup["meta"]["std_scale"] == 0.9
    for k, v in a["state_dict"].items():
        if v.is_floating_point():
            assert torch.allclose(soup["state_dict"][k], v.float() * 2, atol=1e-5), k
    # WiSE-FT: alpha * one + (1 - alpha) * the other
    average_checkpoints([tiny_checkpoint, b_path], tmp_path / "wise.pth", weights=[0.75, 0.25])
    wise = load_checkpoint(tmp_path / "wise.pth")
    for k, v in a["state_dict"].items():
        if v.is_floating_point():
            assert torch.allclose(wise["state_dict"][k], v.float() * 1.5, atol=1e-5), k
    with pytest.raises(CheckpointError, match="summing to 1"):
        average_checkpoints([tiny_checkpoint, b_path], tmp_path / "bad.pth", weights=[0.5, 0.6])
    other = {**a, "meta": {**a["meta"], "head": "reg"}}
    torch.save(other, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="another model"):
        average_checkpoints([tiny_checkpoint, tmp_path / "other.pth"], tmp_path / "bad.pth")
    assert not (tmp_path / "bad.pth").exists()


def test_train_called_from_python_writes_nothing_on_stdout(tiny_aligned, tmp_path, capsys, caplog):
    """TrainJob's default log was `print`: a script calling `train` got its progress on stdout."""
    from agecli.train.trainer import TrainJob, train

    cfg = apply_overrides(default_config(), ["MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "2",
                                             "TRAIN.BATCH_SIZE", "16", "TRAIN.LOSS", "ldl", "TRAIN.WARMUP_EPOCHS", "0"])
    with caplog.at_level("INFO", logger="agecli.train"):
        train(TrainJob(cfg, tiny_aligned, "utkface", tmp_path / "run", aug=True))
    assert capsys.readouterr().out == ""
    assert any("epoch 1" in r.getMessage() for r in caplog.records)


def test_a_teacher_at_full_weight_is_the_whole_age_target(crops):
    """TRAIN.TEACHER_WEIGHT w mixes the label distribution and the teacher's exactly:
    w = 1 is KL to the teacher alone, w = 0 the plain DLDL loss."""
    torch.manual_seed(0)
    cfg = default_config()
    model = AgeNet("efficientnet_lite0", "dist", pretrained=False).eval()
    meta = model_meta(cfg, "dist", "ldl")
    x = batch_tensor(crops.images[:8], meta["mean"], meta["std"], False, None, None)
    with torch.no_grad():
        out = model(x)
    age = torch.from_numpy(crops.ages[:8])
    teacher = torch.softmax(torch.randn(8, len(model.bins)), 1)
    logp = out["logits"].log_softmax(1)
    l1 = torch.nn.functional.l1_loss(logp.exp() @ model.bins, age)
    cfg["TRAIN"]["TEACHER_WEIGHT"] = 1.0
    taught = age_loss("ldl", out, age, model.bins, cfg, teacher)
    expected = torch.nn.functional.kl_div(logp, teacher, reduction="batchmean") + l1
    torch.testing.assert_close(taught, expected)
    cfg["TRAIN"]["TEACHER_WEIGHT"] = 0.0
    torch.testing.assert_close(age_loss("ldl", out, age, model.bins, cfg, teacher), age_loss("ldl", out, age, model.bins, cfg))


def test_a_run_learns_from_a_teacher_and_resumes_with_its_cached_answers(tiny_aligned, tiny_onnx, tmp_path):
    """A teacher with another crop size (64 px for an 80 px student) answers once for every
    train face; the answers are cached in the run folder and a resumed run reuses them."""
    n_train = len(pd.read_csv(tiny_aligned / csv_name("utkface", "train")))
    extra = ["TRAIN.TEACHER", str(tiny_onnx), "TRAIN.TEACHER_WEIGHT", "0.7", "MODEL.IMG_SIZE", "80"]
    train_tiny(tiny_aligned, tmp_path, loss="mt", epochs=1, steps=2, extra=extra)
    cache = tmp_path / "teacher.npz"
    with np.load(cache) as z:
        probs = z["probs"]
        assert probs.shape == (n_train, 101) and "gender_probs" not in z.files  # an LDL teacher has no gender
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    stamp = cache.stat().st_mtime_ns
    train_tiny(tiny_aligned, tmp_path, loss="mt", epochs=2, steps=2, extra=extra, resume=tmp_path / "last.pth")
    assert cache.stat().st_mtime_ns == stamp
    assert list(pd.read_csv(tmp_path / "log.csv")["epoch"]) == [1, 2]


def test_a_reordered_train_split_asks_the_teacher_again(tiny_aligned, tiny_onnx, tmp_path):
    """The cached answers belong to the train crops they were given for: the same faces in
    another order (same count) must not reuse them, each face would learn another's answer."""
    data = tmp_path / "data"
    shutil.copytree(tiny_aligned, data)
    extra = ["TRAIN.TEACHER", str(tiny_onnx), "TRAIN.TEACHER_WEIGHT", "0.7"]
    run = tmp_path / "run"
    train_tiny(data, run, loss="mt", epochs=1, steps=2, extra=extra)
    with np.load(run / "teacher.npz") as z:
        before = z["probs"]
    train_csv = data / csv_name("utkface", "train")
    df = pd.read_csv(train_csv)
    df.iloc[::-1].to_csv(train_csv, index=False)
    train_tiny(data, run, loss="mt", epochs=2, steps=2, extra=extra, resume=run / "last.pth")
    with np.load(run / "teacher.npz") as z:
        after = z["probs"]
    np.testing.assert_allclose(after, before[::-1], rtol=1e-4, atol=1e-6)  # each face keeps its own answer


def test_cli_refuses_a_teacher_the_loss_cannot_use(tiny_aligned, tiny_onnx, tmp_path):
    from typer.testing import CliRunner

    from agecli.cli import app

    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--data-dir", str(tiny_aligned), "--dataset", "utkface", "--checkpoint",
                                   str(run), "TRAIN.LOSS", "ce", "TRAIN.TEACHER", str(tiny_onnx), "MODEL.IMG_SIZE", "64"])
    assert res.exit_code == 2, res.output
    assert "TRAIN.TEACHER needs a loss with a target distribution" in " ".join(res.output.split())
    assert not run.exists()  # refused before anything was trained: the fresh folder is gone


def test_a_window_blacks_out_the_same_pixels_in_training_and_every_runner(tiny_aligned, crops, tmp_path):
    """DATA.WINDOW travels in the model's metadata: what lies outside it never reaches the
    network, through the torch runner and the exported graph alike."""
    from agecli.infer.onnx_build import onnx_bytes_for_checkpoint
    from agecli.infer.runners import OnnxRunner, open_runner

    train_tiny(tiny_aligned, tmp_path, loss="mt", epochs=1, steps=1, extra=["DATA.WINDOW", "0.25,0.125,0.75,0.875"])
    ckpt = tmp_path / "best.pth"
    assert load_checkpoint(ckpt)["meta"]["window"] == [0.25, 0.125, 0.75, 0.875]
    images = crops.images[:6]
    outside = images.copy()
    outside[:, :8] = outside[:, 56:] = 255  # rows above and below the window (64 px crops)
    outside[:, :, :16] = outside[:, :, 48:] = 0  # columns left and right of it
    torch_runner = open_runner(ckpt, runner="torch")
    a, b = torch_runner.predict(images), torch_runner.predict(outside)
    np.testing.assert_array_equal(a["age"], b["age"])
    np.testing.assert_array_equal(a["gender_probs"], b["gender_probs"])
    onnx = OnnxRunner(onnx_bytes_for_checkpoint(ckpt)).predict(outside)
    np.testing.assert_allclose(onnx["age"], a["age"], atol=0.01)
    inside = images.copy()
    inside[:, 30:34, 30:34] = 0  # a change inside the window does reach it
    assert not np.array_equal(torch_runner.predict(inside)["age"], a["age"])


def test_cli_refuses_a_window_that_a_mirror_image_would_move(tiny_aligned, tmp_path):
    from typer.testing import CliRunner

    from agecli.cli import app

    res = CliRunner().invoke(app, ["train", "--data-dir", str(tiny_aligned), "--dataset", "utkface", "--checkpoint",
                                   str(tmp_path / "run"), "DATA.WINDOW", "0.1,0.1,0.8,0.9"])
    assert res.exit_code == 2, res.output
    assert "the window must look the same in a mirror image" in " ".join(res.output.split())


def test_best_metric_is_a_config_key_and_auto_asks_the_reader(tiny_aligned, tmp_path):
    """TRAIN.BEST_METRIC: best.pth on the best CA(3) instead of the MAE; auto takes the
    figure the collection reports (the MegaAge reader's METRIC), as the megaage name
    prefix chose before; a resumed run keeps the run's choice."""
    from pathlib import Path

    from agecli.train.trainer import best_metric

    assert best_metric("auto", [("megaage_asian", Path("."))]) == "ca3"
    assert best_metric("auto", [("megaage_fold0", Path("."))]) == "ca3"
    assert best_metric("auto", [("megaage", Path(".")), ("utkface", Path("."))]) == "mae"
    assert best_metric("mae", [("megaage", Path("."))]) == "mae"

    train_tiny(tiny_aligned, tmp_path, epochs=3, extra=["TRAIN.BEST_METRIC", "ca3"])
    log = pd.read_csv(tmp_path / "log.csv")
    best = load_checkpoint(tmp_path / "best.pth")
    assert best["best_by"] == "ca3"
    assert best["epoch"] + 1 == int(log["epoch"][log["val_ca3"].idxmax()])
    with pytest.raises(TrainingError, match="TRAIN.BEST_METRIC ca3"):
        train_tiny(tiny_aligned, tmp_path, epochs=4, resume=tmp_path / "last.pth")


def test_print_augmentation_fades_a_quarter_of_the_faces_and_only_that_kind_does():
    """A faded print lifts its blacks (by 0.05-0.3 before gamma): black crops stay near
    black under `basic` and `photo` (an occluder and a contrast cut lift them by at most
    ~0.08), while under `print` the faded quarter with the higher lifts come out grey.
    Seeded, so the counts are exact on every run."""
    black = np.zeros((400, 32, 32, 3), np.uint8)
    lifted = {}
    for kind in ("basic", "photo", "print"):
        x = batch_tensor(black, [0.0] * 3, [1.0] * 3, True, np.random.default_rng(0), torch.Generator().manual_seed(0),
                         kind)
        lifted[kind] = int((x.flatten(1).median(1).values > 0.1).sum())
    assert lifted["basic"] == 0 and lifted["photo"] == 0
    assert 50 <= lifted["print"] <= 130, lifted  # 87 of 400 with these seeds


def test_fill_beyond_photo_fills_the_padding_and_keeps_the_photo():
    """A crop whose square runs off the photo (as UTKFace's chips do) is padded black;
    filled, no pixel beyond the photo stays black, and the photo's own pixels (away from
    the edge the interpolation touched) are unchanged. A crop with no padding comes back
    as it was."""
    from agecli.face.align import crop_face

    rng = np.random.default_rng(0)
    photo = rng.integers(40, 220, (100, 100, 3), dtype=np.uint8)
    crop = crop_face(photo, 10.0, (10, 10, 90, 90), 0.4, 64)  # rotated, and wider than the photo
    beyond = (crop == 0).all(2)
    assert 0.1 < beyond.mean() < 0.6
    filled = fill_beyond_photo(crop)
    assert not (filled == 0).all(2)[beyond].any()
    inside = cv2.dilate(beyond.astype(np.uint8), np.ones((7, 7), np.uint8)) == 0
    assert (filled[inside] == crop[inside]).all()
    whole = crop_face(photo, 0.0, (30, 30, 70, 70), 0.25, 64)
    assert (fill_beyond_photo(whole) == whole).all()


def test_fill_augmentation_fills_half_the_borders_and_only_that_kind_does():
    """Crops black on their left half (beyond the photo) and grey on the right: under
    `print` every crop keeps its black; under `fill` about half lose it (a few get a black
    band back from the frame-edge effect). Seeded, so the counts are exact on every run."""
    crops = np.full((200, 32, 32, 3), 128, np.uint8)
    crops[:, :, :16] = 0
    black = {}
    for kind in ("print", "fill"):
        out = augment(crops, np.random.default_rng(0), kind)
        black[kind] = int(((out < 8).all(3).mean((1, 2)) > 0.2).sum())
    assert black["print"] == 200
    assert 70 <= black["fill"] <= 130, black


def test_chip_border_blacks_out_beyond_the_chip_and_keeps_the_chip():
    from agecli.data.dataset import CHIP_WINDOW, chip_border

    img = np.random.default_rng(0).integers(1, 255, (128, 128, 3), dtype=np.uint8)
    out = chip_border(img)
    left, top, right, bottom = (round(v * 128) for v in CHIP_WINDOW)
    inside = np.zeros((128, 128), bool)
    inside[top:bottom, left:right] = True
    assert (out[inside] == img[inside]).all() and (out[~inside] == 0).all()
    moved = chip_border(img, (0.05, 0.0, 0.0, 0.0))  # the left edge moved in: more black
    assert (moved == 0).all(2).sum() > (out == 0).all(2).sum()


def test_chip_augmentation_borders_half_the_borderless_crops_and_fills_half_the_bordered():
    """Under `chip` a border no longer tells the collections apart: crops with no black
    (as All-Age-Faces' and users' photos) come back black beyond a chip about half the
    time, and crops black on their left half (as UTKFace's chips) lose that black about
    half the time, as under `fill`. Under `fill` a borderless crop stays borderless (a few
    get a black band from the frame-edge effect). Seeded: the counts are exact."""
    grey = np.full((200, 32, 32, 3), 128, np.uint8)
    half = grey.copy()
    half[:, :, :16] = 0
    bordered = {}
    for kind in ("fill", "chip"):
        for name, crops in (("grey", grey), ("half", half)):
            out = augment(crops, np.random.default_rng(0), kind)
            bordered[kind, name] = int(((out < 8).all(3).mean((1, 2)) > 0.2).sum())
    assert bordered["fill", "grey"] <= 30 and 70 <= bordered["chip", "grey"] <= 130, bordered
    assert 70 <= bordered["chip", "half"] <= 130, bordered


def test_kinds_without_fill_draw_the_seeded_stream_they_drew_before_fill_existed():
    """A seeded basic/photo/print run reproduces its augmentation from before DATA.AUG fill:
    the geometry is the seed's first four draws (flips, angles, scales, shifts), with no
    draw for fills ahead of them (photo's and print's own draws come after). Checked on
    the generator `augment` leaves behind against the same four draws made by hand."""
    used, mine = np.random.default_rng(0), np.random.default_rng(0)
    augment(np.full((3, 32, 32, 3), 128, np.uint8), used, "basic")
    mine.random(3), mine.uniform(-10, 10, 3), mine.uniform(0.9, 1.1, 3), mine.uniform(-0.05, 0.05, (3, 2))
    assert used.random() == mine.random()


@pytest.mark.parametrize("kind", ["print", "fill", "chip"])
def test_cli_trains_with_print_augmentation_and_names_the_kinds_it_knows(tiny_aligned, tmp_path, kind):
    from typer.testing import CliRunner

    from agecli.cli import app

    base = ["train-mt", "--data-dir", str(tiny_aligned), "--dataset", "utkface", "--aug", "--checkpoint",
            str(tmp_path / "run"), "MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "2",
            "TRAIN.BATCH_SIZE", "8"]
    res = CliRunner().invoke(app, [*base, "DATA.AUG", "sepia"])
    assert res.exit_code == 2 and "DATA.AUG" in res.output and kind in res.output, res.output
    res = CliRunner().invoke(app, [*base, "DATA.AUG", kind])
    assert res.exit_code == 0, res.output
    assert load_checkpoint(tmp_path / "run" / "best.pth")["config"]["DATA"]["AUG"] == kind


def test_mixed_mirror_training_learns_the_answer_inference_gives(tiny_aligned, tmp_path):
    """TRAIN.MIX_MIRROR: the loss sees each face's mixture of its two looks exactly as
    `predict` reads it (mix_looks then decode = decode of the pairs), the run's model
    carries the looks in its metadata, and a zoom outside 0.5-1 is refused by name."""
    from typer.testing import CliRunner

    from agecli.cli import app
    from agecli.model.heads import mix_looks

    model = AgeNet("tiny_age", "mt")
    model.eval()
    out = model(torch.rand(8, 3, 64, 64))  # 4 crops, then their 4 second looks
    mixed, pairs = model.decode(mix_looks(out)), model.decode(out, pairs=True)
    for key in ("age", "probs", "gender_probs", "race_probs"):
        torch.testing.assert_close(mixed[key], pairs[key], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(mixed["age"], model.decode(out)["age"][:4], atol=1e-3)  # the second look counts

    train_tiny(tiny_aligned, tmp_path / "run", loss="mt", epochs=1, steps=2, extra=["TRAIN.MIX_MIRROR", "0.875"])
    meta = load_checkpoint(tmp_path / "run" / "best.pth")["meta"]
    assert meta["flip_tta"] is True and meta["mirror_zoom"] == 0.875
    run = tmp_path / "bad"
    res = CliRunner().invoke(app, ["train-mt", "--data-dir", str(tiny_aligned), "--dataset", "utkface", "--checkpoint",
                                   str(run), "TRAIN.MIX_MIRROR", "0.3", "MODEL.IMG_SIZE", "64"])
    assert res.exit_code == 2 and "TRAIN.MIX_MIRROR 0.3" in res.output, res.output
    assert not run.exists()
