"""Dataset readers on the real samples in ../shared/data, and their error handling."""

import json
import math

import h5py
import numpy as np
import pytest
import scipy.io

from tf_hourglass.data import keypoint_specs, readers
from tf_hourglass.data.readers import DatasetError


def _mpii_h5(shared_data):
    return readers.read_mpii_h5(str(shared_data / "mpii/annot/valid.h5"), str(shared_data / "mpii/images"))


def test_mpii_h5_gives_2958_records_with_part_minus_one(shared_data):
    spec, records = _mpii_h5(shared_data)
    with h5py.File(shared_data / "mpii/annot/valid.h5", "r") as f:
        part, center, scale = f["part"][()], f["center"][()], f["scale"][()]
        normalize, visible = f["normalize"][()], f["visible"][()]

    assert spec is keypoint_specs.MPII
    assert len(records) == 2958
    keypoints = np.stack([r.keypoints for r in records])
    has_gt = np.stack([r.has_gt for r in records])
    annotated = ~np.all(part == 0, axis=-1)
    np.testing.assert_array_equal(has_gt, annotated)
    np.testing.assert_allclose(keypoints[has_gt], part[annotated] - 1, atol=1e-4)
    assert np.all(keypoints[~has_gt] == 0)
    np.testing.assert_allclose(np.stack([r.center for r in records]), center - 1, atol=1e-3)
    np.testing.assert_allclose([r.scale for r in records], scale)
    np.testing.assert_allclose([r.normalizer for r in records], normalize)
    np.testing.assert_array_equal(np.stack([r.visible for r in records]), (visible > 0) & annotated)
    assert records[0].image_path == str(shared_data / "mpii/images/005808361.jpg")
    assert [r.record_id for r in records[:3]] == [0, 1, 2]


def test_mpii_h5_annotated_joints_match_the_official_eval_kit(shared_data):
    # gt_valid.mat's jnt_missing is the official "not annotated"; it includes
    # joints with a negative coordinate, so (0, 0) alone must mean missing.
    _, records = _mpii_h5(shared_data)
    jnt_missing = scipy.io.loadmat(shared_data / "mpii/annot/gt_valid.mat")["jnt_missing"].T
    has_gt = np.stack([r.has_gt for r in records])
    np.testing.assert_array_equal(has_gt, jnt_missing == 0)
    assert has_gt.sum() == (jnt_missing == 0).sum()
    assert (np.stack([r.keypoints for r in records])[has_gt] < -0.5).any()


def test_mpii_json_matches_h5_rows_0_to_4(shared_data):
    _, from_h5 = _mpii_h5(shared_data)
    spec, from_json = readers.read_mpii_json(
        str(shared_data / "mpii/annot/sample_mmpose.json"), str(shared_data / "mpii/images")
    )
    assert spec is keypoint_specs.MPII
    assert len(from_json) == 5
    for h5_record, json_record in zip(from_h5[:5], from_json, strict=True):
        assert json_record.image_path == h5_record.image_path
        np.testing.assert_array_equal(json_record.has_gt, h5_record.has_gt)
        # The HDF5 truncated the sub-pixel head joints to integers: agree within 1 px.
        diff = np.abs(json_record.keypoints - h5_record.keypoints)
        assert diff.max() < 1.0
        assert np.all(diff[:8] == 0) and np.all(diff[10:] == 0)
        np.testing.assert_allclose(json_record.center, h5_record.center, atol=1e-3)
        assert json_record.scale == pytest.approx(h5_record.scale, abs=1e-5)
        assert math.isnan(json_record.normalizer)
        # joints_vis is "annotated", so visible == has_gt in the JSON reader.
        np.testing.assert_array_equal(json_record.visible, json_record.has_gt)
    # Row 2: wrist and elbow (10, 11) are occluded in the HDF5 but joints_vis = 1.
    assert not from_h5[2].visible[10] and from_json[2].visible[10]


def test_lsp_flag_zero_means_visible(shared_data):
    spec, records = readers.read_lsp(str(shared_data / "lsp/joints.mat"), "/lsp/images")
    raw = scipy.io.loadmat(shared_data / "lsp/joints.mat")["joints"]  # (3, 14, 2000)

    assert spec is keypoint_specs.LSP
    assert len(records) == 2000
    visible = np.stack([r.visible for r in records])
    assert visible.sum() == (raw[2] == 0).sum() == 25956
    np.testing.assert_array_equal(visible, raw[2].T == 0)
    np.testing.assert_allclose(records[0].keypoints, raw[:2, :, 0].T - 1, atol=1e-4)
    assert records[0].image_path == "/lsp/images/im0001.jpg"
    assert records[1999].image_path == "/lsp/images/im2000.jpg"


