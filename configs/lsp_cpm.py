"""LSP + LSPET, Convolutional Pose Machine (6 stages, 368x368), scored with PCK@0.2 on LSP.

    python -m tf_hourglass.train --config configs/lsp_cpm.py --workdir runs/lsp_cpm \\
        --config.data.train=lspet:/data/lspet/joints.mat:/data/lspet/images \\
        --config.data.val=lsp:/data/lsp/joints.mat:/data/lsp/images

Recipe as configs/mpii_cpm.py (the paper's: sigma 7 input pixels, scale
0.7-1.3, rotation +-40, mirroring, centre perturbation, SGD with momentum 0.9,
batch 16), with 14 joints (15 belief maps per stage, the released LSP model's
31,219,866 parameters).

Expected result: PCK@0.2 in the mid 80s on LSP (the paper reports 84.3 when
trained on LSP and LSPET, and 90.5 with MPII added).
"""

from configs.lsp_hg8 import get_config as get_lsp_hg8_config
from configs.mpii_cpm import get_config as get_mpii_cpm_config

# Where the data comes from, as for the hourglass on LSP.
LSP_DATA_FIELDS = ("train", "val")


def get_config():
    config = get_mpii_cpm_config()
    lsp_data = get_lsp_hg8_config().data
    for field in LSP_DATA_FIELDS:
        config.data[field] = lsp_data[field]
    config.train.steps_per_epoch = 1000
    return config
