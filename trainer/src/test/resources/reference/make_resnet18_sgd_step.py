"""PyTorch reference for `peft4j train`'s one-step SGD check (issue 5).

The same LoRA-on-resnet18 construction as core's reference (core/src/test/resources/reference/
make_resnet18_reference.py, imported from there: LoRA on every Conv2d with groups = 1 and on fc,
through forward hooks, as Hugging Face PEFT defines it), with a batch of 8, then one step of
torch.optim.SGD (lr 1, momentum 0, weight decay 0) on the mean softmax cross-entropy. Writes:

  resnet18-sgd-step/adapter/           the adapter R (PEFT layout) before the step
  resnet18-sgd-step/x.npy              input [8, 3, 64, 64] float32
  resnet18-sgd-step/y.npy              int64 [8] labels
  resnet18-sgd-step/updated.safetensors  R after the step, same keys (R minus the gradient)

Run with Debian's python3-torch 1.13, python3-torchvision 0.14 and python3-onnx:

    cd trainer/src/test/resources/reference && /usr/bin/python3 make_resnet18_sgd_step.py ../../../../../../shared/models/resnet18.onnx
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "../../../../../core/src/test/resources/reference"))
import make_resnet18_reference as ref  # noqa: E402

OUT = "resnet18-sgd-step"


def main():
    onnx_path = sys.argv[1] if len(sys.argv) > 1 else "../../../../../../shared/models/resnet18.onnx"
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(4321)
    model = ref.load_model(onnx_path)
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(8, 3, 64, 64, generator=gen)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 2, 4], dtype=torch.int64)
    tensors = ref.make_lora(model, gen)
    before = {k: v.detach().clone() for k, v in tensors.items()}
    ref.add_hooks(model, tensors)
    opt = torch.optim.SGD(list(tensors.values()), lr=1.0, momentum=0.0, weight_decay=0.0)
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()

    os.makedirs(os.path.join(OUT, "adapter"), exist_ok=True)
    names = [n for n, _ in ref.targets(model)]
    config = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "resnet18-6-classes",
        "bias": "none", "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True,
        "layers_pattern": None, "layers_to_transform": None, "lora_alpha": ref.ALPHA, "lora_dropout": 0.0,
        "modules_to_save": None, "peft_type": "LORA", "r": ref.R, "rank_pattern": {}, "revision": None,
        "target_modules": names, "task_type": None, "use_dora": False, "use_rslora": False,
    }
    with open(os.path.join(OUT, "adapter", "adapter_config.json"), "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True))
    ref.write_safetensors(os.path.join(OUT, "adapter", "adapter_model.safetensors"), before)
    ref.write_safetensors(os.path.join(OUT, "updated.safetensors"), {k: v.detach() for k, v in tensors.items()})
    np.save(os.path.join(OUT, "x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(OUT, "y.npy"), y.numpy())
    change = max((tensors[k].detach() - before[k]).abs().max().item() for k in tensors)
    print("modules %d, loss %.6f, largest change %.4g" % (len(names), loss.item(), change))


if __name__ == "__main__":
    main()
