#!/usr/bin/python3
"""Writes fixture.safetensors, a small safetensors file made outside Java.

This script is NOT the Hugging Face `safetensors` library. It reproduces, with only the
standard library (struct, json), the layout that library writes:

  * 8-byte little-endian unsigned header length N, then N bytes of compact JSON
    (separators "," and ":"), then the data section;
  * "__metadata__" first in the header, then the tensors in data order;
  * tensors ordered by dtype, widest first in the library's dtype order, then by name;
  * the header padded with spaces so that 8 + N is a multiple of 8;
  * data little-endian, row-major, each tensor's data_offsets relative to the data section.

SafetensorsFixtureTest reads the file and checks every value below, and checks that the
Java writer produces the same bytes for the same tensors.

Run from this directory:  /usr/bin/python3 make_fixture.py
"""
import json
import struct

# The library's dtype order, narrowest first; files list tensors widest first.
DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
               "I32", "U32", "F32", "F64", "I64", "U64"]

# name -> (dtype, shape, little-endian bytes)
TENSORS = {
    # float32 values 0..5, shape [2, 3]
    "a.weight": ("F32", [2, 3], struct.pack("<6f", 0.0, 1.0, 2.0, 3.0, 4.0, 5.0)),
    # int64 values, including the extremes
    "b.index": ("I64", [3], struct.pack("<3q", -1, 2**62, -(2**63))),
    # float16 bit patterns: 1.0, -2.0, 0.5, +inf, 65504 (max), smallest subnormal
    "c.half": ("F16", [2, 3], struct.pack("<6H", 0x3C00, 0xC000, 0x3800, 0x7C00, 0x7BFF, 0x0001)),
    # bfloat16 bit patterns: 1.0, -1.5, 3.140625, NaN
    "d.bf16": ("BF16", [4], struct.pack("<4H", 0x3F80, 0xBFC0, 0x4049, 0x7FC0)),
    # a scalar and an empty tensor
    "e.scalar": ("F64", [], struct.pack("<d", 2.5)),
    "f.empty": ("F32", [0, 4], b""),
    # booleans
    "g.attn_mask": ("BOOL", [3], bytes([1, 0, 1])),
}
METADATA = {"format": "pt"}


def build():
    order = sorted(TENSORS, key=lambda n: (-DTYPE_ORDER.index(TENSORS[n][0]), n.encode("utf-8")))
    header = {"__metadata__": METADATA}
    data = b""
    for name in order:
        dtype, shape, raw = TENSORS[name]
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


if __name__ == "__main__":
    with open("fixture.safetensors", "wb") as f:
        f.write(build())
