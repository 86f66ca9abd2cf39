"""MPII, Convolutional Pose Machine: the paper's 6-stage network and recipe (Wei et al., CVPR 2016).

Data as configs/mpii_hg8.py (the original Hourglass HDF5 annotations and the
MPII images; TFRecords of person crops make the input cheaper):

    python -m tf_hourglass.train --config configs/mpii_cpm.py --workdir runs/mpii_cpm \\
        --config.data.train=mpii_h5:/data/mpii/annot/train.h5:/data/mpii/images \\
        --config.data.val=mpii_h5:/data/mpii/annot/valid.h5:/data/mpii/images

Recipe of the paper and its released Caffe training: the 6-stage network at
368x368 (46x46 belief maps, K+1 with the background), a Gaussian centre map
beside the image, Gaussian targets of sigma 7 input pixels (0.875 belief-map
pixels), augmentation by scale 0.7-1.3, rotation +-40 degrees, mirroring and
a centre perturbation of up to 40 of the 368 pixels, batch 16, all stages
trained jointly by SGD with momentum 0.9. Caffe's Euclidean loss sums the
squared errors over the 46x46x17 maps (and halves them) where ours averages
them, so our learning rate of 1.0 equals 5.6e-5 on Caffe's loss; it is
divided by 3 when validation PCKh stalls (Caffe's step decay by 0.333).

Expected result: validation PCKh@0.5 Total in the high 80s on the 2,958-person
split (the paper reports 87.95 on the MPII test set), after days on a GPU.
"""

from tf_hourglass.training.base_config import get_base_config


def get_config():
    config = get_base_config()
    config.data.train = "mpii_h5:data/mpii/annot/train.h5:data/mpii/images"
    config.data.val = "mpii_h5:data/mpii/annot/valid.h5:data/mpii/images"
    config.data.sigma = 7.0 / 8.0  # 7 input pixels at stride 8
    config.data.target_peak = 1.0
    config.data.rotation_degrees = 40.0
    config.data.scale_min = 0.7
    config.data.scale_max = 1.3
    config.data.flip_probability = 0.5
    config.data.center_jitter = 40.0 / 368.0  # of the crop side

    config.model.preset = "cpm6"

    config.train.optimizer = "sgd"
    config.train.learning_rate = 1.0
    config.train.schedule = "plateau"
    config.train.plateau_factor = 1.0 / 3.0
    config.train.plateau_patience = 5
    config.train.epochs = 100
    config.train.steps_per_epoch = 2000
    config.train.batch_size = 16

    config.eval.flip_test = True
    return config
