"""bench/readout_screen.py: the read-outs it compares are what they say, on distributions
whose mean, median and sharpened mean are known exactly."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from readout_screen import readouts  # noqa: E402


def test_readouts_of_known_distributions():
    p = np.zeros((3, 101))
    p[0, 30] = 1.0  # all mass on one age
    p[1, 20:30] = 0.1  # uniform over 20-29
    p[2, 10], p[2, 60] = 0.8, 0.2  # a mode and a far tail
    r = readouts(p)
    assert r["mean"] == pytest.approx([30, 24.5, 20])
    # the median interpolates inside the bin where half the mass is reached
    assert r["median"] == pytest.approx([30, 24.5, 10 - 0.5 + 0.5 / 0.8])
    # sharpening leaves a point mass and a uniform alone and pulls a tail toward the mode
    sharp = r["sharpened T=0.5"]
    assert sharp[:2] == pytest.approx([30, 24.5])
    assert sharp[2] == pytest.approx((0.64 * 10 + 0.04 * 60) / 0.68)
    assert r["median"][2] < sharp[2] < r["sharpened T=0.7"][2] < r["mean"][2]
