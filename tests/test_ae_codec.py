"""The Associative Embedding codec: encode and decode share one convention (input pixels = heatmap x stride)."""

import numpy as np
import pytest

from tf_hourglass.data.ae_codec import AssociativeEmbeddingCodec
from tf_hourglass.data.grouping import TEST_SETTINGS


def test_people_encoded_then_decoded_come_back_within_a_quarter_heatmap_pixel():
    codec = AssociativeEmbeddingCodec(input_size=(256, 256), heatmap_size=(64, 64), num_keypoints=17)
    assert codec.stride == 4 and codec.target_sigma == 1.0  # the official side / 64
    rng = np.random.default_rng(0)
    # Two people on separate halves, every joint visible, at cell centres (official: cell (i + 0.5) * stride).
    cells = [rng.integers(2, 30, (17, 2)), rng.integers(34, 62, (17, 2))]
    people = np.stack([np.concatenate([(c + 0.5) * 4, np.ones((17, 1))], axis=1) for c in cells])
    targets = codec.encode(people)
    heatmaps = targets["heatmaps"].numpy()
    assert heatmaps.shape == (64, 64, 17) and heatmaps.max() == pytest.approx(1.0)
    refs = targets["keypoint_refs"].numpy()
    assert refs.shape == (30, 17, 2) and refs[:2, :, 1].all() and not refs[2:].any()
    # A perfect tag map: each person's cells carry its tag.
    tags = np.zeros((64, 64, 17), np.float32)
    for person, tag in ((0, -2.0), (1, 2.0)):
        for k, (x, y) in enumerate(cells[person]):
            tags[max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3, k] = tag
    (found,), (scores,) = codec.decode(heatmaps[None], tags[None])
    assert len(found) == 2 and scores.shape == (2,)
    decoded = codec.to_input_pixels(found[..., :2])
    order = np.argsort(decoded[:, 0, 0])
    np.testing.assert_allclose(decoded[order], people[..., :2], atol=0.25 * 4 + 1e-6)


def test_codec_checks_its_arguments_and_decodes_with_the_official_test_settings():
    assert dict(AssociativeEmbeddingCodec().grouping_options) == TEST_SETTINGS
    with pytest.raises(ValueError, match="integer multiple"):
        AssociativeEmbeddingCodec(input_size=(256, 256), heatmap_size=(60, 64))
    with pytest.raises(ValueError, match="tag_dim must be >= 1"):
        AssociativeEmbeddingCodec(tag_dim=0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        AssociativeEmbeddingCodec(sigma=-1.0)


def test_a_larger_target_peak_is_divided_out_before_grouping():
    codec = AssociativeEmbeddingCodec(
        input_size=(64, 64), heatmap_size=(16, 16), num_keypoints=2, sigma=1.0, peak=10.0
    )
    people = np.array([[[10.0, 10.0, 1.0], [30.0, 30.0, 1.0]]])  # cells (2, 2) and (7, 7)
    heatmaps = codec.encode(people)["heatmaps"].numpy()
    assert heatmaps.max() == pytest.approx(10.0)
    np.testing.assert_allclose(codec.unit_heatmaps(heatmaps), heatmaps / 10.0)
    assert AssociativeEmbeddingCodec().unit_heatmaps(heatmaps) is heatmaps
    with pytest.raises(ValueError, match="peak must be positive"):
        AssociativeEmbeddingCodec(peak=0.0)
