"""The training config's data, named one way (data.train / data.val / data.test) or the older way.

``training.data_sources.data_splits`` maps both spellings to the same sources;
these tests open the sources (no training) and compare what each spelling reads.
"""

import json

import numpy as np
import pytest
from training_helpers import load_config, write_tiny_config

from tf_hourglass.data.sources import Source
from tf_hourglass.training import data_sources, multi_person_loop, trainer
from tf_hourglass.training.base_config import get_base_config
from tf_hourglass.training.workdir import check_resumed_config, write_config


def tiny_config(tmp_path):
    return load_config(write_tiny_config(tmp_path, epochs=1))


def assert_same_in_memory_source(a, b):
    tensors_a, tensors_b = a.tensors(), b.tensors()
    assert tensors_a.keys() == tensors_b.keys()
    for key in tensors_a:
        np.testing.assert_array_equal(tensors_a[key], tensors_b[key], err_msg=key)
    if a.images is None:
        assert b.images is None
    else:
        np.testing.assert_array_equal(a.images, b.images)


@pytest.fixture(scope="module")
def custom_sets(tmp_path_factory):
    from tf_hourglass.data.synthetic import write_custom_dataset

    root = tmp_path_factory.mktemp("custom")
    train = write_custom_dataset(str(root / "train"), 4, seed=1, image_size=64)
    val = write_custom_dataset(str(root / "val"), 3, seed=2, image_size=64)
    return train, val


def test_reader_data_in_the_new_spelling_opens_the_same_records_as_the_old(tmp_path, custom_sets):
    train, val = custom_sets
    old = get_base_config().data
    old.format = "custom"
    old.train_annotations, old.val_annotations = train, val
    new = get_base_config().data
    new.train, new.val = f"custom:{train}", f"custom:{val}"

    assert data_sources.data_splits(new) == data_sources.data_splits(old)
    old_sources, new_sources = data_sources.load_sources(old), data_sources.load_sources(new)
    assert new_sources.spec == old_sources.spec
    assert len(new_sources.train) == 4 and len(new_sources.val) == 3 and new_sources.test is None
    assert_same_in_memory_source(new_sources.train, old_sources.train)
    assert_same_in_memory_source(new_sources.val, old_sources.val)


def test_synthetic_in_the_new_spelling_draws_the_same_figures_as_the_old(tmp_path):
    old = tiny_config(tmp_path).data
    old.num_train, old.num_val, old.num_test, old.synthetic_image_size = 3, 2, 2, 64
    new = old.copy_and_resolve_references()
    new.train = new.val = new.test = "synthetic"

    old_sources, new_sources = data_sources.load_sources(old), data_sources.load_sources(new)
    for split in ("train", "val", "test"):
        assert_same_in_memory_source(getattr(new_sources, split), getattr(old_sources, split))
    # Consecutive, disjoint figures: 3 train, the next 2 validate, the next 2 test.
    assert [len(getattr(new_sources, s)) for s in ("train", "val", "test")] == [3, 2, 2]
    assert not np.array_equal(new_sources.val.images[0], new_sources.train.images[0])


