"""MPII, 8-stack hourglass: the paper's recipe (Newell et al., ECCV 2016).

Data: the original Stacked Hourglass annotations (annot/train.h5, annot/valid.h5,
Tompson's validation split) and the MPII images. Converting to TFRecords of
person crops first makes the input much cheaper (see README, "Datasets"); this
config reads the HDF5 files and photos directly:

    python -m tf_hourglass.train --config configs/mpii_hg8.py --workdir runs/mpii_hg8 \\
        --config.data.train=mpii_h5:/data/mpii/annot/train.h5:/data/mpii/images \\
        --config.data.val=mpii_h5:/data/mpii/annot/valid.h5:/data/mpii/images

Each split is one string, as ``evaluate --data`` takes it (``synthetic``,
``tfrecord:PATTERN`` or ``FORMAT:ANNOTATIONS[:IMAGES]``). The older fields
(``data.format``, ``data.train_annotations``, ``data.images_dir`` ...) still work
in a config that does not set ``data.train``/``data.val``.

Recipe: 256x256 input, RMSprop at 2.5e-4 divided by 5 when validation PCKh
plateaus, rotation +-30, scale 0.75-1.25, flip; sigma 1 targets at 64x64;
batch 6; 100 epochs of 4,000 steps (about one pass over the 25k training
people per epoch); flip test at evaluation.

Expected result: validation PCKh@0.5 Total about 88-89 on the 2,958-person
split (the original 8-stack predictions score 88.0 on it with
`python -m tf_hourglass.evaluate`), after several days on one modern GPU.
"""

from tf_hourglass.training.base_config import get_base_config


def get_config():
    config = get_base_config()
    config.data.train = "mpii_h5:data/mpii/annot/train.h5:data/mpii/images"
    config.data.val = "mpii_h5:data/mpii/annot/valid.h5:data/mpii/images"
    config.data.sigma = 1.0
    config.data.target_peak = 1.0

    config.model.preset = "hg8"

    config.train.optimizer = "rmsprop"
    config.train.learning_rate = 2.5e-4
    config.train.schedule = "plateau"
    config.train.plateau_factor = 0.2
    config.train.plateau_patience = 5
    config.train.epochs = 100
    config.train.steps_per_epoch = 4000
    config.train.batch_size = 6

    config.eval.flip_test = True
    return config
