#!/usr/bin/python3
"""Writes peft_lora/, an adapter directory in the layout Hugging Face PEFT saves, made outside Java.

This script is NOT Hugging Face PEFT. With only the standard library it reproduces what
`PeftModel.save_pretrained` writes for a LoRA adapter with safe serialization:

  * adapter_config.json: every LoraConfig field as PEFT 0.13 serializes it (json.dumps with
    indent=2 and sort_keys=True), including fields peft4j does not interpret;
  * adapter_model.safetensors: keys "base_model.model.<module>.lora_A.weight" / ".lora_B.weight"
    with PyTorch shapes (Linear: A [r, in], B [out, r]; Conv2d: A [r, in, kh, kw], B [out, r, 1, 1]),
    the adapter name ("default") stripped, modules_to_save saved under the module's own names,
    and {"format": "pt"} metadata.

The modules are those of the test model TinyModels.cnn: conv1 (Conv2d 1->4, 3x3) and fc2
(Linear 6->3), rank 2, plus fc1 saved whole. AdapterBundleTest checks the values below.

Run from this directory:  /usr/bin/python3 make_peft_fixture.py
"""
import json
import os
import struct

R = 2
CONFIG = {
    "alpha_pattern": {},
    "auto_mapping": None,
    "base_model_name_or_path": "tiny-cnn",
    "bias": "none",
    "exclude_modules": None,
    "fan_in_fan_out": False,
    "inference_mode": True,
    "init_lora_weights": True,
    "layer_replication": None,
    "layers_pattern": None,
    "layers_to_transform": None,
    "loftq_config": {},
    "lora_alpha": 16,
    "lora_bias": False,
    "lora_dropout": 0.05,
    "megatron_config": None,
    "megatron_core": "megatron.core",
    "modules_to_save": ["fc1"],
    "peft_type": "LORA",
    "r": R,
    "rank_pattern": {},
    "revision": None,
    "target_modules": ["fc2", "conv1"],
    "task_type": None,
    "use_dora": False,
    "use_rslora": False,
}


def values(n, scale):
    """Deterministic values: scale * (i - n/2) for i in 0..n-1."""
    return [scale * (i - n / 2) for i in range(n)]


# name -> (shape, float32 values)
TENSORS = {
    "base_model.model.conv1.lora_A.weight": ([R, 1, 3, 3], values(R * 9, 0.01)),
    "base_model.model.conv1.lora_B.weight": ([4, R, 1, 1], values(4 * R, 0.1)),
    "base_model.model.fc2.lora_A.weight": ([R, 6], values(R * 6, 0.02)),
    "base_model.model.fc2.lora_B.weight": ([3, R], values(3 * R, 0.3)),
    "base_model.model.fc1.weight": ([6, 4], values(24, 0.05)),
    "base_model.model.fc1.bias": ([6], values(6, 0.5)),
}


def safetensors_bytes():
    # all tensors are F32, so the library's order is by name
    header = {"__metadata__": {"format": "pt"}}
    data = b""
    for name in sorted(TENSORS):
        shape, vals = TENSORS[name]
        raw = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


if __name__ == "__main__":
    os.makedirs("peft_lora", exist_ok=True)
    with open("peft_lora/adapter_config.json", "w") as f:
        f.write(json.dumps(CONFIG, indent=2, sort_keys=True))
    with open("peft_lora/adapter_model.safetensors", "wb") as f:
        f.write(safetensors_bytes())
