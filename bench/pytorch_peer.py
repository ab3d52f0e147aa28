"""PyTorch peer of `graft bench`: the same bench net, the same step, timed the same way.

Run it in a virtual environment *outside* the repository (never in CI or tests):

    python3 -m venv ~/venv-torch && ~/venv-torch/bin/pip install torch
    ~/venv-torch/bin/python bench/pytorch_peer.py --threads 2

The net is graft's `resnet-cifar` (He et al. 2016, §4.2) with depth 20 and width 16: a 3x3 stem
conv + BN + ReLU, three stages of three basic blocks (16, 32, 64 channels; strides 1, 2, 2; 1x1
conv + BN shortcut where the shape changes), global average pooling and a 10-way `fc`.
A training step is forward with batch statistics, cross-entropy, backward and an SGD step with
momentum 0.9 (weight decay 5e-4), exactly what `graft bench` times. Inference is eval mode under
`torch.inference_mode()`. Output lines match `graft bench`'s so the two can be put side by side.
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(h + s)


class ResnetCifar(nn.Module):
    def __init__(self, depth, width, channels, classes):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks, cin = [], width
        for stage, stride in enumerate([1, 2, 2]):
            cout = width * 2**stage
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def flops_per_image(model, channels, size):
    """2 x multiply-accumulates of convs and fc, as graft counts them."""
    total, hooks = 0, []

    def conv_hook(m, _inp, out):
        nonlocal total
        total += 2 * out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def fc_hook(m, _inp, _out):
        nonlocal total
        total += 2 * m.in_features * m.out_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(fc_hook))
    with torch.no_grad():
        model.eval()(torch.zeros(1, channels, size, size))
    for h in hooks:
        h.remove()
    return total


def timed(fn, warmup, seconds):
    for _ in range(warmup):
        fn()
    steps, start = 0, time.perf_counter()
    while True:
        fn()
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and steps >= 3:
            return elapsed / steps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seconds", type=float, default=5.0, help="minimum timed seconds per figure")
    p.add_argument("--channels", type=int, nargs="*", default=[1, 3])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    for c in args.channels:
        net = f"resnet-cifar-{args.depth} w{args.width} {c}x32x32"
        model = ResnetCifar(args.depth, args.width, c, 10)
        flops = flops_per_image(model, c, 32)
        x = torch.rand(args.batch, c, 32, 32)
        y = torch.randint(0, 10, (args.batch,))
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

        def train_step():
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()

        def infer():
            model.eval()
            with torch.inference_mode():
                model(x)

        t = timed(train_step, 3, args.seconds)
        print(f"train     {net}: {args.batch / t:8.1f} img/s  {3 * flops * args.batch / t / 1e9:6.1f} GFLOP/s")
        t = timed(infer, 3, args.seconds)
        print(f"inference {net}: {args.batch / t:8.1f} img/s  {flops * args.batch / t / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
