"""Training targets of Associative Embedding (Newell, Huang, Deng, NeurIPS 2017), as the official code.

Three targets per image, as princeton-vl/pose-ae-train's ``data/coco_pose/dp.py``
and ``ref.py`` build them: detection heatmaps of all people, the keypoint
references the tag loss reads, and the loss mask that hides crowds.

Coordinates. Keypoints are ``(P, K, 3)`` arrays of ``(x, y, visibility)`` in
heatmap pixels, where heatmap pixel ``i`` covers ``[i, i + 1)``: a joint's cell
is ``(int(x), int(y))``, truncated toward zero as the official code does (so a
joint in ``(-1, 0)`` still lands in cell 0). This is not ``HeatmapCodec``'s
convention, where pixel centres are at integers and input pixel ``u`` is heatmap
``h = (u + 0.5) / stride - 0.5``; the cell holding ``h`` is ``round(h)``, so
pass ``h + 0.5`` to get the codec's cell. The official pipeline passes
``u / stride`` (its affine maps input pixel centres to heatmap coordinates
without the half-pixel shift), which is ``h + 0.5 - 0.5 / stride``: the same
cell unless the joint lies within half an input pixel of a cell edge. The
targets here follow the official code exactly.

Heatmaps ``(H, W, K)``: each joint with visibility > 0 whose cell is inside the
map gets the official window, a Gaussian of ``sigma`` (official: heatmap side
/ 64) centred ``3 sigma + 1`` samples into a ``ceil(6 sigma + 3)``-sample
window that starts at ``int(cell - 3 sigma - 1)`` and stops before
``int(cell + 3 sigma + 2)``. When 3 sigma is an integer (sigma 2 at 128 x 128)
the peak is 1 at the cell; otherwise the truncations move it off the cell by
less than a pixel (up/left where the window starts inside the map, down/right
where it starts before it), as in the official code. People are merged by
maximum.

Keypoint references ``(max_people, K, 2)`` int32: row ``p`` is person ``p``;
its joints that are visible and inside the map are packed first, in joint
order, as ``(index, 1)``, the rest of the row is ``(0, 0)``. ``index`` points
into a tag map laid out NHWC, ``(H, W, K)`` flattened:
``index = (y * W + x) * K + k`` (the official code indexes an NCHW map,
``k * H * W + y * W + x``). With a tag dimension D the tag map is
``(H, W, K, D)`` and ``index`` selects a row of its ``(H * W * K, D)``
reshape. People after the first ``max_people`` are dropped from the references
(the official code fails there), but still drawn in the heatmaps.

Loss mask ``(height, width)`` float32 at image resolution: 0 on the segments of
crowd annotations (``iscrowd``) and, by default, of people annotated without
keypoints (``num_keypoints == 0``), 1 elsewhere. The official code masks the
crowds only (``mask_people_without_keypoints=False`` does the same). The input
pipeline warps it to the heatmap as it warps the image.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

MAX_PEOPLE = 30


def official_sigma(heatmap_size) -> float:
    """The official Gaussian standard deviation: the heatmap side / 64 (2 at 128 x 128)."""
    return max(int(side) for side in heatmap_size) / 64


def _joint_cells(keypoints, heatmap_size):
    """(P, K) integer cells (truncated toward zero) and whether each joint is drawn/referenced."""
    height, width = heatmap_size
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    # tf.cast truncates toward zero, as Python's int().
    x = tf.cast(keypoints[..., 0], tf.int32)
    y = tf.cast(keypoints[..., 1], tf.int32)
    valid = (keypoints[..., 2] > 0) & (x >= 0) & (y >= 0) & (x < width) & (y < height)
    return x, y, valid


def _check_keypoints(keypoints):
    keypoints = tf.convert_to_tensor(keypoints, tf.float32)
    if keypoints.shape.rank != 3 or keypoints.shape[-1] != 3:
        raise ValueError(
            f"keypoints must have shape (people, K, 3). Received shape: {tuple(keypoints.shape)}"
        )
    return keypoints


def _window_pixels(cells, size, sigma):
    """(P, K, L) pixels of the official L-sample window along one axis, clipped into the map, and
    whether each is drawn (inside the map and before the window's official end)."""
    reach = 3 * sigma + 1
    cells = tf.cast(cells, tf.float32)[..., None]
    start = tf.cast(cells - reach, tf.int32)  # truncation toward zero, as the official int()
    stop = tf.cast(cells + reach + 1, tf.int32)
    pixels = start + tf.range(math.ceil(6 * sigma + 3), dtype=tf.int32)
    drawn = (pixels >= 0) & (pixels < size) & (pixels < stop)
    return tf.clip_by_value(pixels, 0, size - 1), drawn


def multi_person_heatmaps(keypoints, heatmap_size, sigma: float | None = None) -> tf.Tensor:
    """(H, W, K) float32 detection targets of all people, merged by maximum (official GenerateHeatmap).

    Args:
        keypoints: (P, K, 3) ``(x, y, visibility)`` in heatmap pixels (module docstring); P may be 0.
        heatmap_size: (H, W).
        sigma: Gaussian standard deviation in heatmap pixels; default ``official_sigma(heatmap_size)``.
    """
    keypoints = _check_keypoints(keypoints)
    height, width = (int(side) for side in heatmap_size)
    num_keypoints = keypoints.shape[1]
    sigma = official_sigma(heatmap_size) if sigma is None else float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive. Received sigma={sigma}")
    x, y, valid = _joint_cells(keypoints, (height, width))
    # The window is the same for every joint: sample i is at distance i - (3 sigma + 1) from the centre.
    distance = tf.range(math.ceil(6 * sigma + 3), dtype=tf.float32) - (3 * sigma + 1)
    profile = tf.exp(-tf.square(distance) / (2 * sigma**2))
    window = profile[:, None] * profile[None, :]  # (L, L): exp(-(dy^2 + dx^2) / 2 sigma^2) as two factors
    rows, rows_drawn = _window_pixels(y, height, sigma)  # (P, K, L)
    columns, columns_drawn = _window_pixels(x, width, sigma)
    drawn = valid[..., None, None] & rows_drawn[..., :, None] & columns_drawn[..., None, :]  # (P, K, L, L)
    values = tf.where(drawn, window, 0.0)
    # Scatter every window sample with a maximum; undrawn samples write 0 to a clipped pixel, a no-op.
    shape = tf.shape(drawn)
    indices = tf.stack(
        [
            tf.broadcast_to(rows[..., :, None], shape),
            tf.broadcast_to(columns[..., None, :], shape),
            tf.broadcast_to(tf.range(num_keypoints, dtype=tf.int32)[:, None, None], shape),
        ],
        axis=-1,
    )
    heatmaps = tf.zeros((height, width, num_keypoints), tf.float32)
    return tf.tensor_scatter_nd_max(heatmaps, tf.reshape(indices, (-1, 3)), tf.reshape(values, (-1,)))


def keypoint_refs(keypoints, heatmap_size, max_people: int = MAX_PEOPLE) -> tf.Tensor:
    """(max_people, K, 2) int32 ``(index, visible)`` references of the tag loss (official KeypointsRef).

    ``index = (y * W + x) * K + k`` into an NHWC ``(H, W, K)`` tag map; a row's
    referenced joints come first (module docstring).
    """
    keypoints = _check_keypoints(keypoints)
    if not (isinstance(max_people, int) and max_people > 0):
        raise ValueError(f"max_people must be a positive integer. Received max_people={max_people!r}")
    height, width = (int(side) for side in heatmap_size)
    num_keypoints = keypoints.shape[1]
    x, y, valid = _joint_cells(keypoints[:max_people], (height, width))
    index = (y * width + x) * num_keypoints + tf.range(num_keypoints, dtype=tf.int32)
    refs = tf.stack([tf.where(valid, index, 0), tf.cast(valid, tf.int32)], axis=-1)
    # Referenced joints first, in joint order (a stable sort on "not referenced").
    order = tf.argsort(tf.cast(~valid, tf.int32), axis=1, stable=True)
    refs = tf.gather(refs, order, batch_dims=1)
    refs = tf.pad(refs, [[0, max_people - tf.shape(refs)[0]], [0, 0], [0, 0]])
    return tf.ensure_shape(refs, (max_people, num_keypoints, 2))


def coco_loss_mask(annotations, image_size, mask_people_without_keypoints: bool = True) -> np.ndarray:
    """(height, width) float32 loss mask of one COCO image: 0 on crowds (and people without keypoints).

    Args:
        annotations: the image's COCO annotation dicts (``segmentation`` as
            polygons, uncompressed or compressed RLE; ``iscrowd``; ``num_keypoints``).
        image_size: (height, width) of the image.
        mask_people_without_keypoints: also zero people with ``num_keypoints == 0``
            (the official code masks crowds only).
    """
    try:
        from pycocotools import mask as coco_mask
    except ImportError as error:
        raise ImportError("coco_loss_mask needs pycocotools: pip install 'tf_hourglass[coco]'.") from error
    height, width = (int(side) for side in image_size)
    masked = np.zeros((height, width), bool)
    for annotation in annotations:
        hidden = annotation.get("iscrowd", 0) or (
            mask_people_without_keypoints and annotation.get("num_keypoints", 0) == 0
        )
        segmentation = annotation.get("segmentation")
        if not hidden or not segmentation:
            continue
        if isinstance(segmentation, list):  # polygons: one RLE per polygon, merged
            rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
        elif isinstance(segmentation.get("counts"), list):  # uncompressed RLE
            rle = coco_mask.frPyObjects(segmentation, height, width)
        else:
            rle = segmentation
        masked |= coco_mask.decode(rle).astype(bool)
    return (~masked).astype(np.float32)
