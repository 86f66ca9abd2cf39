"""Shared by the training tests: a tiny synthetic-data config and log readers."""

import glob
import importlib.util
from pathlib import Path

import tensorflow as tf

TINY_CONFIG = """
from tf_hourglass.training.base_config import get_base_config


def get_config():
    config = get_base_config()
    config.data.num_train = 48
    config.data.num_val = 8
    config.data.num_test = 8
    config.data.synthetic_image_size = 128
    config.data.target_peak = 5.0
    config.model.preset = "hg_tiny"
    config.model.depth = 1  # fewer layers: quicker to trace
    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.schedule = "constant"
    config.train.epochs = {epochs}
    config.train.steps_per_epoch = 3
    config.train.batch_size = 4
    config.eval.flip_test = False  # one model call per evaluated batch: quicker
    config.eval.num_images = 2
    config.runtime.jit_compile = False
    config.runtime.verbose = 2
    return config
"""


def write_tiny_config(directory, epochs=2) -> Path:
    """A config file for a run of ``epochs`` x 3 steps of the tiny model on 48 synthetic figures."""
    path = Path(directory) / f"tiny_{epochs}.py"
    path.write_text(TINY_CONFIG.format(epochs=epochs))
    return path


def load_config(path):
    spec = importlib.util.spec_from_file_location("config_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def tensorboard_tags(log_dir) -> set:
    tags = set()
    for path in glob.glob(str(Path(log_dir) / "**" / "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    return tags
