"""Bottom-up input pipeline: COCO whole-image records, augmentation moving image and keypoints together,
flip swaps, references into the heatmaps, loss mask warped, and an AE model fitting on it."""

import json

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.multi_person_pipeline import (
    MULTI_PERSON_AUGMENT,
    MultiPersonSource,
    make_multi_person_dataset,
)
from tf_hourglass.data.multi_person_targets import coco_loss_mask
from tf_hourglass.data.readers import read_coco_images
from tf_hourglass.data.records import MultiPersonRecord
from tf_hourglass.data.synthetic.scenes import SyntheticScenes

COCO = keypoint_specs.COCO
LEFT_WRIST, RIGHT_WRIST = 9, 10


@pytest.fixture(scope="module")
def coco_sample(shared_data):
    annotations = shared_data / "coco" / "person_keypoints_sample.json"
    spec, records = read_coco_images(str(annotations), str(shared_data / "coco" / "images"))
    return json.loads(annotations.read_text()), spec, records


def test_coco_images_hold_all_their_people_and_ignore_the_rest(coco_sample):
    data, spec, records = coco_sample
    assert spec is COCO
    assert [r.image_id for r in records] == [785, 40083, 196141, 197388]
    assert [r.num_people for r in records] == [1, 2, 4, 5]  # 12 people with keypoints
    assert [len(r.ignore_segmentations) for r in records] == [0, 1, 1, 0]  # 2 without keypoints
    assert records[1].image_size == (333, 500) and records[1].image_path.endswith("000000040083.jpg")
    by_image = {}
    for annotation in data["annotations"]:
        if annotation["num_keypoints"] > 0 and not annotation["iscrowd"]:
            by_image.setdefault(annotation["image_id"], []).append(annotation)
    for record in records:
        expected = np.array([a["keypoints"] for a in by_image[record.image_id]], np.float32).reshape(
            -1, 17, 3
        )
        np.testing.assert_array_equal(record.keypoints, expected)
        np.testing.assert_allclose(record.areas, [a["area"] for a in by_image[record.image_id]], rtol=1e-6)


