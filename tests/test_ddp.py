"""DistributedDataParallel training for real: `torchrun --nproc_per_node 2` on CPU (gloo)
over the tiny UTKFace set, through the CLI, against a single-process run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from agecli.model.checkpoint import build_model, load_checkpoint

from .conftest import REPO

# Both runs freeze the backbone for epoch 1 (DDP must be rebuilt when it unfreezes) and
# step the plateau scheduler with the validation MAE (every rank must step it alike).
# TRAIN.BATCH_SIZE is per rank: 2 ranks x 8 see the same batches as 1 process x 16.
COMMON = ["MODEL.IMG_SIZE", "64", "TRAIN.MAX_STEPS", "3", "TRAIN.WARMUP_EPOCHS", "0", "TRAIN.THREADS", "1",
          "TRAIN.SCHED", "plateau", "TRAIN.FREEZE_EPOCHS", "1"]


def torchrun(data_dir: Path, ckdir: Path, cache: Path, extra: list[str],
             opts: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "agecli", "train-ldl", "--multi-gpu", "--aug", "--data-dir", str(data_dir), "--dataset", "utkface",
           "--checkpoint", str(ckdir), *opts, *COMMON, "TRAIN.BATCH_SIZE", "8", "DATA.CACHE_DIR", str(cache), *extra]
    # a rank left waiting in a collective would hang: the timeout turns that into a failure
    # (generous: on a 2-core machine shared with other jobs one run has taken ~10 minutes)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def ddp_run(tiny_aligned, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    res = torchrun(tiny_aligned, root / "run", root / "cache", ["TRAIN.EPOCHS", "2"])
    assert res.returncode == 0, res.stderr[-3000:]
    # each rank's CLI reports the same best result when it finishes
    assert res.stderr.count("best validation: MAE") == 2, res.stderr[-3000:]
    return root


def test_two_ranks_write_one_checkpoint(ddp_run):
    run = ddp_run / "run"
    names = {p.name for p in run.iterdir()} - {"tensorboard"}
    assert names == {"best.pth", "last.pth", "log.csv", "learning_curve.png", "config.json"}
    assert not list(ddp_run.rglob("*.tmp*"))
    # the crop cache was built once per split (by rank 0) and read by rank 1
    assert len(list((ddp_run / "cache").glob("*.npy"))) == 2
    log = pd.read_csv(run / "log.csv")
    assert list(log["epoch"]) == [1, 2]  # one writer: no duplicated rows
    assert load_checkpoint(run / "last.pth")["epoch"] == 1
    assert log["val_mae"].notna().all() and (log["train_loss"] > 0).all()
    # the backbone, frozen in epoch 1, trained in epoch 2 (DDP was rebuilt when it unfroze)
    ckpt = load_checkpoint(run / "last.pth")
    start = build_model(ckpt["meta"], pretrained=True).state_dict()
    k = "backbone._conv_stem.weight"
    assert not torch.equal(ckpt["state_dict"][k], start[k]), k

@pytest.mark.parametrize("n, world", [(12, 2), (13, 2), (7, 3), (1, 2)])
def test_every_sample_is_seen_once_per_epoch_across_ranks(n, world):
    """What DDP needs of the sample order, exactly (not a noisy end MAE against one
    process): the ranks share the epoch's order without overlap, every sample is seen,
    and every rank runs the same number of batches (the few padded draws repeat the
    order's first samples, wrapping round)."""
    import numpy as np

    from agecli.train.trainer import rank_order

    order = np.random.default_rng(n).permutation(n)
    parts = [rank_order(order, r, world) for r in range(world)]
    assert len({len(p) for p in parts}) == 1
    merged = np.concatenate(parts)
    assert sorted(set(merged.tolist())) == list(range(n))
    pad = -n % world
    assert sorted(merged.tolist()) == sorted(order.tolist() + order[:pad].tolist())


def test_ranks_stop_early_together(ddp_run, tiny_aligned, tmp_path):
    """Early stopping decided from rank 0's validation reaches every rank: before, rank 0
    stopped alone and rank 1 waited in the next epoch's all-reduce."""
    ckpt = load_checkpoint(ddp_run / "run" / "last.pth")
    ckpt["best"] = 0.0  # a validation MAE no epoch can beat: the next epoch must stop the run
    resume = tmp_path / "unbeatable.pth"
    torch.save(ckpt, resume)
    res = torchrun(tiny_aligned, tmp_path / "run", ddp_run / "cache",
                   ["TRAIN.EPOCHS", "4", "TRAIN.PATIENCE", "1"], opts=("--resume", str(resume)))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("no improvement for 1 epochs: stopping") == 2, res.stderr[-3000:]
    assert list(pd.read_csv(tmp_path / "run" / "log.csv")["epoch"]) == [3]
