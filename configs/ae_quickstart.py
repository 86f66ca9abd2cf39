"""Multi-person quick start: a small Associative Embedding network learns synthetic scenes on a CPU.

Command:

    python -m tf_hourglass.train --config configs/ae_quickstart.py --workdir runs/ae_quickstart

Then every person in your own photos: ``hourglass-predict --model runs/ae_quickstart --input photos/
--output out/``.

What it does: ``ae_small_fine`` (the official layout with ``PoseNet(bn=True)``'s
BatchNorms, 2 stacks, 64 features growing by 32 per level, a 32/64 stem
without its max-pool, so 128x128 input and 64x64 outputs; 4.4 M parameters)
on built-in scenes of 1 to 4 figures 35-90% of the image tall that overlap
and occlude each other (COCO's 17 joints; ``data/synthetic/scenes.py``), with
the paper's whole-image augmentation (rotation +-30, scale 0.75-1.25,
translation, flip) and the official loss (heatmap MSE; push and pull, see
below), for at most 20 minutes of training. Each epoch prints the validation
AP; the end prints ``AP = NN.N``, the COCO keypoint AP (pycocotools OKS with
COCO's per-joint sigmas, which the synthetic joints use:
``SYNTHETIC_OKS_SIGMAS``) on 100 held-out scenes, flip test on, decoded as the
official test does.

Why this recipe (measured, BENCHMARKS.md "Multi-person quick start"): without
BatchNorm, or at 256x256 input, 750 steps are all 20 minutes allow and the
tags never leave zero (AP 0.1-7); with BatchNorm at 128x128 the tags separate
people after about 1,000 steps. At the official stride 4 (32x32 maps,
``ae_small_bn``) the AP stops at 28-37: even grouped by the ground truth its
joints give AP 50, placed 1.8 px (median) from the truth. At stride 2 they
are 1.3-1.6 px away and the ground-truth grouping gives 61-67, so the tags
decide (``benchmarks/people_diagnostics.py`` measures both). Targets of peak 10 leave the all-zero plateau at once (decoding
divides by the peak); the push and pull weights scale with the peak squared,
so ``train.tag_loss_weight`` means what the official 1e-3 means; 3e-3 separates
the people's tags better in this budget (AP 39.9 against 23.1 with 1e-3 at
stride 2, that run on a shared machine); 1e-2 destabilised training
(validation AP fell from 9 to 2 at epoch 8).

Expected result: held-out ``AP = 39.9`` (AP50 67.7, AP75 41.0) after 2,800
steps in 1,170 s of training on a 2-core Xeon (run e9; 37.1 with
``--config.train.seed=1``). The issue's target,
AP >= 60, is not reached: grouped by the ground truth the same heatmaps give
61.6, so what is left is the tags (22% of pairs of people in a scene have
mean tags less than 0.5 apart). Three times the budget
(``--config.train.epochs=84 --config.train.max_train_minutes=62``) gives 49.1 after
8,400 steps (true grouping 67.6, 17% of pairs closer than 0.5).
"""

from tf_hourglass.training.base_config import get_base_config


def get_config():
    config = get_base_config()
    config.data.format = "synthetic"
    config.data.num_train = 2000
    config.data.num_val = 30
    config.data.num_test = 100
    config.data.synthetic_image_size = 128
    config.data.scene_people = (1, 4)
    config.data.scene_height_range = (0.35, 0.9)
    config.data.shuffle_buffer = 512
    # sigma 2 at 64x64 (4 input pixels, as the single-person quick start); a peak of 10
    # (decoding divides by it) makes the all-zero output costly, without which a small
    # model sits on that plateau for its whole budget.
    config.data.sigma = 2.0
    config.data.target_peak = 10.0

    config.model.preset = "ae_small_fine"

    config.train.optimizer = "adam"
    config.train.learning_rate = 2e-3
    config.train.schedule = "cosine"
    config.train.warmup_steps = 100
    config.train.epochs = 28
    config.train.steps_per_epoch = 100
    config.train.tag_loss_weight = 3e-3
    config.train.batch_size = 16
    config.train.max_train_minutes = 20.0

    config.eval.flip_test = True
    config.runtime.jit_compile = "auto"
    return config
