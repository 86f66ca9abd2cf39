"""The official PyTorch hourglass networks in NumPy, and torch's checkpoint formats, for tests.

Written from the two projects' published module definitions, independently
of our Keras model:

* PV, princeton-vl/pytorch_stacked_hourglass ``models/posenet.py`` and
  ``models/layers.py``: ``PoseNet`` with ``pre`` (Conv 7x7/2 + BN + ReLU,
  Residual 64->128, Pool, Residual 128->128, Residual 128->f), ``hgs``,
  ``features`` (Residual, Conv 1x1 + BN + ReLU), ``outs``, ``merge_features``
  and ``merge_preds``; every ``Residual`` owns a ``skip_layer`` and uses it
  only when its channels change.
* BP, bearpaw/pytorch-pose ``pose/models/hourglass.py``: ``HourglassNet`` with
  ``conv1``/``bn1``, ``layer1..3`` (Bottleneck, expansion 2, ``downsample.0``),
  ``hg[i].hg[level][branch][block]``, ``res``, ``fc`` (conv, BN, ReLU),
  ``score``, ``fc_``, ``score_``.

A forward pass takes a ``Params`` object: a fresh one creates each tensor the
first time the forward pass asks for it (random weights, randomised BatchNorm
statistics), which yields a state dict in the project's exact key layout; the
same forward pass with that state dict is the reference output.

``write_torch_checkpoint`` writes what ``torch.save`` writes (zip format of
torch >= 1.6, or the legacy format of torch 1.5), without torch.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

BN_EPSILON = 1e-5  # nn.BatchNorm2d's default


class Params:
    """A state dict that creates missing tensors on first use."""

    def __init__(self, state=None, seed=0):
        self.state = collections.OrderedDict() if state is None else state
        self.rng = np.random.default_rng(seed)

    def conv(self, name, out_channels, in_channels, kernel_size):
        if f"{name}.weight" not in self.state:
            fan_in = in_channels * kernel_size * kernel_size
            shape = (out_channels, in_channels, kernel_size, kernel_size)
            self.state[f"{name}.weight"] = self.rng.normal(0, 1 / np.sqrt(fan_in), shape).astype(np.float32)
            self.state[f"{name}.bias"] = self.rng.normal(0, 0.1, out_channels).astype(np.float32)
        return self.state[f"{name}.weight"], self.state[f"{name}.bias"]

    def bn(self, name, channels):
        if f"{name}.weight" not in self.state:
            u = lambda lo, hi: self.rng.uniform(lo, hi, channels).astype(np.float32)  # noqa: E731
            self.state[f"{name}.weight"] = u(0.5, 1.5)
            self.state[f"{name}.bias"] = u(-0.2, 0.2)
            self.state[f"{name}.running_mean"] = u(-0.3, 0.3)
            self.state[f"{name}.running_var"] = u(0.5, 2.0)
            self.state[f"{name}.num_batches_tracked"] = np.array(1000, np.int64)
        return [self.state[f"{name}.{t}"] for t in ("weight", "bias", "running_mean", "running_var")]


# ----- NumPy layers, NCHW as PyTorch --------------------------------------------


def conv2d(x, weight, bias, stride=1):
    """nn.Conv2d with padding (k - 1) // 2, as both projects use."""
    k = weight.shape[-1]
    pad = (k - 1) // 2
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True) + bias[None, :, None, None]


def batch_norm(x, weight, bias, mean, var):
    scale = weight / np.sqrt(var + BN_EPSILON)
    return (x - mean[None, :, None, None]) * scale[None, :, None, None] + bias[None, :, None, None]


def relu(x):
    return np.maximum(x, 0)


