"""Heatmap decoding and coordinate mapping in NumPy: the tests' oracle for ``data/codec.py``.

The package decodes with ``HeatmapCodec`` only; this file states the same rules
in plain NumPy, so the tests can check the codec and the frames against it.

Conventions (shared with ``data/records.py`` and the input pipeline)
--------------------------------------------------------------------

Pixel centres are at integer coordinates in every frame: pixel ``i`` of an
array covers ``[i - 0.5, i + 0.5]``, so an array of ``L`` pixels covers
``[-0.5, L - 0.5]``. Points are (x, y); arrays are indexed [..., y, x, ...].

Three frames, per axis (x shown; y is identical with the height). Sizes are
given as an int or (height, width), like the codec and Keras shapes:

* original image ``x``: the record's 0-based pixels.
* network input ``u`` (``I`` pixels): the square crop of side ``S = 200 * scale``
  centred on ``center = (cx, cy)``. Its continuous extent
  ``[cx - S/2, cx + S/2]`` maps onto the input's extent ``[-0.5, I - 0.5]``::

      u = (x - cx) * I / S + (I - 1) / 2          (forward, used by the pipeline)
      x = cx + (u - (I - 1) / 2) * S / I          (inverse)

* heatmap ``h`` (``Hm`` pixels, ``Hm = I / 4`` for the hourglass): the input's
  extent ``[-0.5, I - 0.5]`` maps onto ``[-0.5, Hm - 0.5]``::

      h = (u + 0.5) * Hm / I - 0.5
      u = (h + 0.5) * I / Hm - 0.5

  Composed: ``x = cx + (h + 0.5 - Hm / 2) * S / Hm`` (the input size cancels).
  Heatmap pixel h covers input pixels 4h .. 4h + 3, as 2x2 max-pooling and
  nearest 2x upsampling map blocks. (A strided "same" convolution's window is
  off-centre by half an input pixel; training absorbs that, as the targets,
  drawn in this frame, define where the peaks go.)

A Gaussian target for a keypoint at heatmap coordinate ``c`` has the value
``exp(-||p - c||^2 / (2 sigma^2))`` at pixel ``p``; its peak pixel is round(c).

Horizontal flip. Mirroring an array of L pixels sends ``i -> L - 1 - i``
(``tf.image.flip_left_right``, ``[:, ::-1]``). Mirroring the input
(``u' = I - 1 - u``) mirrors the heatmap exactly: ``h' = (I - 1 - u + 0.5) *
Hm / I - 0.5 = Hm - 1 - h``, also a plain column reversal. So the heatmap of the
flipped image is brought back with a column reversal and a left/right channel
swap, *without* the one-pixel shift HRNet applies (``shift_heatmap``): HRNet
maps heatmap index h to input ``h * stride`` instead of ``(h + 0.5) * stride -
0.5``, a frame in which the mirror is ``h' = Hm - 1/stride - h``: a column
reversal lands 1 - 1/stride = 0.75 px off, which its 1 px shift approximately
compensates. In the original
image, a mirrored crop equals mirroring about the crop centre, ``x' = 2 cx - x``;
flipping the whole image of width Wimg (``x' = Wimg - 1 - x``) therefore needs
``cx' = Wimg - 1 - cx``.

Sub-pixel refinement
--------------------

* ``argmax``: the peak pixel.
* ``quarter``: move 0.25 px from the peak towards the higher neighbour, per axis
  (Newell et al.'s and HRNet's post-processing). The Torch original works with
  1-based indices and adds 0.5 before its 1-based transform (which subtracts 1),
  i.e. it produces ``q + 0.5 +- 0.25`` in a frame where pixel q spans
  [q, q + 1]; in our pixel-centre frame that is ``q +- 0.25``: no half-pixel term.
  For an exact Gaussian with true offset d = c - round(c) in [-0.5, 0.5], the
  error per axis is |d - 0.25 sign(d)| <= 0.25 (mean 0.125 for uniform d).
* ``dark``: DARK (Zhang et al., CVPR 2020). Smooth the heatmap with a Gaussian
  of the training sigma, take the log (a Gaussian's log is quadratic), and take
  one Newton step from the peak pixel: ``offset = -H^-1 g`` with the gradient g
  and Hessian H from central differences (exact for a quadratic). See
  ``decode_heatmaps`` for the guards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tf_hourglass.data.records import PIXELS_PER_SCALE

DECODE_METHODS = ("argmax", "quarter", "dark")

# Floor before the log in DARK: smoothed heatmaps can be 0 or (from the network)
# negative. 1e-10 is what HRNet-DARK uses; any tiny positive value works, since
# it only matters where the heatmap is essentially empty.
_DARK_LOG_FLOOR = 1e-10
# DARK steps longer than this (px, per axis) come from a quadratic model that
# does not fit; as in the codec, such a step is rejected (the peak pixel stays).
_DARK_MAX_OFFSET = 1.0


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------


def _check_heatmaps(heatmaps) -> np.ndarray:
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must have shape (N, H, W, K); received {heatmaps.shape}.")
    return heatmaps


def _size_wh(size, name) -> np.ndarray:
    """An int or (height, width) pair (Keras/codec order) as a float64 array [w, h].

    Returned in (x, y) order because it scales (x, y) points.
    """
    hw = np.asarray(size, dtype=np.float64).reshape(-1)
    if hw.size == 1:
        hw = np.repeat(hw, 2)
    if hw.size != 2 or not np.all(hw > 0):
        raise ValueError(f"{name} must be a positive int or (height, width); received {size!r}.")
    return hw[::-1].copy()


def _check_points(points, name="coords") -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (N, K, 2); received {points.shape}.")
    return points


def _crop_params(center, scale, n):
    """center (N, 2) and crop side S = 200 * scale (N,), broadcast for (N, K, 2)."""
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    if center.shape != (n, 2):
        raise ValueError(f"center must have shape (N, 2) = ({n}, 2); received {center.shape}.")
    if scale.ndim == 0:
        scale = np.full((n,), float(scale))
    if scale.shape != (n,):
        raise ValueError(f"scale must be a scalar or have shape (N,) = ({n},); received {scale.shape}.")
    side = PIXELS_PER_SCALE * scale
    return center[:, None, :], side[:, None, None]


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Index array p with ``flipped_channels = channels[..., p]`` (pairs swapped)."""
    perm = np.arange(int(num_keypoints))
    for pair in flip_pairs:
        a, b = (int(i) for i in pair)
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise ValueError(
                f"flip_pairs entries must be joint indices in [0, {num_keypoints}); "
                f"received {pair} in {flip_pairs}."
            )
        perm[a], perm[b] = b, a
    return perm


