"""CPM quick start: a small Convolutional Pose Machine learns synthetic figures on a CPU.

Command:

    python -m tf_hourglass.train --config configs/cpm_quickstart.py --workdir runs/cpm_quickstart

Expected result: 2,000 steps of 16 in about 15 minutes on a 2-core CPU
(capped at 20), then ``PCKh@0.5 = 49.5%`` on the same 500 held-out synthetic
figures as the hourglass quick start (measured 2026-12-02 in graph mode; the
hourglass reaches 85-87% in 15 minutes). The learning curve is in BENCHMARKS.md.

Model: ``cpm_small``, the paper's topology (two 9x9 image trunks, a centre
map, K+1 belief maps at stride 8, every stage supervised) with 32 channels,
3 stages and 7x7 stage kernels at 128x128 (16x16 belief maps). Recipe: the
hourglass quick start's (Adam with warm-up and cosine decay, peak-10 targets)
with the paper's sigma of 7 input pixels (0.875 belief-map pixels) and a lower
rate: without BatchNorm, deep plain ReLU stacks take smaller steps.
"""

from tf_hourglass.training.base_config import get_base_config


def get_config():
    config = get_base_config()
    # Data: the built-in synthetic figures, the default (data.train, data.val and data.test empty).
    config.data.num_train = 10000
    config.data.num_val = 100
    config.data.num_test = 500
    config.data.sigma = 7.0 / 8.0
    config.data.target_peak = 10.0

    config.model.preset = "cpm_small"

    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.schedule = "cosine"
    config.train.warmup_steps = 200
    config.train.epochs = 20
    config.train.steps_per_epoch = 100
    config.train.batch_size = 16
    config.train.max_train_minutes = 20.0

    config.eval.flip_test = True
    # Graph mode: XLA's training steps are twice as slow here (cpm_small,
    # batch 16, B-type Xeon: 0.43 s graph against 0.85 s XLA).
    config.runtime.jit_compile = "auto"  # graph mode on CPUs, XLA on a GPU
    return config