def max_pool(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def upsample_nearest(x):
    return x.repeat(2, axis=2).repeat(2, axis=3)


# ----- PV: princeton-vl/pytorch_stacked_hourglass ---------------------------------


def pv_conv(p, name, x, out_dim, kernel_size=1, stride=1, bn=False, relu_=False):
    # layers.Conv: nn.Conv2d (bias), then optional BatchNorm2d and ReLU.
    x = conv2d(x, *p.conv(f"{name}.conv", out_dim, x.shape[1], kernel_size), stride)
    if bn:
        x = batch_norm(x, *p.bn(f"{name}.bn", out_dim))
    return relu(x) if relu_ else x


def pv_residual(p, name, x, out_dim):
    in_dim, half = x.shape[1], out_dim // 2
    skip = pv_conv(p, f"{name}.skip_layer", x, out_dim)  # built always, used when channels change
    out = relu(batch_norm(x, *p.bn(f"{name}.bn1", in_dim)))
    out = pv_conv(p, f"{name}.conv1", out, half)
    out = relu(batch_norm(out, *p.bn(f"{name}.bn2", half)))
    out = pv_conv(p, f"{name}.conv2", out, half, kernel_size=3)
    out = relu(batch_norm(out, *p.bn(f"{name}.bn3", half)))
    out = pv_conv(p, f"{name}.conv3", out, out_dim)
    return out + (skip if in_dim != out_dim else x)


def pv_hourglass(p, name, x, n, f):
    up1 = pv_residual(p, f"{name}.up1", x, f)
    low1 = pv_residual(p, f"{name}.low1", max_pool(x), f)
    if n > 1:
        low2 = pv_hourglass(p, f"{name}.low2", low1, n - 1, f)
    else:
        low2 = pv_residual(p, f"{name}.low2", low1, f)
    low3 = pv_residual(p, f"{name}.low3", low2, f)
    return up1 + upsample_nearest(low3)


def pv_forward(p, images_nhwc, num_stacks, filters, num_keypoints, depth=4):
    """PoseNet.forward: NHWC images -> list of per-stack NCHW heatmaps."""
    x = images_nhwc.transpose(0, 3, 1, 2)
    x = pv_conv(p, "pre.0", x, 64, kernel_size=7, stride=2, bn=True, relu_=True)
    x = pv_residual(p, "pre.1", x, 128)
    x = max_pool(x)
    x = pv_residual(p, "pre.3", x, 128)
    x = pv_residual(p, "pre.4", x, filters)
    outputs = []
    for i in range(num_stacks):
        hg = pv_hourglass(p, f"hgs.{i}.0", x, depth, filters)
        feature = pv_residual(p, f"features.{i}.0", hg, filters)
        feature = pv_conv(p, f"features.{i}.1", feature, filters, bn=True, relu_=True)
        preds = pv_conv(p, f"outs.{i}", feature, num_keypoints)
        outputs.append(preds)
        if i < num_stacks - 1:
            x = x + pv_conv(p, f"merge_preds.{i}.conv", preds, filters)
            x = x + pv_conv(p, f"merge_features.{i}.conv", feature, filters)
    return outputs


# ----- BP: bearpaw/pytorch-pose ------------------------------------------------


def bp_bottleneck(p, name, x, planes):
    """Bottleneck (expansion 2): BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1, plus downsample."""
    in_dim, out_dim = x.shape[1], planes * 2
    out = relu(batch_norm(x, *p.bn(f"{name}.bn1", in_dim)))
    out = conv2d(out, *p.conv(f"{name}.conv1", planes, in_dim, 1))
    out = relu(batch_norm(out, *p.bn(f"{name}.bn2", planes)))
    out = conv2d(out, *p.conv(f"{name}.conv2", planes, planes, 3))
    out = relu(batch_norm(out, *p.bn(f"{name}.bn3", planes)))
    out = conv2d(out, *p.conv(f"{name}.conv3", out_dim, planes, 1))
    residual = x if in_dim == out_dim else conv2d(x, *p.conv(f"{name}.downsample.0", out_dim, in_dim, 1))
    return out + residual


def bp_residuals(p, name, x, planes, num_blocks):
    for j in range(num_blocks):
        x = bp_bottleneck(p, f"{name}.{j}", x, planes)
    return x


def bp_hourglass(p, name, n, x, planes, num_blocks):
    """Hourglass._hour_glass_forward(n, x) with hg[n-1][0..3]."""
    level = f"{name}.hg.{n - 1}"
    up1 = bp_residuals(p, f"{level}.0", x, planes, num_blocks)
    low1 = bp_residuals(p, f"{level}.1", max_pool(x), planes, num_blocks)
    if n > 1:
        low2 = bp_hourglass(p, name, n - 1, low1, planes, num_blocks)
    else:
        low2 = bp_residuals(p, f"{level}.3", low1, planes, num_blocks)
    low3 = bp_residuals(p, f"{level}.2", low2, planes, num_blocks)
    return up1 + upsample_nearest(low3)


def bp_forward(p, images_nchw, num_stacks, num_keypoints, num_feats=128, num_blocks=1, depth=4):
    """HourglassNet.forward: NCHW images -> list of per-stack NCHW heatmaps."""
    ch = num_feats * 2
    x = conv2d(images_nchw, *p.conv("conv1", 64, 3, 7), stride=2)
    x = relu(batch_norm(x, *p.bn("bn1", 64)))
    # _make_residual(block, self.inplanes, 1) twice, then num_feats: the second
    # call already sees inplanes = 128, so the stem is 64->128, 128->256, 256->256.
    x = bp_bottleneck(p, "layer1.0", x, 64)
    x = max_pool(x)
    x = bp_bottleneck(p, "layer2.0", x, 128)
    x = bp_bottleneck(p, "layer3.0", x, num_feats)
    outputs = []
    for i in range(num_stacks):
        y = bp_hourglass(p, f"hg.{i}", depth, x, num_feats, num_blocks)
        y = bp_residuals(p, f"res.{i}", y, num_feats, num_blocks)
        y = conv2d(y, *p.conv(f"fc.{i}.0", ch, ch, 1))
        y = relu(batch_norm(y, *p.bn(f"fc.{i}.1", ch)))
        score = conv2d(y, *p.conv(f"score.{i}", num_keypoints, ch, 1))
        outputs.append(score)
        if i < num_stacks - 1:
            x = (
                x
                + conv2d(y, *p.conv(f"fc_.{i}", ch, ch, 1))
                + conv2d(score, *p.conv(f"score_.{i}", ch, num_keypoints, 1))
            )
    return outputs


def random_state_dict(source, seed=0, **architecture):
    """A state dict of ``source`` ("pv" or "bp") with random weights, in that project's key layout."""
    p = Params(seed=seed)
    size = 4 * 2 ** architecture.get("depth", 4)
    if source == "pv":
        pv_forward(p, np.zeros((1, size, size, 3), np.float32), **architecture)
    else:
        bp_forward(p, np.zeros((1, 3, size, size), np.float32), **architecture)
    return p.state


# ----- torch.save's file formats -------------------------------------------------

_STORAGE_NAMES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.int64): "LongStorage",
}