# ----------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------


def gaussian_kernel1d(sigma: float, kernel_size: int | None = None) -> np.ndarray:
    """Normalised 1-D Gaussian taps; default size 2 * ceil(3 sigma) + 1 (odd)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive; received {sigma!r}.")
    if kernel_size is None:
        kernel_size = 2 * math.ceil(3 * sigma) + 1
    if kernel_size < 1 or kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be a positive odd int; received {kernel_size!r}.")
    radius = kernel_size // 2
    taps = np.exp(-(np.arange(-radius, radius + 1, dtype=np.float64) ** 2) / (2 * sigma**2))
    return taps / taps.sum()


def gaussian_blur(heatmaps, sigma: float, kernel_size: int | None = None) -> np.ndarray:
    """Separable Gaussian smoothing of (N, H, W, K) heatmaps, zeros outside.

    Zero padding (as mmpose's DARK blur) treats the area outside the heatmap as
    empty, which is what it is: nothing was predicted there.
    """
    heatmaps = _check_heatmaps(heatmaps).astype(np.float64)
    taps = gaussian_kernel1d(sigma, kernel_size)
    radius = taps.size // 2
    out = heatmaps
    for axis in (1, 2):  # H, then W
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad)
        length = out.shape[axis]
        acc = np.zeros_like(out)
        for i, tap in enumerate(taps):
            acc += tap * np.take(padded, np.arange(i, i + length), axis=axis)
        out = acc
    return out


def decode_heatmaps(
    heatmaps,
    method: str = "quarter",
    dark_sigma: float = 2.0,
    dark_kernel: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint coordinates and scores from heatmaps.

    Args:
        heatmaps: (N, H, W, K) array (channels last, as the model outputs).
        method: ``"argmax"``, ``"quarter"`` or ``"dark"`` (see the module docstring).
        dark_sigma: DARK's smoothing sigma in heatmap pixels; use the sigma of the
            training targets (the paper's choice).
        dark_kernel: DARK's smoothing kernel size (odd); default 2 * ceil(3 sigma) + 1.

    Returns:
        coords: (N, K, 2) float64 (x, y) in heatmap pixels, 0-based pixel centres.
        scores: (N, K) the heatmap maximum (of the unsmoothed heatmap).

    Guards: refinement needs the neighbours, so on the first/last row or column
    the coordinate of that axis stays at the peak pixel (quarter refines x and y
    independently). DARK keeps the peak pixel unless the smoothed log-heatmap's
    Hessian there is negative definite (a genuine maximum: H_xx < 0 and
    det H > 0) and its step is at most 1 px per axis (as the codec); values <= 0 are
    floored before the log. Flat heatmaps decode to their first maximum (pixel (0, 0) if all equal).
    """
    heatmaps = _check_heatmaps(heatmaps)
    if method not in DECODE_METHODS:
        raise ValueError(f"method must be one of {DECODE_METHODS}; received {method!r}.")
    n, h, w, k = heatmaps.shape
    if h == 0 or w == 0:
        raise ValueError(f"heatmaps must be non-empty; received shape {heatmaps.shape}.")
    # (N, K, H, W): one map per row of the flattened view.
    maps = np.moveaxis(np.asarray(heatmaps, dtype=np.float64), 3, 1)
    flat = maps.reshape(n, k, h * w)
    peak = np.argmax(flat, axis=-1)
    scores = np.take_along_axis(flat, peak[..., None], axis=-1)[..., 0]
    py, px = np.divmod(peak, w)
    coords = np.stack([px, py], axis=-1).astype(np.float64)
    if method == "argmax":
        return coords, scores

    n_idx, k_idx = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    inner_x = (px > 0) & (px < w - 1)
    inner_y = (py > 0) & (py < h - 1)

    def sample(values, dy, dx):
        """values[n, k, py + dy, px + dx], indices clamped (masked by the callers)."""
        yy = np.clip(py + dy, 0, h - 1)
        xx = np.clip(px + dx, 0, w - 1)
        return values[n_idx, k_idx, yy, xx]

    if method == "quarter":
        step_x = 0.25 * np.sign(sample(maps, 0, 1) - sample(maps, 0, -1))
        step_y = 0.25 * np.sign(sample(maps, 1, 0) - sample(maps, -1, 0))
        coords[..., 0] += np.where(inner_x, step_x, 0.0)
        coords[..., 1] += np.where(inner_y, step_y, 0.0)
        return coords, scores

    # DARK: Newton step on the log of the smoothed heatmap.
    smoothed = gaussian_blur(heatmaps, dark_sigma, dark_kernel)
    logs = np.log(np.maximum(np.moveaxis(smoothed, 3, 1), _DARK_LOG_FLOOR))
    centre = sample(logs, 0, 0)
    gx = 0.5 * (sample(logs, 0, 1) - sample(logs, 0, -1))
    gy = 0.5 * (sample(logs, 1, 0) - sample(logs, -1, 0))
    hxx = sample(logs, 0, 1) - 2.0 * centre + sample(logs, 0, -1)
    hyy = sample(logs, 1, 0) - 2.0 * centre + sample(logs, -1, 0)
    hxy = 0.25 * (sample(logs, 1, 1) - sample(logs, 1, -1) - sample(logs, -1, 1) + sample(logs, -1, -1))
    det = hxx * hyy - hxy * hxy
    ok = inner_x & inner_y & (hxx < 0) & (det > 1e-12)
    safe_det = np.where(ok, det, 1.0)
    # -H^-1 g with H^-1 = [[hyy, -hxy], [-hxy, hxx]] / det.
    offset_x = -(hyy * gx - hxy * gy) / safe_det
    offset_y = -(hxx * gy - hxy * gx) / safe_det
    offset = np.stack([offset_x, offset_y], axis=-1)
    ok = ok & np.all(np.abs(offset) <= _DARK_MAX_OFFSET, axis=-1)
    coords += np.where(ok[..., None], offset, 0.0)
    return coords, scores


# ----------------------------------------------------------------------------
# Flip test
# ----------------------------------------------------------------------------


def flip_back(heatmaps_of_flipped_image, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Heatmaps of a horizontally flipped input, brought back to the original.

    Reverses the columns (``h -> W - 1 - h``, exact in our frame, see the module
    docstring) and swaps left/right channels. Applying it twice is the identity.

    Args:
        heatmaps_of_flipped_image: (N, H, W, K).
        flip_pairs: (left, right) channel pairs.
    """
    heatmaps = _check_heatmaps(heatmaps_of_flipped_image)
    perm = flip_permutation(heatmaps.shape[-1], flip_pairs)
    return heatmaps[:, :, ::-1, :][..., perm]


def average_flip(
    heatmaps,
    flipped_heatmaps,
    flip_pairs: Sequence[Sequence[int]],
    shift: int = 0,
) -> np.ndarray:
    """Flip-test average: (heatmaps + flip_back(flipped_heatmaps)) / 2.

    Args:
        heatmaps: (N, H, W, K) of the original input.
        flipped_heatmaps: (N, H, W, K) of the horizontally flipped input.
        flip_pairs: (left, right) channel pairs.
        shift: columns to move the flipped-back heatmaps towards +x before
            averaging. Keep 0 with our frame (see the module docstring); 1
            reproduces HRNet's ``shift_heatmap`` for models trained in its frame
            (the vacated columns keep their values, as there).
    """
    heatmaps = _check_heatmaps(heatmaps)
    flipped_heatmaps = _check_heatmaps(flipped_heatmaps)
    if flipped_heatmaps.shape != heatmaps.shape:
        raise ValueError(
            f"flipped_heatmaps must have the shape of heatmaps {heatmaps.shape}; "
            f"received {flipped_heatmaps.shape}."
        )
    back = flip_back(flipped_heatmaps, flip_pairs)
    shift = int(shift)
    width = heatmaps.shape[2]
    if abs(shift) >= max(width, 1):
        raise ValueError(f"|shift| must be smaller than the width {width}; received {shift}.")
    if shift > 0:
        back = back.copy()
        back[:, :, shift:] = back[:, :, :-shift].copy()
    elif shift < 0:
        back = back.copy()
        back[:, :, :shift] = back[:, :, -shift:].copy()
    return 0.5 * (heatmaps + back)


# ----------------------------------------------------------------------------
# Coordinate frames
# ----------------------------------------------------------------------------


def image_to_input_coords(points, center, scale, input_size) -> np.ndarray:
    """Original-image pixels -> network-input pixels: u = (x - c) * I / S + (I - 1) / 2.

    Args:
        points: (N, K, 2) (x, y) in original-image pixels.
        center: (N, 2) crop centres; scale: (N,) or scalar, crop side S = 200 * scale.
        input_size: int or (height, width) of the network input, I.
    """
    points = _check_points(points, "points")
    c, side = _crop_params(center, scale, points.shape[0])
    size = _size_wh(input_size, "input_size")
    return (points - c) * size / side + (size - 1.0) / 2.0


def input_to_image_coords(points, center, scale, input_size) -> np.ndarray:
    """Network-input pixels -> original-image pixels: x = c + (u - (I - 1) / 2) * S / I."""
    points = _check_points(points, "points")
    c, side = _crop_params(center, scale, points.shape[0])
    size = _size_wh(input_size, "input_size")
    return c + (points - (size - 1.0) / 2.0) * side / size


def heatmap_to_input_coords(points, heatmap_size, input_size) -> np.ndarray:
    """Heatmap pixels -> input pixels: u = (h + 0.5) * I / Hm - 0.5."""
    points = _check_points(points, "points")
    ratio = _size_wh(input_size, "input_size") / _size_wh(heatmap_size, "heatmap_size")
    return (points + 0.5) * ratio - 0.5


def input_to_heatmap_coords(points, heatmap_size, input_size) -> np.ndarray:
    """Input pixels -> heatmap pixels: h = (u + 0.5) * Hm / I - 0.5."""
    points = _check_points(points, "points")
    ratio = _size_wh(heatmap_size, "heatmap_size") / _size_wh(input_size, "input_size")
    return (points + 0.5) * ratio - 0.5


def heatmap_to_image_coords(coords, center, scale, heatmap_size, input_size) -> np.ndarray:
    """Decoded heatmap coordinates -> original-image pixels (the inverse crop).

    Args:
        coords: (N, K, 2) (x, y) in heatmap pixels (``decode_heatmaps`` output).
        center: (N, 2) crop centres in original pixels; scale: (N,) or scalar.
        heatmap_size: int or (height, width) of the heatmap, Hm.
        input_size: int or (height, width) of the network input, I.

    Returns:
        (N, K, 2) float64 original-image pixels (0-based pixel centres):
        ``x = cx + (h + 0.5 - Hm / 2) * S / Hm``.
    """
    return input_to_image_coords(
        heatmap_to_input_coords(coords, heatmap_size, input_size), center, scale, input_size
    )


def image_to_heatmap_coords(points, center, scale, heatmap_size, input_size) -> np.ndarray:
    """Original-image pixels -> heatmap pixels (where the training target peaks)."""
    return input_to_heatmap_coords(
        image_to_input_coords(points, center, scale, input_size), heatmap_size, input_size
    )
