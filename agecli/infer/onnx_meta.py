"""The contract of an exported agecli ONNX file, shared by the code that writes it
(`onnx_build`) and the code that runs it (`runners`), so neither imports the other.

Input `crops`: uint8, shape (N, S, S, 3), RGB, the aligned face crop (see the model card
for the crop recipe); the graph does its own normalisation. Outputs: `age`, `std`, and
where the model has them `probs`, `gender_probs`, `race_probs`. The JSON under
ONNX_META_KEY holds img_size, expand, mean/std (already applied inside the graph), the
age range, the head and the output names.
"""
from __future__ import annotations

ONNX_META_KEY = "agecli_meta"
INPUT_NAME = "crops"
INPUT_TYPE = "tensor(uint8)"