class _Global:
    """A module attribute named in the pickle (written as a GLOBAL opcode, never imported)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle requires reduce functions to be callable
        raise TypeError("only a name")


class _StorageRef:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _TorchPickler(pickle._Pickler):
    """Pickles NumPy arrays the way torch.save pickles tensors."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file, legacy):
        super().__init__(file, protocol=2)
        self.legacy = legacy
        self.storages = []
        self.dispatch_table = {np.ndarray: self._reduce_array}

    def _save_global_name(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[_Global] = _save_global_name

    def _reduce_array(self, array):
        array = np.ascontiguousarray(array)
        ref = _StorageRef(str(len(self.storages)), array)
        self.storages.append(ref)
        strides = tuple(s // array.itemsize for s in array.strides)
        rebuild = _Global("torch._utils", "_rebuild_tensor_v2")
        return rebuild, (ref, 0, array.shape, strides, False, collections.OrderedDict())

    def persistent_id(self, obj):
        if not isinstance(obj, _StorageRef):
            return None
        storage_type = _Global("torch", _STORAGE_NAMES[obj.array.dtype])
        pid = ("storage", storage_type, obj.key, "cpu", obj.array.size)
        return pid + (None,) if self.legacy else pid


def _plain_pickle(value) -> bytes:
    return pickle.dumps(value, protocol=2)


def write_torch_checkpoint(path, obj, legacy=False):
    """Writes ``obj`` (dicts, lists, numbers, strings and NumPy arrays as tensors) as torch.save does."""
    buffer = io.BytesIO()
    pickler = _TorchPickler(buffer, legacy)
    pickler.dump(obj)
    if legacy:
        with open(path, "wb") as f:
            for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
                f.write(_plain_pickle(header))
            f.write(buffer.getvalue())
            f.write(_plain_pickle([ref.key for ref in pickler.storages]))
            for ref in pickler.storages:
                f.write(
                    struct.pack("<q", ref.array.size)
                    + ref.array.astype(ref.array.dtype.newbyteorder("<")).tobytes()
                )
        return
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for ref in pickler.storages:
            archive.writestr(f"archive/data/{ref.key}", ref.array.tobytes())
        archive.writestr("archive/version", "3\n")
