"""Several collections in one run: pooled training, per-set validation, per-set val reports."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from agecli.cli import app
from agecli.data.records import csv_name, image_root_file, resolve_image_root


def second_set(tiny: Path, root: Path, name: str = "other") -> Path:
    """The tiny set again under another name and folder, its valid split cut to a third,
    so the two sets' valid MAEs differ."""
    out = root / name
    out.mkdir()
    for split in ("train", "valid", "test"):
        df = pd.read_csv(tiny / csv_name("utkface", split))
        if split == "valid":
            df = df.iloc[: max(2, len(df) // 3)]
        df.to_csv(out / csv_name(name, split), index=False)
    image_root_file(out, name).write_text(str(resolve_image_root(tiny, "utkface")) + "\n")
    return out


def test_two_sets_train_together_and_val_reports_each(tiny_aligned, tmp_path):
    other = second_set(tiny_aligned, tmp_path)
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train-ldl", "--dataset", "utkface,other", "--data-dir", str(tiny_aligned),
                                   "--data-dir", str(other), "--aug", "--checkpoint", str(run),
                                   "MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "2",
                                   "TRAIN.BATCH_SIZE", "16", "TRAIN.WARMUP_EPOCHS", "0"])
    assert res.exit_code == 0, res.output
    log = pd.read_csv(run / "log.csv")
    assert {"val_mae_utkface", "val_mae_other"} <= set(log.columns)
    row = log.iloc[0]
    # the selection score is the unweighted mean of the per-set MAEs
    assert abs(row["val_mae"] - (row["val_mae_utkface"] + row["val_mae_other"]) / 2) < 1e-3
    assert row["val_mae_utkface"] != row["val_mae_other"]

    out = tmp_path / "val"
    res = CliRunner().invoke(app, ["val", "--resume", str(run / "best.pth"), "--dataset", "utkface,other",
                                   "--data-dir", str(tiny_aligned), "--data-dir", str(other),
                                   "--output-dir", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("utkface", "other"):
        assert (out / name / "summary.json").is_file()
    n_other = len(pd.read_csv(other / csv_name("other", "test")))
    assert len(pd.read_csv(out / "other" / "predictions.csv")) == n_other


def test_a_dataset_count_that_does_not_match_the_folders_is_refused(tiny_aligned, tmp_path):
    res = CliRunner().invoke(app, ["train-ldl", "--dataset", "utkface,a,b", "--data-dir", str(tiny_aligned),
                                   "--data-dir", str(tmp_path), "--checkpoint", str(tmp_path / "r")])
    assert res.exit_code != 0
    assert "3 sets but 2 --data-dir" in res.output


def test_per_collection_age_layers_train_apart_and_answer_as_their_mixture(tiny_aligned, tmp_path):
    """MODEL.SET_HEADS: each collection's faces train their own age layer (the other's
    stays as it was), and the model answers with the average of the layers'
    distributions, in the torch runner and the exported graph alike."""
    import numpy as np
    import torch

    from agecli.data.dataset import AlignedFaces
    from agecli.infer.onnx_build import onnx_bytes_for_checkpoint
    from agecli.infer.runners import OnnxRunner
    from agecli.model.checkpoint import load_checkpoint, model_from_checkpoint

    other = second_set(tiny_aligned, tmp_path)
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train-mt", "--dataset", "utkface,other", "--data-dir", str(tiny_aligned),
                                   "--data-dir", str(other), "--checkpoint", str(run), "MODEL.SET_HEADS", "true",
                                   "MODEL.IMG_SIZE", "64", "TRAIN.EPOCHS", "1", "TRAIN.MAX_STEPS", "2",
                                   "TRAIN.BATCH_SIZE", "16", "TRAIN.WARMUP_EPOCHS", "0"])
    assert res.exit_code == 0, res.output
    ckpt = load_checkpoint(run / "best.pth")
    assert ckpt["meta"]["set_heads"] == 2 and "set_fc.0.weight" in ckpt["state_dict"]
    model, meta = model_from_checkpoint(run / "best.pth")
    crops = AlignedFaces.load(tiny_aligned / csv_name("utkface", "test"), tiny_aligned, 64, 0.25).images[:5]
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        mixed = model.predict(x)["probs"]
        first = model(x, torch.zeros(5, dtype=torch.long))["logits"].softmax(1)
        second = model(x, torch.ones(5, dtype=torch.long))["logits"].softmax(1)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(mixed, (first + second) / 2)
    onnx = OnnxRunner(onnx_bytes_for_checkpoint(run / "best.pth")).predict(crops)
    np.testing.assert_allclose(onnx["probs"], mixed.numpy(), atol=1e-4)

    res = CliRunner().invoke(app, ["train-mt", "--dataset", "utkface", "--data-dir", str(tiny_aligned),
                                   "--checkpoint", str(tmp_path / "one"), "MODEL.SET_HEADS", "true"])
    assert res.exit_code == 2 and "MODEL.SET_HEADS needs two or more --dataset sets" in " ".join(res.output.split())