def test_lsp_center_and_scale_come_from_the_keypoint_box(shared_data):
    _, records = readers.read_lsp(str(shared_data / "lsp/joints.mat"), "")
    r = records[0]
    lo, hi = r.keypoints.min(axis=0), r.keypoints.max(axis=0)
    np.testing.assert_allclose(r.center, (lo + hi) / 2, atol=1e-4)
    assert r.scale == pytest.approx(max(hi - lo) * 1.25 / 200, rel=1e-5)


def test_lspet_flag_one_means_visible(shared_data):
    images = shared_data / "lspet/images"
    spec, records = readers.read_lspet(str(shared_data / "lspet/joints.mat"), str(images))
    raw = scipy.io.loadmat(shared_data / "lspet/joints.mat")["joints"]  # (14, 3, 400)

    assert spec is keypoint_specs.LSP
    assert len(records) == 400
    in_image = np.all(raw[:, :2] > 0, axis=1).T  # (400, 14)
    visible = np.stack([r.visible for r in records])
    has_gt = np.stack([r.has_gt for r in records])
    np.testing.assert_array_equal(has_gt, in_image)
    np.testing.assert_array_equal(visible, (raw[:, 2].T == 1) & in_image)
    assert visible.sum() == 4865  # 4,866 flag-1 joints, one of them outside the image
    assert records[0].image_path == str(images / "im00001.jpg")
    assert all((images / f"im{i + 1:05d}.jpg").is_file() for i in range(400))


def test_coco_sample_gives_12_persons_with_v_flags(shared_data):
    path = shared_data / "coco/person_keypoints_sample.json"
    spec, records = readers.read_coco(str(path), str(shared_data / "coco/images"))
    anns = {a["id"]: a for a in json.loads(path.read_text())["annotations"]}

    assert spec is keypoint_specs.COCO
    assert len(records) == 12
    assert {r.record_id for r in records} == {i for i, a in anns.items() if a["num_keypoints"] > 0}
    for r in records:
        raw = np.asarray(anns[r.record_id]["keypoints"], np.float32).reshape(17, 3)
        np.testing.assert_array_equal(r.has_gt, raw[:, 2] > 0)
        np.testing.assert_array_equal(r.visible, raw[:, 2] == 2)
        np.testing.assert_array_equal(r.keypoints, raw[:, :2])
        np.testing.assert_allclose(r.box, anns[r.record_id]["bbox"], rtol=1e-6)
    # Annotation 198196 has a square box 174.71 wide at (38.08, 110.95).
    r = next(r for r in records if r.record_id == 198196)
    np.testing.assert_allclose(r.center, [38.08 + 174.71 / 2, 110.95 + 174.71 / 2], atol=1e-3)
    assert r.scale == pytest.approx(174.71 * 1.25 / 200, rel=1e-6)
    assert sum(r.has_gt.sum() - r.visible.sum() for r in records) == 17  # v = 1 joints


def test_flic_valid_loads_1016_annotated_persons(shared_data):
    spec, records = readers.read_flic(str(shared_data / "flic/annot/valid.h5"), "/flic/images")
    with h5py.File(shared_data / "flic/annot/valid.h5", "r") as f:
        part, normalize = f["part"][()], f["normalize"][()]
    assert spec is keypoint_specs.FLIC
    assert len(records) == 1016
    assert all(r.has_gt.all() for r in records)
    np.testing.assert_allclose(records[0].keypoints, part[0] - 1, atol=1e-4)
    np.testing.assert_allclose([r.normalizer for r in records], normalize)
    assert records[0].image_path == "/flic/images/12-oclock-high-special-edition-00171221.jpg"