@pytest.mark.parametrize(
    ("old_fields", "new_fields"),
    [
        (
            {"format": "tfrecord", "train_annotations": "out/t-*", "val_annotations": "out/v-*"},
            {"train": "tfrecord:out/t-*", "val": "tfrecord:out/v-*"},
        ),
        (
            {
                "format": "lspet",
                "train_annotations": "lspet/joints.mat",
                "images_dir": "lspet/images",
                "val_format": "lsp",
                "val_annotations": "lsp/joints.mat",
                "val_images_dir": "lsp/images",
            },
            {"train": "lspet:lspet/joints.mat:lspet/images", "val": "lsp:lsp/joints.mat:lsp/images"},
        ),
        (
            {
                "format": "mpii_h5",
                "train_annotations": "a/t.h5",
                "val_annotations": "a/v.h5",
                "images_dir": "im",
            },
            {"train": "mpii_h5:a/t.h5:im", "val": "mpii_h5:a/v.h5:im"},
        ),
    ],
)
def test_each_old_spelling_maps_to_the_new_one(old_fields, new_fields):
    old, new, both = get_base_config().data, get_base_config().data, get_base_config().data
    old.update(old_fields)
    new.update(new_fields)
    both.update({**old_fields, **new_fields})  # both spellings, agreeing: accepted
    splits = data_sources.data_splits(old)
    assert (str(splits.train), str(splits.val), splits.test) == (new_fields["train"], new_fields["val"], None)
    assert data_sources.data_splits(new) == splits == data_sources.data_splits(both)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"train": "mpii_h5:a/t.h5:im", "val": "mpii_h5:a/v.h5:im", "train_annotations": "b/t.h5"},
            "config.data.train='mpii_h5:a/t.h5:im' and config.data.train_annotations='b/t.h5' disagree",
        ),
        (
            {"train": "synthetic", "val": "synthetic", "format": "custom"},
            "config.data.train='synthetic' and config.data.format='custom' disagree",
        ),
        (
            {"train": "lsp:j.mat:a", "val": "lsp:j.mat:b", "images_dir": "a"},
            "config.data.val='lsp:j.mat:b' and config.data.images_dir='a' disagree",
        ),
        (
            {"train": "lspet:t.mat", "val": "lspet:v.mat", "format": "lspet", "val_format": "lsp"},
            "config.data.val='lspet:v.mat' and config.data.val_format='lsp' disagree",
        ),
    ],
)
def test_a_data_split_and_an_old_field_that_disagree_are_named_together(tmp_path, fields, message):
    config = tiny_config(tmp_path)
    config.data.update(fields)
    workdir = tmp_path / "run"
    with pytest.raises(ValueError) as error:
        trainer.train_and_evaluate(config, str(workdir))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert not workdir.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"train": "mpii_h5", "val": "synthetic"},
            "config.data.train must be 'synthetic', 'tfrecord:PATTERN' or",
        ),
        (
            {"train": "synthetic", "val": "lsp::images"},
            "config.data.val must be 'synthetic', 'tfrecord:PATTERN' or",
        ),
        (
            {"train": "synthetic", "val": "imagenet:x"},
            "config.data.val must be 'synthetic', 'tfrecord:PATTERN' or",
        ),
        (
            {"train": "synthetic", "val": "synthetic", "test": "tfrecord"},
            "config.data.test must be 'synthetic'",
        ),
        ({"train": "custom:t.json"}, "config.data.val must be given with config.data.train, as 'synthetic'"),
        ({"test": "synthetic"}, "config.data.train must be given with config.data.test"),
    ],
)
def test_a_malformed_data_split_is_one_line_naming_the_field_and_its_form(tmp_path, fields, message):
    config = tiny_config(tmp_path)
    config.data.update(fields)
    workdir = tmp_path / "run"
    with pytest.raises(ValueError) as error:
        trainer.train_and_evaluate(config, str(workdir))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    assert "FORMAT:ANNOTATIONS[:IMAGES_DIR]" in str(error.value)
    assert not workdir.exists()


def test_a_synthetic_test_split_needs_test_figures(tmp_path):
    config = tiny_config(tmp_path)
    config.data.update({"train": "synthetic", "val": "synthetic", "test": "synthetic", "num_test": 0})
    with pytest.raises(ValueError, match="config.data.num_test must be >= 1"):
        trainer.validate_config(config)