def test_the_source_masks_people_without_keypoints(coco_sample):
    data, _, records = coco_sample
    source = MultiPersonSource(records)
    assert source.encoded_masks[0] == b"" and source.encoded_masks[3] == b""
    for i in (1, 2):
        annotations = [a for a in data["annotations"] if a["image_id"] == records[i].image_id]
        expected = coco_loss_mask(annotations, records[i].image_size)
        assert 0 < expected.mean() < 1
        decoded = cv2.imdecode(np.frombuffer(source.encoded_masks[i], np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(decoded / 255.0, expected)


def test_evaluation_fits_whole_images_and_maps_back_to_image_pixels(coco_sample):
    data, spec, records = coco_sample
    batch = next(
        iter(
            make_multi_person_dataset(
                MultiPersonSource(records), spec, batch_size=4, training=False, with_metadata=True
            )
        )
    )
    assert batch["images"].shape == (4, 256, 256, 3) and batch["heatmaps"].shape == (4, 64, 64, 17)
    assert batch["mask"].shape == (4, 64, 64) and batch["keypoint_refs"].shape == (4, 30, 17, 2)
    np.testing.assert_array_equal(batch["image_id"], [785, 40083, 196141, 197388])
    # Heatmap cell coordinates -> input pixels -> image pixels with the inverse matrix.
    input_xy = batch["heatmap_keypoints"][..., :2].numpy() * 4 - 0.5
    inverse = np.linalg.inv(batch["matrix"].numpy())
    back = np.einsum("bij,bpkj->bpki", inverse[:, :2, :2], input_xy) + inverse[:, None, None, :2, 2]
    labelled = batch["keypoints"].numpy()[..., 2] > 0
    np.testing.assert_allclose(back[labelled], batch["keypoints"].numpy()[..., :2][labelled], atol=1e-3)
    # Image 785 is 640 x 425: resized to 256 x 170, centred; the padding is masked as the official code.
    mask = batch["mask"].numpy()[0]
    rows = np.flatnonzero(mask.max(axis=1) > 0)
    assert mask[rows].min() == 1 and 42 <= len(rows) <= 43 and rows[0] in (10, 11)
    # The people without keypoints (images 40083, 196141) are masked: the mask is the COCO loss mask
    # warped as the official code does (cv2.warpAffine, zero border, threshold 0.5).
    to_heatmap = np.array([[0.25, 0, 0.125 - 0.5], [0, 0.25, 0.125 - 0.5], [0, 0, 1]])
    for i in (1, 2):
        annotations = [a for a in data["annotations"] if a["image_id"] == records[i].image_id]
        loss_mask = (coco_loss_mask(annotations, records[i].image_size) * 255).astype(np.uint8)
        matrix = (to_heatmap @ batch["matrix"].numpy()[i])[:2]
        official = cv2.warpAffine(loss_mask, matrix, (64, 64), flags=cv2.INTER_LINEAR) / 255 > 0.5
        inside = cv2.warpAffine(np.full_like(loss_mask, 255), matrix, (64, 64)) / 255 > 0.5
        assert np.count_nonzero(inside & ~official) >= 3  # masked cells inside the image
        assert np.count_nonzero(batch["mask"].numpy()[i] != official) <= 2  # rounding at edges


def test_references_point_at_the_heatmap_peaks_of_every_visible_joint(coco_sample):
    _, spec, records = coco_sample
    dataset = make_multi_person_dataset(
        MultiPersonSource(records), spec, batch_size=4, training=True, with_metadata=True
    )
    batch = next(iter(dataset))
    heatmaps = batch["heatmaps"].numpy().reshape(4, -1)
    refs = batch["keypoint_refs"].numpy()
    keypoints = batch["heatmap_keypoints"].numpy()
    for b in range(4):
        cells = keypoints[b, ..., :2].astype(int)  # truncation, as the targets
        # A joint in (-1, 0) truncates into cell 0, as the official code.
        inside = (keypoints[b, ..., 2] > 0) & np.all((cells >= 0) & (cells < 64), axis=-1)
        assert refs[b, ..., 1].sum() == inside.sum() > 0
        referenced = refs[b][refs[b, ..., 1] == 1, 0]
        # sigma 1 at 64 x 64: the window's peak (1) sits exactly on the referenced cell.
        np.testing.assert_array_equal(heatmaps[b, referenced], 1.0)
        index = (cells[..., 1] * 64 + cells[..., 0]) * 17 + np.arange(17)
        np.testing.assert_array_equal(np.sort(referenced), np.sort(index[inside]))


def _dot_source(height=180, width=300, point=(210.0, 60.0)):
    """A dark image with one bright dot at the left wrist of one person."""
    image = np.full((height, width, 3), 20, np.uint8)
    cv2.circle(image, (int(point[0]), int(point[1])), 3, (255, 255, 255), -1)
    keypoints = np.zeros((1, 17, 3), np.float32)
    keypoints[0, LEFT_WRIST] = (*point, 2)
    record = MultiPersonRecord("dot", (height, width), keypoints, image_id=7)
    return MultiPersonSource([record], image[None])


def test_augmentation_moves_the_keypoint_with_the_image_and_flips_swap_left_and_right():
    dataset = make_multi_person_dataset(
        _dot_source(), COCO, batch_size=1, training=True, seed=5, with_metadata=True
    )
    channels = []
    for batch in dataset.take(16):
        heatmaps = batch["heatmaps"].numpy()[0]
        image = batch["images"].numpy()[0, ..., 0]
        if heatmaps.max() == 0:
            continue  # the dot left the input (translation, scale)
        y, x, k = np.unravel_index(np.argmax(heatmaps), heatmaps.shape)
        channels.append(k)
        bright = image > 0.5
        assert bright.any()
        dot = np.argwhere(bright).mean(axis=0)  # (row, column) in input pixels
        dot_cell = (dot + 0.5) / 4
        assert abs(dot_cell[0] - (y + 0.5)) <= 1.0 and abs(dot_cell[1] - (x + 0.5)) <= 1.0
    assert len(channels) >= 10
    assert set(channels) == {LEFT_WRIST, RIGHT_WRIST}  # mirrored examples carry it as the right wrist


def test_augmentation_rotates_scales_and_translates():
    dataset = make_multi_person_dataset(
        _dot_source(), COCO, batch_size=1, training=True, seed=1, with_metadata=True
    )
    positions = [b["heatmap_keypoints"].numpy()[0, 0, :, :2].max(axis=0) for b in dataset.take(12)]
    positions = np.array(positions)
    # Without augmentation the dot sits at one place; with it, it moves by several cells.
    assert np.ptp(positions, axis=0).min() > 4
    assert MULTI_PERSON_AUGMENT.rotation_degrees == 30 and MULTI_PERSON_AUGMENT.scale_range == (0.75, 1.25)


def test_the_loss_mask_is_warped_to_the_heatmap():
    height, width = 128, 256
    mask = np.ones((height, width), np.float32)
    mask[:, :128] = 0  # the left half of the image is ignored
    record = MultiPersonRecord("half", (height, width), np.zeros((0, 17, 3)), image_id=1)
    source = MultiPersonSource([record], np.zeros((1, height, width, 3), np.uint8), [mask])
    batch = next(iter(make_multi_person_dataset(source, COCO, batch_size=1, training=False)))
    warped = batch[1]["mask"].numpy()[0]
    # 256 wide -> zoom 1, the image occupies input rows 64..191, heatmap rows 16..47.
    np.testing.assert_array_equal(warped[16:48, 32:], 1.0)
    np.testing.assert_array_equal(warped[16:48, :32], 0.0)
    np.testing.assert_array_equal(warped[:16], 0.0)
    np.testing.assert_array_equal(warped[48:], 0.0)


def test_synthetic_scenes_feed_the_pipeline():
    source = MultiPersonSource.from_scenes(SyntheticScenes(image_size=128, seed=2), 6)
    images, targets = next(
        iter(
            make_multi_person_dataset(
                source, COCO, batch_size=3, training=True, input_size=(64, 64), heatmap_size=(16, 16)
            )
        )
    )
    assert images.shape == (3, 64, 64, 3) and 0 <= images.numpy().min() and images.numpy().max() <= 1
    assert targets["heatmaps"].shape == (3, 16, 16, 17) and targets["keypoint_refs"].shape == (3, 30, 17, 2)
    # sigma 16 / 64 = 0.25: the official window's truncations leave a peak of exp(-1) off the cell.
    assert (
        targets["heatmaps"].numpy().max() == pytest.approx(np.exp(-1.0))
        and targets["keypoint_refs"].numpy()[..., 1].sum() > 0
    )


def test_invalid_arguments_are_reported(coco_sample):
    _, _, records = coco_sample
    source = MultiPersonSource(records[:1], loss_masks=[None])
    with pytest.raises(ValueError, match="integer stride"):
        make_multi_person_dataset(source, COCO, batch_size=1, training=False, heatmap_size=(60, 60))
    with pytest.raises(ValueError, match="keypoints"):
        make_multi_person_dataset(source, keypoint_specs.MPII, batch_size=1, training=False)
    with pytest.raises(ValueError, match="loss mask"):
        MultiPersonSource(records[:1], loss_masks=[np.ones((10, 10))])
    with pytest.raises(ValueError, match="at least one record"):
        MultiPersonSource([])


@pytest.mark.e2e
def test_ae_tiny_fits_on_synthetic_scenes():
    from tf_hourglass.model.presets import from_preset
    from tf_hourglass.training.ae_losses import AssociativeEmbeddingLoss

    keras.utils.set_random_seed(0)
    model = from_preset("ae_tiny")
    num_stacks = 2
    source = MultiPersonSource.from_scenes(SyntheticScenes(image_size=96, num_people=(1, 3), seed=0), 8)
    dataset = make_multi_person_dataset(
        source, COCO, batch_size=4, training=True, input_size=(64, 64), heatmap_size=(16, 16), seed=0
    )
    dataset = dataset.map(lambda x, t: (x, (t,) * num_stacks))
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3), loss=AssociativeEmbeddingLoss(17, tag_dim=1, num_stacks=2)
    )
    history = model.fit(dataset, steps_per_epoch=3, epochs=6, verbose=0).history["loss"]
    assert np.all(np.isfinite(history)) and history[-1] < 0.8 * history[0]
    assert tf.executing_eagerly()


