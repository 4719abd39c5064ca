#!/usr/bin/python3
"""PyTorch baseline for peft4j's training benchmark (bench/run runs it; optional tooling, never
needed to build, test or run peft4j).

Times one LoRA training step - forward, softmax cross-entropy, backward, AdamW over the LoRA
tensors only - of a shared vision model (../shared/models/resnet18.onnx or
mobilenet_v3_small.onnx) on the CPU, with what peft4j's TrainBench runs:

  - the torchvision architecture with 6 classes, weights loaded from the ONNX initializers (they
    carry the PyTorch parameter names), eval mode (BatchNorm statistics frozen, dropout off), every
    base parameter frozen;
  - LoRA r = 8, alpha = 16 on every Conv2d with groups = 1 and every Linear, as Hugging Face PEFT
    defines it, through forward hooks:
        Conv2d:  y = conv(x) + s * conv1x1_B(conv_A(x))   (conv_A with the base kernel size, stride,
                                                            padding, dilation)
        Linear:  y = linear(x) + s * (x A^T) B^T          s = alpha / r
    A as PEFT initialises it (kaiming-uniform, a = sqrt(5)), B random N(0, 0.02^2) so that the
    gradients of A are not zero (as in the Java benchmark);
  - torch.optim.AdamW with its defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2);
  - a batch of 16 N(0, 1) images of 3x64x64, labels 0, 1, ..., 5, 0, ...;
  - torch.set_num_threads(THREADS) (default 2), one inter-op thread.

After WARMUP steps it times STEPS steps one by one (time.perf_counter) and prints one JSON object:
the settings, the versions and every step's time in milliseconds.

    /usr/bin/python3 bench/pytorch_lora_step.py --model resnet18 --onnx ../shared/models/resnet18.onnx

Debian's python3-torch 1.13, python3-torchvision 0.14 and python3-onnx 1.12 run it.
"""
import argparse
import json
import math
import platform
import statistics
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, choices=["resnet18", "mobilenet_v3_small"])
    p.add_argument("--onnx", required=True, help="the model's ONNX file (weights are read from its initializers)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=float, default=16)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", help="write the JSON here (default: standard output)")
    return p.parse_args()


def main():
    args = parse_args()
    import onnx
    import onnx.numpy_helper
    import torch
    import torch.nn.functional as F
    import torchvision

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass   # already set: only possible before any parallel work
    torch.manual_seed(0)

    model = getattr(torchvision.models, args.model)(num_classes=6)
    weights = {}
    for t in onnx.load(args.onnx).graph.initializer:
        weights[t.name] = torch.from_numpy(onnx.numpy_helper.to_array(t).copy())
    state = model.state_dict()
    # the exporter shares identical initializers (zero biases) under one name: those keep
    # torchvision's initial values, which are the same zeros
    loaded = [k for k in state if k in weights]
    missing = [k for k in state if k not in weights and not k.endswith("num_batches_tracked")]
    if len(loaded) < len(state) / 2:
        raise SystemExit("pytorch_lora_step: %s does not hold %s's parameters (missing %s)"
                         % (args.onnx, args.model, missing[:5]))
    model.load_state_dict({k: weights[k] if k in weights else state[k] for k in state})
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    scale = args.alpha / args.rank
    gen = torch.Generator().manual_seed(1234)
    lora = []
    modules = 0
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d) and m.groups == 1:
            a = torch.empty((args.rank, m.in_channels) + tuple(m.kernel_size))
            b = torch.randn((m.out_channels, args.rank, 1, 1), generator=gen) * 0.02

            def hook(mod, inp, out, a=a, b=b):
                h = F.conv2d(inp[0], a, stride=mod.stride, padding=mod.padding, dilation=mod.dilation)
                return out + scale * F.conv2d(h, b)
        elif isinstance(m, torch.nn.Linear):
            a = torch.empty((args.rank, m.in_features))
            b = torch.randn((m.out_features, args.rank), generator=gen) * 0.02

            def hook(mod, inp, out, a=a, b=b):
                return out + scale * (inp[0] @ a.t() @ b.t())
        else:
            continue
        torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        a.requires_grad_(True)
        b.requires_grad_(True)
        lora += [a, b]
        m.register_forward_hook(hook)
        modules += 1

    opt = torch.optim.AdamW(lora, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=gen)
    labels = torch.arange(args.batch, dtype=torch.int64) % 6

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        return loss.item()

    losses = [step() for _ in range(args.warmup)]
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append((time.perf_counter() - t0) * 1e3)

    result = {
        "model": args.model,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "size": args.size,
        "rank": args.rank,
        "alpha": args.alpha,
        "lora_modules": modules,
        "lora_parameters": sum(t.numel() for t in lora),
        "missing_initializers": missing,
        "warmup": args.warmup,
        "steps": args.steps,
        "times_ms": times,
        "median_ms": statistics.median(times),
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            f.write(text + "\n")
        import os
        os.replace(args.out + ".tmp", args.out)
    else:
        print(text)
    print("pytorch_lora_step: %s LoRA step (batch %d, %d threads, torch %s): median %.1f ms over %d steps"
          % (args.model, args.batch, result["threads"], torch.__version__, result["median_ms"], args.steps),
          file=sys.stderr)


if __name__ == "__main__":
    main()
