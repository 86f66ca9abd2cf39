"""The official Associative Embedding network in NumPy, for tests.

Written from princeton-vl/pose-ae-train's published module definitions
(``models/posenet.py``, ``models/layers.py``), independently of our Keras
model, with ``pytorch_reference``'s ``Params`` and NumPy layers:

* ``Conv(inp, out, k, stride, bn=False, relu=True)``: ``nn.Conv2d`` with bias
  and padding (k - 1) // 2 under ``.conv``, then ReLU, then (``bn=True``) a
  BatchNorm under ``.bn`` (the released model has ``bn=False``);
* ``PoseNet.pre``: Conv 7x7/2 3->64 (``pre.0``), Conv 3x3 64->128 (``pre.1``),
  max-pool (``pre.2``, no weights), Conv 128->128 (``pre.3``), Conv 128->f
  (``pre.4``);
* ``Hourglass(n, f, increase)``: ``up1`` Conv f->f; ``low1`` Conv f->f+increase
  after a max-pool; ``low2`` the order n-1 hourglass on f+increase channels or,
  at n = 1, a Conv; ``low3`` Conv f+increase->f; nearest x2 upsampling; up1 +
  up2. The official recursion passes no ``increase`` (its default is 128), so
  the official network is this one with increase 128; this reference passes
  ``increase`` on, as our model does;
* ``features[i]``: the hourglass (``.0``) and two Conv 3x3 f->f (``.1``, ``.2``);
  ``outs[i]``: Conv 1x1 f->oup_dim without ReLU; the next stack's input is
  x + merge_preds[i](preds) + merge_features[i](feature), each a Conv 1x1
  without ReLU wrapped in ``Merge`` (``merge_preds.{i}.conv.conv``).
"""

from __future__ import annotations

import numpy as np
from pytorch_reference import Params, batch_norm, conv2d, max_pool, relu, upsample_nearest


def ae_conv(p, name, x, out_dim, kernel_size=3, stride=1, relu_=True, bn=False):
    x = conv2d(x, *p.conv(f"{name}.conv", out_dim, x.shape[1], kernel_size), stride)
    x = relu(x) if relu_ else x
    # Conv.forward: conv, ReLU, then the BatchNorm (in inference mode: running statistics).
    return batch_norm(x, *p.bn(f"{name}.bn", out_dim)) if bn else x


def ae_hourglass(p, name, x, n, increase, bn=False):
    f = x.shape[1]
    nf = f + increase
    up1 = ae_conv(p, f"{name}.up1", x, f, bn=bn)
    low1 = ae_conv(p, f"{name}.low1", max_pool(x), nf, bn=bn)
    if n > 1:
        low2 = ae_hourglass(p, f"{name}.low2", low1, n - 1, increase, bn)
    else:
        low2 = ae_conv(p, f"{name}.low2", low1, nf, bn=bn)
    low3 = ae_conv(p, f"{name}.low3", low2, f)  # the official Conv(nf, f, 3): no bn even under bn=True
    return up1 + upsample_nearest(low3)


def ae_forward(
    p, images_nhwc, num_stacks, filters, increase, out_channels, depth=4, bn=False, stem_filters=(64, 128)
):
    """PoseNet.forward: NHWC images -> list of per-stack NCHW outputs (out_channels each).

    ``bn`` is ``PoseNet(bn=True)``; ``stem_filters`` replace the official stem's
    64 and 128 (a change of ours for small networks; the layout stays the same).
    """
    first, second = stem_filters
    x = images_nhwc.transpose(0, 3, 1, 2)  # PoseNet permutes NHWC input itself
    x = ae_conv(p, "pre.0", x, first, kernel_size=7, stride=2, bn=bn)
    x = ae_conv(p, "pre.1", x, second, bn=bn)
    x = max_pool(x)
    x = ae_conv(p, "pre.3", x, second, bn=bn)
    x = ae_conv(p, "pre.4", x, filters, bn=bn)
    outputs = []
    for i in range(num_stacks):
        # The official Hourglass gets bn; the two convolutions after it do not.
        feature = ae_hourglass(p, f"features.{i}.0", x, depth, increase, bn)
        feature = ae_conv(p, f"features.{i}.1", feature, filters)
        feature = ae_conv(p, f"features.{i}.2", feature, filters)
        preds = ae_conv(p, f"outs.{i}", feature, out_channels, kernel_size=1, relu_=False)
        outputs.append(preds)
        if i < num_stacks - 1:
            x = (
                x
                + ae_conv(p, f"merge_preds.{i}.conv", preds, filters, kernel_size=1, relu_=False)
                + ae_conv(p, f"merge_features.{i}.conv", feature, filters, kernel_size=1, relu_=False)
            )
    return outputs


def random_ae_state_dict(seed=0, depth=4, **architecture):
    """A PoseNet state dict with random weights, in the official key layout (without prefix)."""
    p = Params(seed=seed)
    size = 4 * 2**depth
    ae_forward(p, np.zeros((1, size, size, 3), np.float32), depth=depth, **architecture)
    return p.state