def test_a_run_started_in_the_old_spelling_resumes_in_the_new_one(tmp_path, custom_sets):
    train, val = custom_sets
    old = tiny_config(tmp_path)
    old.data.update({"format": "custom", "train_annotations": train, "val_annotations": val})
    write_config(str(tmp_path), old)
    new = tiny_config(tmp_path)
    new.data.update({"train": f"custom:{train}", "val": f"custom:{val}"})
    check_resumed_config(str(tmp_path), new)  # the same data: no change to report
    # A config.json written before data.train existed compares the same way.
    saved = json.loads((tmp_path / "config.json").read_text())
    for field in ("train", "val", "test"):
        del saved["data"][field]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_resumed_config(str(tmp_path), new)
    check_resumed_config(str(tmp_path), old)
    # Other data is a change, named in the one spelling.
    new.data.val = f"custom:{train}"
    with pytest.raises(ValueError, match=f"data.val: 'custom:{val}' -> 'custom:{train}'"):
        check_resumed_config(str(tmp_path), new)


AE_DATA = {"num_train": 2, "num_val": 2, "num_test": 1, "synthetic_image_size": 64}


def test_multi_person_data_in_the_new_spelling_is_the_same_as_the_old(tmp_path):
    old = get_base_config()
    old.model.preset = "ae_tiny"
    old.data.update(AE_DATA)
    new = old.copy_and_resolve_references()
    new.data.update({"train": "synthetic", "val": "synthetic", "test": "synthetic"})
    trainer.validate_config(new)
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old_train, old_val, old_test = multi_person_loop.load_people_data(old, str(tmp_path / "old"))
    new_train, new_val, new_test = multi_person_loop.load_people_data(new, str(tmp_path / "new"))
    np.testing.assert_array_equal(new_train.images, old_train.images)
    for old_data, new_data in ((old_val, new_val), (old_test, new_test)):
        assert [image_id for image_id, _ in new_data.images] == [image_id for image_id, _ in old_data.images]
        assert json.loads(open(new_data.ground_truth).read()) == json.loads(
            open(old_data.ground_truth).read()
        )
    assert [image_id for image_id, _ in new_test.images] == [4]  # after 2 train and 2 val scenes


def test_multi_person_coco_data_in_the_new_spelling_reads_the_same_people(tmp_path, shared_data):
    annotations, images = (
        shared_data / "coco" / "person_keypoints_sample.json",
        shared_data / "coco" / "images",
    )
    old = get_base_config()
    old.model.preset = "ae_tiny"
    old.data.update(
        {"format": "coco", "train_annotations": str(annotations), "val_annotations": str(annotations)}
    )
    old.data.images_dir = str(images)
    new = get_base_config()
    new.model.preset = "ae_tiny"
    new.data.update({"train": f"coco:{annotations}:{images}", "val": f"coco:{annotations}:{images}"})
    trainer.validate_config(new)
    old_train, old_val, old_test = multi_person_loop.load_people_data(old, str(tmp_path))
    new_train, new_val, new_test = multi_person_loop.load_people_data(new, str(tmp_path))
    assert [r.image_path for r in new_train.records] == [r.image_path for r in old_train.records]
    for a, b in zip(new_train.records, old_train.records, strict=True):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert new_val == old_val and new_test is old_test is None
    assert len(new_val.images) == 4


def test_multi_person_validation_data_must_be_coco_or_synthetic(tmp_path):
    config = get_base_config()
    config.model.preset = "ae_tiny"
    config.data.update({"train": "custom:people.json", "val": "custom:val.json"})
    with pytest.raises(ValueError) as error:
        trainer.validate_config(config)
    message = str(error.value)
    assert message.startswith("config.data.val must be 'synthetic' or a COCO person_keypoints file")
    assert "Received: data.val='custom:val.json'" in message
    config.data.val = "coco:val.json"
    trainer.validate_config(config)  # a COCO file scores it


def test_splits_name_their_sources():
    config = get_base_config()
    config.data.update({"train": "tfrecord:out/t-*", "val": "coco:v.json:img", "test": "synthetic"})
    splits = data_sources.data_splits(config.data)
    assert splits.items() == [
        ("train", Source("tfrecord", "out/t-*")),
        ("val", Source("coco", "v.json", "img")),
        ("test", Source("synthetic")),
    ]
