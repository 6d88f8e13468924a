"""The contract of an exported agecli ONNX file, shared by the code that writes it
(`onnx_build`) and the code that runs it (`runners`), so neither imports the other.

Input `crops`: uint8, shape (N, S, S, 3), RGB, the aligned face crop (see the model card
for the crop recipe); the graph does its own normalisation. Outputs: `age`, `std`, and
where the model has them `probs`, `gender_probs`, `race_probs`. The JSON under
ONNX_META_KEY holds img_size, expand, mean/std (already applied inside the graph), the
age range, the head and the output names. `read_props` reads that JSON back without
opening a session (nor needing the onnx package).
"""
from __future__ import annotations

import os
from pathlib import Path

ONNX_META_KEY = "agecli_meta"
INPUT_NAME = "crops"
INPUT_TYPE = "tensor(uint8)"


METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto (key = 1, value = 2)


def read_props(path: str | Path) -> dict[str, str]:
    """The metadata properties of an ONNX file, read without onnx or ONNX Runtime: the
    top-level protobuf fields are walked and every other one (the graph, the weights)
    is skipped unread, so this costs a few reads, not a session. ValueError when the
    file is not a protobuf message."""
    props: dict[str, str] = {}
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        while fh.tell() < size:
            tag = _varint(fh)
            number, wire = tag >> 3, tag & 7
            if wire == 0:
                _varint(fh)
            elif wire == 1 or wire == 5:
                fh.seek(8 if wire == 1 else 4, os.SEEK_CUR)
            elif wire == 2:
                length = _varint(fh)
                if number == METADATA_PROPS:
                    key, value = _entry(fh.read(length))
                    props[key] = value
                else:
                    fh.seek(length, os.SEEK_CUR)
            else:
                raise ValueError(f"{path}: not an ONNX file (protobuf wire type {wire})")
            if number == 0 or fh.tell() > size:
                raise ValueError(f"{path}: not an ONNX file")
    return props


def _varint(fh) -> int:
    out = shift = 0
    while True:
        b = fh.read(1)
        if not b:
            raise ValueError("an ONNX file cut short")
        out |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return out
        shift += 7
        if shift > 63:
            raise ValueError("not an ONNX file (a varint past 64 bits)")


def _entry(data: bytes) -> tuple[str, str]:
    """key and value of one StringStringEntryProto."""
    import io

    fh, out = io.BytesIO(data), {1: "", 2: ""}
    while fh.tell() < len(data):
        tag = _varint(fh)
        if tag & 7 != 2:
            raise ValueError("not an ONNX metadata entry")
        out[tag >> 3] = fh.read(_varint(fh)).decode("utf-8", "replace")
    return out[1], out[2]
