"""Synthetic Associative Embedding outputs: heatmaps and tag maps of a crowd, in NumPy only.

Used by ``grouping_speed.py`` and to make the official-parser fixture
``tests/data/ae_grouping_official.npz``. Each person has a tag value; each of
its joints is a Gaussian blob (peak drawn from ``peak_range``; a joint whose
peak falls below 0.1 is missed by the parser, as in a real network) whose tag
map holds the person's tag plus noise. Spurious weak maxima and a few strong
false detections (with random tags) give more candidates than people. Layouts
are NHWC without the batch axis: heatmaps (H, W, K), tags (H, W, K, D).
"""

from __future__ import annotations

import numpy as np


def crowd_maps(
    rng,
    size=128,
    num_joints=17,
    num_people=5,
    tag_dim=1,
    tag_spacing=1.0,
    tag_noise=0.15,
    sigma=1.5,
    peak_range=(0.05, 1.0),
    false_detections=3,
    background_peaks=40,
    return_people=False,
):
    """One image's (heatmaps (H, W, K) float32, tags (H, W, K, D) float32).

    People's tags are ``tag_spacing`` apart (in a random order), so spacings
    near 1 make the official cost's rounded distances tie. With
    ``return_people`` also the people as drawn, (P, K, 3) float32: column, row
    (heatmap pixel indices) and the peak of each joint.
    """
    heatmaps = np.zeros((size, size, num_joints), np.float32)
    tags = np.zeros((size, size, num_joints, tag_dim), np.float32)
    person_tags = rng.permutation(num_people)[:, None] * tag_spacing + rng.normal(
        0, 0.05, (num_people, tag_dim)
    )
    radius = max(1, int(np.ceil(2 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    blob = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * sigma**2))
    span = max(4, size // 6)

    def stamp(joint, row, col, peak, tag):
        rows = np.clip(row + offsets, 0, size - 1)
        cols = np.clip(col + offsets, 0, size - 1)
        values = (peak * blob * rng.uniform(0.97, 1.0, blob.shape)).astype(np.float32)
        region = heatmaps[rows[:, None], cols[None, :], joint]
        stronger = values > region
        heatmaps[rows[:, None], cols[None, :], joint] = np.where(stronger, values, region)
        noisy = tag + rng.normal(0, tag_noise, (len(offsets), len(offsets), tag_dim))
        old = tags[rows[:, None], cols[None, :], joint]
        tags[rows[:, None], cols[None, :], joint] = np.where(stronger[..., None], noisy, old)

    people = np.zeros((num_people, num_joints, 3), np.float32)
    for person in range(num_people):
        center = rng.integers(span // 2, size - span // 2, 2)
        for joint in range(num_joints):
            row, col = np.clip(center + rng.integers(-span // 2, span // 2 + 1, 2), 0, size - 1)
            peak = rng.uniform(*peak_range)
            stamp(joint, row, col, peak, person_tags[person])
            people[person, joint] = (col, row, peak)
    for _ in range(false_detections):
        joint = rng.integers(num_joints)
        row, col = rng.integers(0, size, 2)
        stamp(joint, row, col, rng.uniform(0.1, 0.6), rng.normal(0, 3, tag_dim))
    for _ in range(background_peaks):
        joint = rng.integers(num_joints)
        row, col = rng.integers(0, size, 2)
        heatmaps[row, col, joint] = max(heatmaps[row, col, joint], rng.uniform(0.0, 0.09))
    if return_people:
        return heatmaps, tags.astype(np.float32), people
    return heatmaps, tags.astype(np.float32)
