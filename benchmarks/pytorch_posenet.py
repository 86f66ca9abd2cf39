"""The official PyTorch Stacked Hourglass (princeton-vl/pytorch_stacked_hourglass), for side-by-side runs.

Built from the published architecture (``models/layers.py``, ``models/posenet.py``)
with the same module names, so ``state_dict()`` has the official keys. Needs
torch; used by ``benchmarks/train_step_vs_pytorch.py`` and by an optional test
of the weight converter.

Run as a script, it serves timed training steps over stdin/stdout, so the
benchmark can time PyTorch in a process of its own (no TensorFlow threads or
allocator beside it)::

    python benchmarks/pytorch_posenet.py NSTACK FILTERS DEPTH IMAGE_SIZE BATCH_SIZE THREADS [train|infer]
    # each "step" line in -> one line out: the step's time in seconds
    # (infer: one forward pass in eval mode without gradients, as the official test code runs it)
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn


class Conv(nn.Module):
    def __init__(self, inp_dim, out_dim, kernel_size=3, stride=1, bn=False, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(
            inp_dim, out_dim, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=True
        )
        self.relu = nn.ReLU() if relu else None
        self.bn = nn.BatchNorm2d(out_dim) if bn else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class Residual(nn.Module):
    def __init__(self, inp_dim, out_dim):
        super().__init__()
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm2d(inp_dim)
        self.conv1 = Conv(inp_dim, out_dim // 2, 1, relu=False)
        self.bn2 = nn.BatchNorm2d(out_dim // 2)
        self.conv2 = Conv(out_dim // 2, out_dim // 2, 3, relu=False)
        self.bn3 = nn.BatchNorm2d(out_dim // 2)
        self.conv3 = Conv(out_dim // 2, out_dim, 1, relu=False)
        self.skip_layer = Conv(inp_dim, out_dim, 1, relu=False)  # built always, as in the original
        self.need_skip = inp_dim != out_dim

    def forward(self, x):
        residual = self.skip_layer(x) if self.need_skip else x
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + residual


class Hourglass(nn.Module):
    def __init__(self, n, f):
        super().__init__()
        self.up1 = Residual(f, f)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.low1 = Residual(f, f)
        self.n = n
        self.low2 = Hourglass(n - 1, f) if n > 1 else Residual(f, f)
        self.low3 = Residual(f, f)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        up1 = self.up1(x)
        low1 = self.low1(self.pool1(x))
        low3 = self.low3(self.low2(low1))
        return up1 + self.up2(low3)


class Merge(nn.Module):
    def __init__(self, x_dim, y_dim):
        super().__init__()
        self.conv = Conv(x_dim, y_dim, 1, relu=False, bn=False)

    def forward(self, x):
        return self.conv(x)


class PoseNet(nn.Module):
    """NHWC images in [0, 1] -> (N, nstack, K, H/4, W/4) heatmaps, as the original."""

    def __init__(self, nstack, inp_dim, oup_dim, depth=4):
        super().__init__()
        self.nstack = nstack
        self.pre = nn.Sequential(
            Conv(3, 64, 7, 2, bn=True, relu=True),
            Residual(64, 128),
            nn.MaxPool2d(2, 2),
            Residual(128, 128),
            Residual(128, inp_dim),
        )
        self.hgs = nn.ModuleList([nn.Sequential(Hourglass(depth, inp_dim)) for _ in range(nstack)])
        self.features = nn.ModuleList(
            [
                nn.Sequential(Residual(inp_dim, inp_dim), Conv(inp_dim, inp_dim, 1, bn=True, relu=True))
                for _ in range(nstack)
            ]
        )
        self.outs = nn.ModuleList([Conv(inp_dim, oup_dim, 1, relu=False, bn=False) for _ in range(nstack)])
        self.merge_features = nn.ModuleList([Merge(inp_dim, inp_dim) for _ in range(nstack - 1)])
        self.merge_preds = nn.ModuleList([Merge(oup_dim, inp_dim) for _ in range(nstack - 1)])

    def forward(self, imgs):
        x = self.pre(imgs.permute(0, 3, 1, 2))
        combined_hm_preds = []
        for i in range(self.nstack):
            feature = self.features[i](self.hgs[i](x))
            preds = self.outs[i](feature)
            combined_hm_preds.append(preds)
            if i < self.nstack - 1:
                x = x + self.merge_preds[i](preds) + self.merge_features[i](feature)
        return torch.stack(combined_hm_preds, 1)


def heatmap_loss(combined_hm_preds, heatmaps):
    """The original calc_loss: per-stack mean squared error, summed over stacks."""
    per_stack = ((combined_hm_preds - heatmaps[:, None]) ** 2).mean(dim=(2, 3, 4))
    return per_stack.sum(dim=1).mean()


def training_step(nstack, filters, depth, image_size, batch_size):
    """One RMSprop(2.5e-4) step on a fixed random batch, as the official train.py does it."""
    net = PoseNet(nstack, filters, 16, depth=depth).train()
    optimizer = torch.optim.RMSprop(net.parameters(), lr=2.5e-4)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, image_size, image_size, 3, generator=generator)
    heatmaps = torch.rand(batch_size, 16, image_size // 4, image_size // 4, generator=generator)

    def step():
        optimizer.zero_grad()
        loss = heatmap_loss(net(images), heatmaps)
        loss.backward()
        optimizer.step()

    return step


def inference_step(nstack, filters, depth, image_size, batch_size):
    """One forward pass on a fixed random batch in eval mode, without gradients."""
    net = PoseNet(nstack, filters, 16, depth=depth).eval()
    images = torch.rand(batch_size, image_size, image_size, 3, generator=torch.Generator().manual_seed(0))

    def step():
        with torch.inference_mode():
            net(images)

    return step


def serve_steps(argv):
    kind = argv[6] if len(argv) > 6 else "train"
    nstack, filters, depth, image_size, batch_size, threads = map(int, argv[:6])
    torch.set_num_threads(threads)
    make_step = {"train": training_step, "infer": inference_step}[kind]
    step = make_step(nstack, filters, depth, image_size, batch_size)
    print(torch.__version__, flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            raise SystemExit(f"pytorch_posenet: expected 'step', got {line.strip()!r}")
        start = time.perf_counter()
        step()
        print(time.perf_counter() - start, flush=True)


if __name__ == "__main__":
    serve_steps(sys.argv[1:])
