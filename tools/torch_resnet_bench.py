"""A PyTorch model brought to fastlayers with ``from_torch``, timed against PyTorch itself.

The model is ResNet-18 with torchvision's architecture, written out here (torchvision is not
needed): a 7x7 stride-2 stem with BatchNorm, ReLU and a padded 3x3 max pool, four stages of
two basic blocks (3x3 convs with BatchNorm, a 1x1 stride-2 projection where the shape
changes, residual adds), global average pooling and a 1000-way linear layer. Weights are
PyTorch's seeded initial ones, with the BatchNorm statistics randomized so that folding them
into the convs matters. The converted model's output is checked against PyTorch's first.

    python tools/torch_resnet_bench.py                    # 1 thread, batches 1 and 8
    python tools/torch_resnet_bench.py --threads 2 --batches 1,8,32

PyTorch is timed on NCHW memory (what a model gets by default) and on channels_last memory
(its faster convolutions), eval mode under ``torch.inference_mode()``; fastlayers takes the
NCHW array as the converted model does. Each figure is the best of 5 runs of a few calls;
the ratio is PyTorch's faster layout over fastlayers (> 1: fastlayers faster). Results:
docs/performance.md §13.
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

import fastlayers as fl


def resnet18():
    """torchvision's resnet18 architecture (eval mode), randomized BatchNorm statistics."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                      nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            blocks, cin = [], 64
            for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
                blocks += [Block(cin, cout, stride), Block(cout, cout, 1)]
                cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, 1000)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))

    torch.manual_seed(0)
    model = ResNet18().eval()
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return model


def best_ms(fn, calls: int, runs: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e3


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fl.set_num_threads(args.threads)
    model = resnet18()
    model_cl = resnet18().to(memory_format=torch.channels_last)
    print(f"fastlayers {fl.__version__} (isa {fl.runtime_info()['isa']}), torch "
          f"{torch.__version__}, {args.threads} thread(s)")
    for batch in (int(b) for b in args.batches.split(",")):
        x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))
        converted = fl.from_torch(model, x)
        xn = x.numpy()
        with torch.inference_mode():
            want = model(x).numpy()
        got = converted(xn)
        err = float(np.abs(got - want).max() / np.abs(want).max())
        if not err < 1e-4:
            raise SystemExit(f"batch {batch}: the converted model is off by {err:.1e}")
        calls = max(1, 16 // batch)
        t_fl = best_ms(functools.partial(converted, xn), calls)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            t_nchw = best_ms(functools.partial(model, x), calls)
            t_cl = best_ms(functools.partial(model_cl, x_cl), calls)
        print(f"resnet18 batch {batch}: fastlayers {t_fl:.2f} ms, PyTorch {t_nchw:.2f} ms "
              f"(channels_last {t_cl:.2f} ms), ratio {min(t_nchw, t_cl) / t_fl:.2f}x, "
              f"max error {err:.1e} of the largest output")


if __name__ == "__main__":
    main()