def test_whole_image_tfrecords_give_the_batches_of_the_records(tmp_path, shared_data, coco_sample):
    from tf_hourglass.data import convert, tfrecord

    _, spec, records = coco_sample
    coco = shared_data / "coco"
    argv = ["convert", "--format=coco", f"--annotations={coco / 'person_keypoints_sample.json'}"]
    argv += [
        f"--images={coco / 'images'}",
        f"--output={tmp_path / 'coco'}",
        "--num-shards=2",
        "--multi-person",
    ]
    assert convert.main(argv) == 0
    sidecar = json.loads((tmp_path / "coco.spec.json").read_text())
    assert sidecar["example_kind"] == "multi_person" and sidecar["num_examples"] == 4
    assert convert.main([*argv, "--full-image"]) == 2  # whole images already

    shards = str(tmp_path / "coco-*-of-*.tfrecord")
    parsed = [
        tfrecord.parse_image_example(s, 17) for s in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(shards)))
    ]
    by_id = {int(p["image/id"]): p for p in parsed}
    for record in records:
        np.testing.assert_array_equal(by_id[record.image_id]["keypoints"].numpy(), record.keypoints)
        np.testing.assert_allclose(by_id[record.image_id]["areas"].numpy(), record.areas)
        assert (by_id[record.image_id]["mask/encoded"].numpy() == b"") == (not record.ignore_segmentations)

    from_files = make_multi_person_dataset(shards, spec, batch_size=4, training=False, with_metadata=True)
    in_memory = make_multi_person_dataset(
        MultiPersonSource(records), spec, batch_size=4, training=False, with_metadata=True
    )
    a, b = next(iter(from_files)), next(iter(in_memory))
    order = np.argsort(a["image_id"].numpy())  # shards interleave the images
    np.testing.assert_array_equal(a["image_id"].numpy()[order], b["image_id"].numpy())
    for key in ("images", "heatmaps", "mask", "keypoint_refs", "keypoints", "matrix"):
        np.testing.assert_array_equal(a[key].numpy()[order], b[key].numpy(), err_msg=key)


