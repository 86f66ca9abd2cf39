"""MPII, 2-stack hourglass: the paper's recipe on the smaller network.

    python -m tf_hourglass.train --config configs/mpii_hg2.py --workdir runs/mpii_hg2 \\
        --config.data.train=mpii_h5:/data/mpii/annot/train.h5:/data/mpii/images \\
        --config.data.val=mpii_h5:/data/mpii/annot/valid.h5:/data/mpii/images

Everything as configs/mpii_hg8.py but 2 stacks and batch 16.

Expected result: validation PCKh@0.5 Total about 86-87 (the paper's ablation
puts 2 stacks about 1.5-2 points below 8 at equal parameters), about a day on
one modern GPU.
"""

from configs.mpii_hg8 import get_config as get_mpii_hg8_config


def get_config():
    config = get_mpii_hg8_config()
    config.model.preset = "hg2"
    config.train.batch_size = 16
    config.train.steps_per_epoch = 1500
    return config