@pytest.mark.parametrize(
    ("fmt", "annotations", "count"),
    [
        ("mpii_h5", "mpii/annot/valid.h5", 2958),
        ("mpii_json", "mpii/annot/sample_mmpose.json", 5),
        ("lsp", "lsp/joints.mat", 2000),
        ("lspet", "lspet/joints.mat", 400),
        ("flic", "flic/annot/valid.h5", 1016),
        ("coco", "coco/person_keypoints_sample.json", 12),
    ],
)
def test_read_dataset_dispatches_on_format(shared_data, fmt, annotations, count):
    _, records = readers.read_dataset(fmt, str(shared_data / annotations), "/images")
    assert len(records) == count


def test_custom_write_read_round_trip_is_exact(shared_data, tmp_path):
    _, mpii = _mpii_h5(shared_data)
    _, coco = readers.read_coco(
        str(shared_data / "coco/person_keypoints_sample.json"), str(shared_data / "coco/images")
    )
    path = tmp_path / "custom.json"
    for spec, records in ((keypoint_specs.MPII, mpii[:50]), (keypoint_specs.COCO, coco)):
        images_dir = records[0].image_path.rsplit("/", 1)[0]
        readers.write_custom(str(path), spec, records, images_dir)
        back_spec, back = readers.read_custom(str(path), images_dir)

        assert back_spec.keypoint_names == spec.keypoint_names
        assert back_spec.flip_pairs == spec.flip_pairs
        assert back_spec.skeleton == spec.skeleton
        assert back_spec.pck_normalizer == spec.pck_normalizer
        assert len(back) == len(records)
        for a, b in zip(records, back, strict=True):
            assert b.image_path == a.image_path
            np.testing.assert_array_equal(b.keypoints, a.keypoints)
            np.testing.assert_array_equal(b.has_gt, a.has_gt)
            np.testing.assert_array_equal(b.visible, a.visible)
            np.testing.assert_array_equal(b.center, a.center)
            assert b.scale == a.scale
            assert b.normalizer == a.normalizer or (math.isnan(a.normalizer) and math.isnan(b.normalizer))
            assert (a.box is None and b.box is None) or np.array_equal(a.box, b.box)
            assert b.record_id == a.record_id
    # Paths are stored relative to images_dir.
    assert json.loads(path.read_text())["annotations"][0]["image"] == "000000000785.jpg"
    assert not list(tmp_path.glob("*.tmp-*"))


def test_custom_center_and_scale_default_to_box_then_keypoints(tmp_path):
    path = tmp_path / "c.json"
    data = {
        "format": "tf_hourglass.custom.v1",
        "keypoint_names": ["a", "b"],
        "annotations": [
            {"image": "x.jpg", "keypoints": [[10, 20, 2], [50, 100, 1]], "box": [0, 0, 40, 80]},
            {"image": "x.jpg", "keypoints": [[10, 20, 2], [50, 100, 0]]},
            {"image": "/abs/y.jpg", "keypoints": [[10, 20, 2], [50, 100, 2]]},
        ],
    }
    path.write_text(json.dumps(data))
    spec, (from_box, one_joint, from_joints) = readers.read_custom(str(path))

    assert spec.name == "custom" and spec.pck_normalizer == "head"
    np.testing.assert_allclose(from_box.center, [20, 40])
    assert from_box.scale == pytest.approx(80 * 1.25 / 200)
    assert from_box.image_path == str(tmp_path / "x.jpg")
    assert from_box.visible.tolist() == [True, False] and from_box.has_gt.tolist() == [True, True]
    assert one_joint.has_gt.tolist() == [True, False] and math.isnan(one_joint.scale)
    np.testing.assert_allclose(from_joints.center, [30, 60])
    assert from_joints.scale == pytest.approx(80 * 1.25 / 200)
    assert from_joints.image_path == "/abs/y.jpg"


def test_get_spec_names_known_specs_on_unknown_name():
    assert keypoint_specs.get_spec("MPII") is keypoint_specs.MPII
    assert keypoint_specs.get_spec("lspet") is keypoint_specs.LSP
    with pytest.raises(ValueError, match=r"'h36m'.*\['coco', 'flic', 'lsp', 'lspet', 'mpii'\]"):
        keypoint_specs.get_spec("h36m")


