"""COCO keypoints, multi-person: the Associative Embedding paper's recipe on the official network.

    python -m tf_hourglass.train --config configs/coco_ae.py --workdir runs/coco_ae \\
        --config.data.train=coco:/data/coco/annotations/person_keypoints_train2017.json:/data/coco/train2017 \\
        --config.data.val=coco:/data/coco/annotations/person_keypoints_val2017.json:/data/coco/val2017 --config.runtime.strategy=mirrored

Convert the training set once for speed (``python -m tf_hourglass.data.convert --format coco
--annotations ... --images ... --output data/coco/train --num-shards 64 --multi-person``) and pass
``--config.data.train='tfrecord:data/coco/train-*.tfrecord'``. To fine-tune the official
model instead of starting from random weights, convert its checkpoint (``hourglass-weights
--source ae --checkpoint exp/pretrained/checkpoint.pth.tar --output ae.keras``) and add
``--config.model.init_from=ae.keras``.

Recipe (pose-ae-train ``task/pose.py``): ``ae_hg4`` (4 stacks, 256 features +128
per level, no BatchNorm, 512x512 input, 128x128 outputs), batch 32, Adam 2e-4,
the loss weights push 1e-3, pull 1e-3, detection 1, whole-image augmentation
(rotation +-30, scale 0.75-1.25, translation, flip), crowds masked; the
learning rate dropped 10x late in training (here a plateau on the validation AP).

Expected result: the official model reaches about 0.59 AP single scale and
0.66 multi-scale on its validation split (its README), 65.5 on test-dev with
refinement; mmpose's HourglassAENet 512 61.3 AP single-scale on val2017.
Evaluate with ``hourglass-evaluate --model runs/coco_ae --data coco:VAL.json:val2017 --flip
--scales 2,1,0.5``.
"""

from tf_hourglass.training.base_config import get_base_config


def get_config():
    config = get_base_config()
    config.data.train = "coco:data/coco/annotations/person_keypoints_train2017.json:data/coco/train2017"
    config.data.val = "coco:data/coco/annotations/person_keypoints_val2017.json:data/coco/val2017"
    config.data.num_val = 500  # validation images scored each epoch (the final score takes them all)
    config.data.sigma = 2.0  # the official 128 / 64
    config.data.target_peak = 1.0

    config.model.preset = "ae_hg4"

    config.train.optimizer = "adam"
    config.train.learning_rate = 2e-4
    config.train.schedule = "plateau"
    config.train.plateau_factor = 0.1
    config.train.plateau_patience = 10
    config.train.epochs = 300
    config.train.steps_per_epoch = 1000
    config.train.batch_size = 32

    config.eval.flip_test = True
    config.runtime.jit_compile = "auto"
    return config
