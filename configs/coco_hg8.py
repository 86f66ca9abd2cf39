"""COCO keypoints, 8-stack hourglass, top-down on ground-truth person boxes (17 joints).

    python -m tf_hourglass.train --config configs/coco_hg8.py --workdir runs/coco_hg8 \\
        --config.data.train=coco:/data/coco/annotations/person_keypoints_train2017.json:/data/coco/train2017 \\
        --config.data.val=coco:/data/coco/annotations/person_keypoints_val2017.json:/data/coco/val2017

Then COCO OKS AP with `python -m tf_hourglass.evaluate --model runs/coco_hg8 --format coco ...`.
COCO has no head boxes, so the per-epoch validation PCKh is NaN and no
"best" checkpoint is kept: the schedule is cosine (not plateau), and the
final model is the one to evaluate with OKS AP.

Recipe: 256x256 input, Adam 1e-3 with cosine decay, rotation +-40,
scale 0.7-1.3, flip, sigma 2 at 64x64 (the usual COCO top-down settings).

Expected result: OKS AP about 0.66-0.70 on val2017 with ground-truth boxes
(published 8-stack hourglass top-down results at 256x192 are about 0.67).
"""

from tf_hourglass.training.base_config import get_base_config


def get_config():
    config = get_base_config()
    config.data.train = "coco:data/coco/annotations/person_keypoints_train2017.json:data/coco/train2017"
    config.data.val = "coco:data/coco/annotations/person_keypoints_val2017.json:data/coco/val2017"
    config.data.sigma = 2.0
    config.data.rotation_degrees = 40.0
    config.data.scale_min = 0.7
    config.data.scale_max = 1.3

    config.model.preset = "hg8"

    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.schedule = "cosine"
    config.train.warmup_steps = 1000
    config.train.epochs = 140
    config.train.steps_per_epoch = 4000
    config.train.batch_size = 32
    config.eval.val_batches = 100
    return config