@pytest.mark.parametrize(
    "spec", [keypoint_specs.MPII, keypoint_specs.LSP, keypoint_specs.FLIC, keypoint_specs.COCO]
)
def test_flip_pairs_swap_left_and_right_names(spec):
    counts = {"mpii": 16, "lsp": 14, "flic": 11, "coco": 17}
    assert spec.num_keypoints == counts[spec.name]
    for left, right in spec.flip_pairs:
        left_name, right_name = spec.keypoint_names[left], spec.keypoint_names[right]
        assert left_name.startswith("l") and right_name.startswith("r")
        assert left_name.split("_", 1)[1] == right_name.split("_", 1)[1]
    assert keypoint_specs.spec_from_dict(keypoint_specs.spec_to_dict(spec)) == spec


def test_read_dataset_rejects_unknown_format():
    with pytest.raises(
        ValueError, match=r"'mpii'.*'mpii_h5', 'mpii_json', 'lsp', 'lspet', 'flic', 'coco', 'custom'"
    ):
        readers.read_dataset("mpii", "a.h5", "images")


# ---------------------------------------------------------------------------
# Malformed files: DatasetError naming the file and the record or key.


def test_bad_json_raises_dataset_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "tf_hourglass.custom.v1", "annotations": [')
    for read in (readers.read_custom, readers.read_coco, readers.read_mpii_json):
        with pytest.raises(DatasetError, match=r"broken\.json.*not valid JSON"):
            read(str(path), str(tmp_path))


def test_custom_bad_keypoints_shape_names_the_record(tmp_path):
    path = tmp_path / "c.json"
    good = {"image": "a.jpg", "keypoints": [[1, 2, 2], [3, 4, 2]]}
    bad = {"image": "b.jpg", "keypoints": [[1, 2], [3, 4]]}
    data = {"format": "tf_hourglass.custom.v1", "keypoint_names": ["a", "b"], "annotations": [good, bad]}
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"c\.json: annotations\[1\] 'keypoints' has shape \(2, 2\)"):
        readers.read_custom(str(path))


def test_custom_wrong_format_tag_is_rejected(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"format": "coco", "keypoint_names": ["a"], "annotations": []}))
    with pytest.raises(DatasetError, match=r"c\.json: 'format' must be .*received 'coco'"):
        readers.read_custom(str(path))


def test_coco_missing_key_names_the_annotation(tmp_path):
    path = tmp_path / "coco.json"
    ann = {"id": 7, "image_id": 1, "num_keypoints": 1, "keypoints": [0] * 51}  # no bbox
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [ann]}))
    with pytest.raises(DatasetError, match=r"coco\.json: annotations\[0\] has no field 'bbox'"):
        readers.read_coco(str(path), str(tmp_path))


def test_mpii_json_wrong_joint_count_names_the_record(tmp_path):
    path = tmp_path / "mpii.json"
    entry = {"image": "a.jpg", "center": [1, 1], "scale": 1, "joints": [[1, 1]] * 15, "joints_vis": [1] * 16}
    path.write_text(json.dumps([entry]))
    with pytest.raises(DatasetError, match=r"mpii\.json: record 0 'joints' has shape \(15, 2\)"):
        readers.read_mpii_json(str(path), str(tmp_path))


def test_h5_missing_key_names_the_file_and_key(tmp_path):
    path = tmp_path / "valid.h5"
    with h5py.File(path, "w") as f:
        f["imgname"] = np.array([b"a.jpg"])
        f["part"] = np.zeros((1, 16, 2))
    with pytest.raises(DatasetError, match=r"valid\.h5: missing key 'visible'"):
        readers.read_mpii_h5(str(path), str(tmp_path))


def test_h5_wrong_shape_names_the_key(tmp_path):
    path = tmp_path / "flic.h5"
    with h5py.File(path, "w") as f:
        f["imgname"] = np.array([b"a.jpg"])
        f["part"] = np.zeros((1, 16, 2))  # FLIC has 11 joints
    with pytest.raises(
        DatasetError, match=r"flic\.h5: key 'part' has shape \(1, 16, 2\), expected \(1, 11, 2\)"
    ):
        readers.read_flic(str(path), str(tmp_path))


def test_non_h5_file_raises_dataset_error(tmp_path):
    path = tmp_path / "valid.h5"
    path.write_text("not hdf5")
    with pytest.raises(DatasetError, match=r"valid\.h5: not a readable HDF5 file"):
        readers.read_mpii_h5(str(path), str(tmp_path))