def test_custom_files_give_several_people_per_image(tmp_path):
    from tf_hourglass.data.readers import read_custom_images

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((100, 200, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.jpg"), np.zeros((120, 80, 3), np.uint8))
    people = [
        ("a.png", [[50.0, 40.0, 2], [60.0, 41.0, 1], [0, 0, 0]]),
        ("b.jpg", [[10.0, 20.0, 2], [30.0, 50.0, 2], [40.0, 60.0, 2]]),
        ("a.png", [[150.0, 70.0, 1], [0, 0, 0], [160.0, 80.0, 2]]),
    ]
    (tmp_path / "train.json").write_text(
        json.dumps(
            {
                "format": "tf_hourglass.custom.v1",
                "keypoint_names": ["head", "left_hand", "right_hand"],
                "flip_pairs": [[1, 2]],
                "annotations": [{"image": image, "keypoints": keypoints} for image, keypoints in people],
            }
        )
    )
    spec, records = read_custom_images(str(tmp_path / "train.json"))
    assert [r.image_path.rsplit("/", 1)[-1] for r in records] == ["a.png", "b.jpg"]
    assert [r.num_people for r in records] == [2, 1] and [r.image_id for r in records] == [0, 1]
    np.testing.assert_array_equal(records[0].keypoints, [people[0][1], people[2][1]])

    batch = next(
        iter(
            make_multi_person_dataset(
                MultiPersonSource(records), spec, batch_size=2, training=False, with_metadata=True
            )
        )
    )
    # Image sizes come from the PNG's pixels and the JPEG's header: 200 x 100 fills the width (zoom 1.28).
    np.testing.assert_allclose(batch["matrix"].numpy()[0, 0, 0], 256 / 200, rtol=1e-6)
    np.testing.assert_allclose(batch["matrix"].numpy()[1, 1, 1], 256 / 120, rtol=1e-6)
    assert batch["keypoint_refs"].numpy()[..., 1].sum(axis=(1, 2)).tolist() == [4, 3]


def test_a_corrupt_photo_is_skipped_and_input_pipelines_read_their_shard(tmp_path):
    cv2.imwrite(str(tmp_path / "good.jpg"), np.zeros((64, 64, 3), np.uint8))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    records = [
        MultiPersonRecord(str(tmp_path / name), None, np.zeros((0, 17, 3)), image_id=i)
        for i, name in enumerate(["good.jpg", "bad.jpg", "good.jpg", "good.jpg"])
    ]
    source = MultiPersonSource(records)
    batches = make_multi_person_dataset(source, COCO, batch_size=1, training=False, with_metadata=True)
    assert [int(b["image_id"][0]) for b in batches] == [0, 2, 3]
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1)
    shard = make_multi_person_dataset(
        source, COCO, batch_size=1, training=False, with_metadata=True, input_context=context
    )
    assert [int(b["image_id"][0]) for b in shard] == [3]  # images 1 (corrupt) and 3
