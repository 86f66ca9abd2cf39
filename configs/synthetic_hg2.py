"""The paper's 2-stack hourglass (hg2, 256x256) trained on synthetic figures on a CPU.

Command (the model the export benchmark in BENCHMARKS.md measures):

    python -m tf_hourglass.train --config configs/synthetic_hg2.py --workdir runs/synthetic_hg2

Expected result: about 23 minutes on a 2-core CPU (500 steps of 8, 2.6 s a
step, then the final evaluation), then ``PCKh@0.5 = 68.2%`` on 500 held-out
synthetic figures with flip test (measured 2026-12-02). It is a real hg2
with trained weights, so the int8 and QAT exports' accuracy against the float
model means something (BENCHMARKS.md, export section); it is not a converged
model.

Recipe: the quick start's (Adam with warm-up and cosine decay, peak-10
targets) at the paper's input size; sigma 2 at 64x64 equals the quick start's
sigma 1 at 32x32.
"""

from tf_hourglass.training.base_config import get_base_config


def get_config():
    config = get_base_config()
    # Data: the built-in synthetic figures, the default (data.train, data.val and data.test empty).
    config.data.num_train = 10000
    config.data.num_val = 100
    config.data.num_test = 500
    config.data.sigma = 2.0
    config.data.target_peak = 10.0

    config.model.preset = "hg2"

    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.schedule = "cosine"
    config.train.warmup_steps = 100
    config.train.epochs = 5
    config.train.steps_per_epoch = 100
    config.train.batch_size = 8
    config.train.max_train_minutes = 25.0

    config.eval.flip_test = True
    return config
