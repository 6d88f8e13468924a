"""The label vocabularies and limits every layer shares, in one light module: no numpy,
pandas or torch, so a demo worker that names a face's gender, or the CLI's help, loads
nothing for them.

A label is stored as its index into these tuples (the aligned CSVs' `gender` and `race`
columns, the model's gender/ethnicity outputs); -1 or an empty field means unknown.
"""
from __future__ import annotations

GENDERS = ("male", "female")  # 0 male, 1 female
RACES = ("white", "black", "asian", "indian", "others")  # UTKFace's codes 0-4
MAX_AGE = 120  # the oldest age a label may give (and MODEL.AGE_MAX's bound)
AUG_KINDS = ("basic", "photo", "print", "fill", "chip")  # DATA.AUG: each adds to the one before it (data.dataset)
SPLITS = ("train", "valid", "test")  # a prepared set's parts: <name>_<split>_align.csv

# The age groups `val` reports its errors in (`eval.metrics.group_tables`); the last
# one is open-ended ("61+").
AGE_GROUPS = ((0, 5), (6, 10), (11, 20), (21, 30), (31, 40), (41, 60), (61, 200))
