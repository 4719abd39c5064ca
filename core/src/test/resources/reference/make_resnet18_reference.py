#!/usr/bin/python3
"""PyTorch reference for LoRA on the shared resnet18 test model (../shared/models/resnet18.onnx).

Independent of peft4j's Java code: it rebuilds the model in PyTorch (torchvision's resnet18 with
6 classes, weights loaded from the ONNX initializers, which carry the PyTorch parameter names),
adds LoRA exactly as Hugging Face PEFT defines it -

    Conv2d:  y = conv(x) + s * conv1x1_B(conv_A(x)),  conv_A with the base kernel, stride, padding, dilation
    Linear:  y = linear(x) + s * (x A^T) B^T,          s = lora_alpha / r

(dropout is the identity at inference) - on every Conv2d with groups = 1 and on fc, with seeded
random A and B (B is non-zero so the adapter visibly changes the output), and writes:

  resnet18-lora/adapter/adapter_config.json        PEFT's LoraConfig fields (json.dumps indent=2, sort_keys)
  resnet18-lora/adapter/adapter_model.safetensors  PEFT key names and shapes, F32, {"format": "pt"}
  resnet18-lora/x.npy                             input [2, 3, 64, 64] float32
  resnet18-lora/labels.npy                        int64 [2] class labels for the loss below
  resnet18-lora/y0.npy                            base model output (no adapter)
  resnet18-lora/y1.npy                            output with the adapter
  resnet18-lora/grads.safetensors                 d(mean softmax cross-entropy)/d(every LoRA tensor), F32,
                                                  same keys as the adapter (the autodiff reference)

This script is not Hugging Face PEFT (which is not packaged for Debian); it implements the
formulas above with torch.nn.functional. Debian's python3-torch 1.13 and python3-torchvision
0.14 and python3-onnx 1.12 run it:

    cd core/src/test/resources/reference && /usr/bin/python3 make_resnet18_reference.py ../../../../../../shared/models/resnet18.onnx
"""
import json
import os
import struct
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F
import torchvision

R = 4
ALPHA = 8
SCALE = ALPHA / R
OUT = "resnet18-lora"


def load_model(onnx_path):
    model = torchvision.models.resnet18(num_classes=6)
    weights = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy())
               for t in onnx.load(onnx_path).graph.initializer}
    state = model.state_dict()
    missing = [k for k in state if k not in weights and not k.endswith("num_batches_tracked")]
    if missing:
        raise SystemExit("ONNX initializers lack %s" % missing[:5])
    model.load_state_dict({k: weights.get(k, state[k]) for k in state})
    return model.eval()


def targets(model):
    out = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d) and m.groups == 1:
            out.append((name, m))
        elif isinstance(m, torch.nn.Linear):
            out.append((name, m))
    return out


def make_lora(model, gen):
    tensors = {}
    for name, m in targets(model):
        if isinstance(m, torch.nn.Conv2d):
            a_shape = (R, m.in_channels) + tuple(m.kernel_size)
            b_shape = (m.out_channels, R, 1, 1)
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        else:
            a_shape = (R, m.in_features)
            b_shape = (m.out_features, R)
            fan_in = m.in_features
        a = (torch.rand(a_shape, generator=gen) * 2 - 1) / fan_in ** 0.5
        b = torch.randn(b_shape, generator=gen) * 0.05
        tensors["base_model.model.%s.lora_A.weight" % name] = a.requires_grad_(True)
        tensors["base_model.model.%s.lora_B.weight" % name] = b.requires_grad_(True)
    return tensors


def add_hooks(model, tensors):
    handles = []
    for name, m in targets(model):
        a = tensors["base_model.model.%s.lora_A.weight" % name]
        b = tensors["base_model.model.%s.lora_B.weight" % name]
        if isinstance(m, torch.nn.Conv2d):
            def hook(mod, inp, out, a=a, b=b):
                h = F.conv2d(inp[0], a, stride=mod.stride, padding=mod.padding, dilation=mod.dilation)
                return out + SCALE * F.conv2d(h, b)
        else:
            def hook(mod, inp, out, a=a, b=b):
                return out + SCALE * (inp[0] @ a.t() @ b.t())
        handles.append(m.register_forward_hook(hook))
    return handles


def write_safetensors(path, tensors):
    header = {"__metadata__": {"format": "pt"}}
    data = b""
    for name in sorted(tensors):
        arr = tensors[name].detach().numpy().astype("<f4")
        raw = arr.tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def main():
    onnx_path = sys.argv[1] if len(sys.argv) > 1 else "../../../../../../shared/models/resnet18.onnx"
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    model = load_model(onnx_path)
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, 3, 64, 64, generator=gen)
    labels = torch.tensor([1, 4], dtype=torch.int64)
    with torch.no_grad():
        y0 = model(x)
    tensors = make_lora(model, gen)
    add_hooks(model, tensors)
    y1 = model(x)
    loss = F.cross_entropy(y1, labels)
    loss.backward()

    os.makedirs(os.path.join(OUT, "adapter"), exist_ok=True)
    names = [n for n, _ in targets(model)]
    config = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "resnet18-6-classes",
        "bias": "none", "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
        "layers_pattern": None, "layers_to_transform": None, "lora_alpha": ALPHA, "lora_dropout": 0.0,
        "modules_to_save": None, "peft_type": "LORA", "r": R, "rank_pattern": {}, "revision": None,
        "target_modules": names, "task_type": None, "use_dora": False, "use_rslora": False,
    }
    with open(os.path.join(OUT, "adapter", "adapter_config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True))
    write_safetensors(os.path.join(OUT, "adapter", "adapter_model.safetensors"), tensors)
    write_safetensors(os.path.join(OUT, "grads.safetensors"), {k: v.grad for k, v in tensors.items()})
    np.save(os.path.join(OUT, "x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(OUT, "labels.npy"), labels.numpy())
    np.save(os.path.join(OUT, "y0.npy"), y0.numpy().astype(np.float32))
    np.save(os.path.join(OUT, "y1.npy"), y1.detach().numpy().astype(np.float32))
    print("modules %d, loss %.6f, |y1 - y0| max %.4f" % (len(names), loss.item(), (y1 - y0).abs().max().item()))


if __name__ == "__main__":
    main()
