"""LSP + LSPET, 8-stack hourglass, scored with PCK@0.2 (torso) on LSP.

Train on the 10,000 LSPET images, validate on the LSP annotations (14 joints):

    python -m tf_hourglass.train --config configs/lsp_hg8.py --workdir runs/lsp_hg8 \\
        --config.data.train=lspet:/data/lspet/joints.mat:/data/lspet/images \\
        --config.data.val=lsp:/data/lsp/joints.mat:/data/lsp/images

Recipe as configs/mpii_hg8.py (RMSprop 2.5e-4, plateau /5, rotation +-30,
scale 0.75-1.25, flip).

Expected result: PCK@0.2 about 90 on LSP (published hourglass results on the
LSP test set with LSPET training are 90-92).
"""

from configs.mpii_hg8 import get_config as get_mpii_hg8_config


def get_config():
    config = get_mpii_hg8_config()
    config.data.train = "lspet:data/lspet/joints.mat:data/lspet/images"
    config.data.val = "lsp:data/lsp/joints.mat:data/lsp/images"
    config.train.steps_per_epoch = 2000
    return config
