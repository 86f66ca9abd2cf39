"""The multi-person training run's settings: the loss weights at any target peak, the synthetic scenes' settings."""

import json

import ml_collections
import pytest

from tf_hourglass.model import from_preset
from tf_hourglass.training import multi_person_loop
from tf_hourglass.training.base_config import get_base_config


@pytest.mark.parametrize("peak, weight, expected", [(1.0, 1e-3, 1e-3), (10.0, 1e-3, 0.1), (10.0, 1e-2, 1.0)])
def test_tag_weights_follow_the_detection_loss_scale_of_the_targets_peak(peak, weight, expected):
    config = get_base_config()
    config.data.target_peak = peak
    config.train.tag_loss_weight = weight
    loss = multi_person_loop.multi_person_loss(config, from_preset("ae_tiny"))
    assert loss.push_weight == pytest.approx(expected) and loss.pull_weight == pytest.approx(expected)
    assert loss.detection_weight == 1.0 and loss.num_stacks == 2


def test_scene_settings_choose_how_many_figures_a_synthetic_scene_holds(tmp_path):
    config = get_base_config()
    config.data = ml_collections.ConfigDict(
        dict(config.data.to_dict(), num_train=4, num_val=12, num_test=0, synthetic_image_size=64)
    )
    config.data.scene_people = (3, 3)
    config.data.scene_height_range = (0.5, 0.6)
    _, val, test = multi_person_loop.load_people_data(config, str(tmp_path))
    ground_truth = json.loads(open(val.ground_truth).read())
    people = [
        sum(a["image_id"] == image["id"] for a in ground_truth["annotations"])
        for image in ground_truth["images"]
    ]
    assert len(people) == 12 and test is None
    # Three figures each; one wholly hidden behind the others is dropped (COCO's num_keypoints == 0).
    assert max(people) == 3 and sum(people) >= 30
