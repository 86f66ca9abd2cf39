"""Heatmap codec: the one object that turns keypoints into target heatmaps and back.

Training targets and inference decoding both go through ``HeatmapCodec``, so
their conventions cannot drift apart.

Coordinates. Keypoints are in input pixels (the network's input image), pixel
centres at integer coordinates. The heatmap is ``stride`` times smaller and
covers the same area, so input pixel ``u`` and heatmap pixel ``h`` are related
by ``h = (u + 0.5) / stride - 0.5`` (pixel *edges* line up, not centres).

Targets. Each joint gets a Gaussian of standard deviation ``sigma`` heatmap
pixels centred at its sub-pixel position, scaled to ``peak``. Its weight is 1
when the joint has ground truth and lies inside the heatmap, else 0 (with an
all-zero target), so it adds nothing to ``HeatmapLoss``. With
``background_channel`` (Convolutional Pose Machines) one more map follows the
K joints: ``peak`` minus the largest joint target at each pixel, weight 1.
It is a training target only; decoding takes the K joint maps.

Decoding. Per joint: the arg-max pixel, moved a quarter pixel toward the higher
neighbour in x and in y (the standard refinement of the original code), or the
DARK refinement (Zhang et al., CVPR 2020): a second-order Taylor expansion of
the log of the Gaussian-smoothed heatmap at the maximum. The score is the
heatmap maximum divided by ``peak``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

DECODE_METHODS = ("argmax", "quarter", "dark")


@dataclasses.dataclass(frozen=True)
class HeatmapCodec:
    """Encodes keypoints as Gaussian heatmaps and decodes heatmaps to keypoints.

    Args:
        input_size: (height, width) of the network input in pixels.
        heatmap_size: (height, width) of the heatmaps; the stride (input /
            heatmap) must be the same integer along both axes.
        sigma: Gaussian standard deviation in heatmap pixels (1 in the paper
            at 64x64).
        peak: value of the target at an exact joint position (1 in the paper;
            a larger peak helps a small model leave the all-zero plateau).
        decode_method: "quarter" (default), "dark" or "argmax".
        background_channel: ``encode`` appends a background map (CPM).
    """

    input_size: tuple[int, int] = (256, 256)
    heatmap_size: tuple[int, int] = (64, 64)
    sigma: float = 1.0
    peak: float = 1.0
    decode_method: str = "quarter"
    background_channel: bool = False

    def __post_init__(self):
        object.__setattr__(self, "input_size", tuple(int(s) for s in self.input_size))
        object.__setattr__(self, "heatmap_size", tuple(int(s) for s in self.heatmap_size))
        strides = {i / h for i, h in zip(self.input_size, self.heatmap_size, strict=True)}
        if len(strides) != 1 or not float(next(iter(strides))).is_integer():
            raise ValueError(
                "input_size must be the same integer multiple of heatmap_size along both axes. "
                f"Received input_size={self.input_size}, heatmap_size={self.heatmap_size}"
            )
        if not self.sigma > 0:
            raise ValueError(f"sigma must be positive. Received sigma={self.sigma}")
        if not self.peak > 0:
            raise ValueError(f"peak must be positive. Received peak={self.peak}")
        if self.decode_method not in DECODE_METHODS:
            raise ValueError(
                f"decode_method must be one of {DECODE_METHODS}. Received {self.decode_method!r}"
            )

    @property
    def stride(self) -> int:
        return self.input_size[0] // self.heatmap_size[0]

    # ----- coordinates -----------------------------------------------------

    def input_to_heatmap(self, coords):
        return (coords + 0.5) / self.stride - 0.5

    def heatmap_to_input(self, coords):
        return (coords + 0.5) * self.stride - 0.5

    # ----- encode ----------------------------------------------------------

    def encode(self, keypoints, has_gt):
        """Target heatmaps and joint weights.

        Args:
            keypoints: (..., K, 2) float, (x, y) in input pixels.
            has_gt: (..., K) bool, joint is annotated.

        Returns:
            heatmaps (..., Hh, Wh, K) float32 and weights (..., K) float32;
            K+1 of each with ``background_channel``.
        """
        keypoints = tf.convert_to_tensor(keypoints, tf.float32)
        has_gt = tf.convert_to_tensor(has_gt, tf.bool)
        height, width = self.heatmap_size
        centres = self.input_to_heatmap(keypoints)
        cx, cy = centres[..., 0], centres[..., 1]
        inside = (cx >= -0.5) & (cx < width - 0.5) & (cy >= -0.5) & (cy < height - 0.5)
        usable = has_gt & inside & tf.math.is_finite(cx) & tf.math.is_finite(cy)
        cx = tf.where(usable, cx, 0.0)
        cy = tf.where(usable, cy, 0.0)
        weights = tf.cast(usable, tf.float32)
        # A Gaussian is separable: outer product of a row and a column profile.
        xs = tf.range(width, dtype=tf.float32)
        ys = tf.range(height, dtype=tf.float32)
        gx = tf.exp(-tf.square(xs - cx[..., None]) / (2.0 * self.sigma**2))  # (..., K, Wh)
        gy = tf.exp(-tf.square(ys - cy[..., None]) / (2.0 * self.sigma**2))  # (..., K, Hh)
        gy = gy * (self.peak * weights)[..., None]
        heatmaps = gy[..., :, None] * gx[..., None, :]  # (..., K, Hh, Wh)
        rank = len(heatmaps.shape)
        perm = list(range(rank - 3)) + [rank - 2, rank - 1, rank - 3]
        heatmaps = tf.transpose(heatmaps, perm)
        if self.background_channel:
            background = tf.maximum(self.peak - tf.reduce_max(heatmaps, axis=-1, keepdims=True), 0.0)
            heatmaps = tf.concat([heatmaps, background], axis=-1)
            weights = tf.concat([weights, tf.ones_like(weights[..., :1])], axis=-1)
        return heatmaps, weights

    # ----- decode ----------------------------------------------------------

    def decode(self, heatmaps, method=None):
        """Keypoints in input pixels and per-joint scores.

        Args:
            heatmaps: (N, Hh, Wh, K) float, the K joint maps (without a
                background map: ``keypoint_heatmaps`` drops it).
            method: overrides ``decode_method``.

        Returns:
            keypoints (N, K, 2) float32 in input pixels, scores (N, K) float32.
        """
        coords, maxvals = decode_heatmaps(heatmaps, method or self.decode_method, self.sigma)
        return self.heatmap_to_input(coords), maxvals / self.peak


def decode_heatmaps(heatmaps, method="quarter", sigma=1.0):
    """Sub-pixel peak of each heatmap channel, in TensorFlow ops.

    Returns coords (N, K, 2) in heatmap pixels and the maximum values (N, K).
    """
    if method not in DECODE_METHODS:
        raise ValueError(f"method must be one of {DECODE_METHODS}. Received {method!r}")
    heatmaps = tf.convert_to_tensor(heatmaps, tf.float32)
    heatmaps = tf.transpose(heatmaps, [0, 3, 1, 2])  # (N, K, H, W)
    shape = tf.shape(heatmaps)
    height, width = shape[2], shape[3]
    flat = tf.reshape(heatmaps, [shape[0], shape[1], -1])
    index = tf.argmax(flat, axis=-1, output_type=tf.int32)
    maxvals = tf.reduce_max(flat, axis=-1)
    px = index % width
    py = index // width
    coords = tf.cast(tf.stack([px, py], axis=-1), tf.float32)
    if method == "quarter":
        coords += 0.25 * _neighbour_signs(heatmaps, px, py, height, width)
    elif method == "dark":
        coords += _dark_offsets(heatmaps, px, py, sigma)
    return coords, maxvals


def _gather_pixel(heatmaps, px, py):
    """heatmaps[n, k, py, px] for every n, k (indices clipped to the map)."""
    shape = tf.shape(heatmaps)
    px = tf.clip_by_value(px, 0, shape[3] - 1)
    py = tf.clip_by_value(py, 0, shape[2] - 1)
    return tf.gather_nd(heatmaps, tf.stack([py, px], axis=-1), batch_dims=2)


def _neighbour_signs(heatmaps, px, py, height, width):
    """sign(h[x+1] - h[x-1]) along x and y, 0 on the border (as the original)."""
    dx = _gather_pixel(heatmaps, px + 1, py) - _gather_pixel(heatmaps, px - 1, py)
    dy = _gather_pixel(heatmaps, px, py + 1) - _gather_pixel(heatmaps, px, py - 1)
    inner_x = (px > 0) & (px < width - 1)
    inner_y = (py > 0) & (py < height - 1)
    sx = tf.where(inner_x, tf.sign(dx), 0.0)
    sy = tf.where(inner_y, tf.sign(dy), 0.0)
    return tf.stack([sx, sy], axis=-1)


def _gaussian_kernel(sigma):
    radius = max(1, int(np.ceil(3 * sigma)))
    xs = np.arange(-radius, radius + 1, dtype=np.float32)
    profile = np.exp(-(xs**2) / (2 * sigma**2))
    kernel = np.outer(profile, profile)
    return kernel / kernel.sum()


def _dark_offsets(heatmaps, px, py, sigma):
    """DARK: offset = -H^-1 grad of log(smoothed heatmap) at the arg-max pixel."""
    shape = tf.shape(heatmaps)
    n, k, height, width = shape[0], shape[1], shape[2], shape[3]
    kernel = _gaussian_kernel(sigma)
    # Smooth every channel with the target's Gaussian (modulation step of DARK).
    maps = tf.reshape(heatmaps, [n * k, height, width, 1])
    original_max = tf.reduce_max(maps, axis=[1, 2, 3], keepdims=True)
    smoothed = tf.nn.conv2d(maps, kernel[:, :, None, None], strides=1, padding="SAME")
    smoothed_max = tf.reduce_max(smoothed, axis=[1, 2, 3], keepdims=True)
    smoothed = smoothed * tf.math.divide_no_nan(original_max, smoothed_max)
    logs = tf.math.log(tf.maximum(smoothed, 1e-10))
    logs = tf.reshape(logs, [n, k, height, width])

    def at(dx, dy):
        return _gather_pixel(logs, px + dx, py + dy)

    centre = at(0, 0)
    gx = 0.5 * (at(1, 0) - at(-1, 0))
    gy = 0.5 * (at(0, 1) - at(0, -1))
    gxx = at(1, 0) - 2 * centre + at(-1, 0)
    gyy = at(0, 1) - 2 * centre + at(0, -1)
    gxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    determinant = gxx * gyy - gxy * gxy
    # Newton step; only where the Hessian is negative definite (a real maximum)
    # and the pixel is not on the border, where the neighbours are clipped.
    inner = (px > 0) & (px < width - 1) & (py > 0) & (py < height - 1)
    valid = inner & (determinant > 1e-12) & (gxx < 0)
    safe_det = tf.where(valid, determinant, 1.0)
    offset_x = -(gyy * gx - gxy * gy) / safe_det
    offset_y = -(gxx * gy - gxy * gx) / safe_det
    offsets = tf.stack([offset_x, offset_y], axis=-1)
    # A Taylor step beyond a pixel means the local fit is poor; keep the peak.
    valid = valid & tf.reduce_all(tf.abs(offsets) <= 1.0, axis=-1)
    return tf.where(valid[..., None], offsets, 0.0)
