"""The one data-source spec: synthetic | tfrecord:PATTERN | FORMAT:ANNOTATIONS[:IMAGES]."""

import pytest

from tf_hourglass.data.sources import Source, parse_source, read_records


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("synthetic", Source("synthetic")),
        ("tfrecord:out/lspet-train-*-of-*.tfrecord", Source("tfrecord", "out/lspet-train-*-of-*.tfrecord")),
        ("lspet:data/joints.mat:data/images", Source("lspet", "data/joints.mat", "data/images")),
        ("custom:data/annotations.json", Source("custom", "data/annotations.json")),
        (
            "mpii_h5:gs://bucket/annot/train.h5:gs://bucket/images",
            Source("mpii_h5", "gs://bucket/annot/train.h5", "gs://bucket/images"),
        ),
        ("coco:https://host/val.json", Source("coco", "https://host/val.json")),
    ],
)
def test_text_form_parses_and_prints_back(text, source):
    assert parse_source(text) == source
    assert str(source) == text


@pytest.mark.parametrize(
    "text", ["", "tfrecord", "tfrecord:", "mpii:annot.h5", "lsp", "synthetic:3", "lsp::images", "lsp:"]
)
def test_a_bad_spec_is_named_with_the_forms_it_may_take(text):
    with pytest.raises(ValueError) as error:
        parse_source(text, "calibration")
    message = str(error.value)
    assert message.startswith("calibration must be 'synthetic', 'tfrecord:PATTERN' or")
    assert f"Received: {text!r}" in message and "'mpii_h5'" in message


def test_records_come_only_from_reader_formats():
    with pytest.raises(ValueError, match="not in a reader format"):
        read_records(Source("tfrecord", "x-*.tfrecord"))


def test_lsp_sample_reads_through_the_readers(shared_data):
    spec, records = read_records(
        parse_source(f"lsp:{shared_data}/lsp/joints.mat:{shared_data}/lsp/images", "calibration")
    )
    assert spec.num_keypoints == 14 and len(records) > 0