def test_lsp_wrong_layout_names_the_key(tmp_path):
    path = tmp_path / "joints.mat"
    scipy.io.savemat(path, {"joints": np.zeros((14, 3, 5))})  # LSPET layout given to read_lsp
    with pytest.raises(
        DatasetError, match=r"joints\.mat: key 'joints' has shape \(14, 3, 5\), expected \(3, 14, 'N'\)"
    ):
        readers.read_lsp(str(path), str(tmp_path))


def test_non_mat_file_raises_dataset_error(tmp_path):
    path = tmp_path / "joints.mat"
    path.write_text("joints, but as text\n" * 10)
    with pytest.raises(DatasetError, match=r"joints\.mat: not a readable MATLAB \.mat file"):
        readers.read_lspet(str(path), str(tmp_path))


def test_missing_annotation_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        readers.read_mpii_h5(str(tmp_path / "nope.h5"), str(tmp_path))


# ---------------------------------------------------------------------------
# Raw ground truth (the official kits' coordinates) agrees with the records.


def test_raw_mpii_ground_truth_is_the_records_plus_one_in_both_official_files(shared_data):
    _, records = _mpii_h5(shared_data)
    keypoints = np.stack([r.keypoints for r in records])
    has_gt = np.stack([r.has_gt for r in records])
    from_h5 = readers.read_ground_truth(str(shared_data / "mpii/annot/valid.h5"))
    from_mat = readers.read_ground_truth(str(shared_data / "mpii/annot/gt_valid.mat"))
    for truth in (from_h5, from_mat):
        assert truth.spec is keypoint_specs.MPII and truth.num_persons == 2958
        np.testing.assert_array_equal(truth.has_gt, has_gt)
    np.testing.assert_allclose(from_h5.keypoints[has_gt], keypoints[has_gt] + 1, atol=1e-9)
    # gt_valid.mat keeps the sub-pixel head joints that valid.h5 floored, and has 13
    # joints with one coordinate zeroed where valid.h5 has a value.
    far = np.abs(from_mat.keypoints - from_h5.keypoints).max(axis=-1) >= 1
    assert (far & has_gt).sum() == 13
    assert np.all(np.min(from_mat.keypoints[far & has_gt], axis=-1) == 0)
    np.testing.assert_allclose(from_h5.head_size, [r.normalizer for r in records])
    assert from_h5.head_boxes is None and from_mat.head_size is None
    assert from_mat.head_boxes.shape == (2958, 2, 2)


@pytest.mark.parametrize("dataset", ["lsp", "lspet"])
def test_raw_lsp_ground_truth_has_the_records_joints_one_based(shared_data, dataset):
    joints = str(shared_data / dataset / "joints.mat")
    _, records = readers.read_dataset(dataset, joints, str(shared_data / dataset / "images"))
    truth = readers.read_ground_truth(joints)
    assert truth.spec is keypoint_specs.LSP and truth.num_persons == len(records)
    has_gt = np.stack([r.has_gt for r in records])
    np.testing.assert_array_equal(truth.has_gt, has_gt)
    np.testing.assert_allclose(
        truth.keypoints[has_gt], np.stack([r.keypoints for r in records])[has_gt] + 1, atol=1e-9
    )


def test_raw_ground_truth_errors_name_the_file_and_the_expected_layout(tmp_path):
    path = tmp_path / "gt.h5"
    with h5py.File(path, "w") as f:
        f["part"] = np.zeros((3, 14, 2))
    with pytest.raises(
        DatasetError, match=r"gt\.h5: key 'part' has shape \(3, 14, 2\), expected \(N, 16, 2\)"
    ):
        readers.read_ground_truth(str(path))
    path = tmp_path / "gt_valid.mat"
    scipy.io.savemat(path, {"pos_gt_src": np.zeros((16, 2, 4)), "jnt_missing": np.zeros((16, 4))})
    with pytest.raises(DatasetError, match=r"gt_valid\.mat: missing key 'headboxes_src'; present keys"):
        readers.read_ground_truth(str(path))
    (tmp_path / "gt.txt").write_text("1 2")
    with pytest.raises(DatasetError, match=r"gt\.txt: unsupported ground-truth file"):
        readers.read_ground_truth(str(tmp_path / "gt.txt"))
    with pytest.raises(FileNotFoundError, match=r"Ground-truth file not found: .*nowhere\.mat"):
        readers.read_ground_truth(str(tmp_path / "nowhere.mat"))
