"""Defaults shared by every training config (configs/*.py start from these).

Sections: data (where examples come from and how targets look), model,
train (optimizer, schedule, length, batch size), eval, runtime (distribution,
precision, XLA). Any field can be overridden on the command line, e.g.
``--config.train.batch_size=32``.
"""

import ml_collections

from tf_hourglass.data import images


def get_base_config():
    config = ml_collections.ConfigDict()

    config.data = ml_collections.ConfigDict()
    # Each split as one string, as `evaluate --data` takes it: "synthetic" (built-in
    # figures), "tfrecord:PATTERN" (converter output) or "FORMAT:ANNOTATIONS[:IMAGES]"
    # with FORMAT mpii_h5, mpii_json, lsp, lspet, flic, coco or custom (IMAGES "" =
    # next to the annotations). data.test ("" = none) is held out for the final score.
    # Empty train and val: the older fields below name the data.
    config.data.train = ""
    config.data.val = ""
    config.data.test = ""
    # The older spelling, still read when data.train and data.val are empty
    # (training.data_sources.data_splits maps it; it may not disagree with them).
    config.data.format = "synthetic"  # synthetic: train, val and (num_test > 0) test figures
    config.data.train_annotations = ""  # reader formats: annotation file; tfrecord: file pattern
    config.data.val_annotations = ""
    config.data.images_dir = ""  # reader formats: image folder ("" = next to the annotations)
    config.data.val_format = ""  # validation data in another reader format ("" = data.format)
    config.data.val_images_dir = ""  # validation images elsewhere ("" = data.images_dir)
    config.data.spec = ""  # tfrecord: the converter's PREFIX.spec.json ("" = found next to the shards)
    # Synthetic figures: examples [0, num_train) train, the next num_val
    # validate, the next num_test are held out for the final score.
    config.data.num_train = 20000
    config.data.num_val = 500
    config.data.num_test = 500
    config.data.synthetic_image_size = 256
    # Synthetic multi-person scenes: figures per scene (low, high) and figure heights as
    # fractions of the image height (SyntheticScenes' num_people and height_range).
    config.data.scene_people = (1, 8)
    config.data.scene_height_range = (0.25, 0.85)
    config.data.seed = 0
    # Targets: Gaussian sigma in heatmap pixels, and the target's peak value.
    config.data.sigma = 1.0
    config.data.target_peak = 1.0
    config.data.shuffle_buffer = 2048
    # Augmentation (the paper's: rotation +-30, scale 0.75-1.25, flip 0.5).
    config.data.rotation_degrees = 30.0
    config.data.rotation_probability = 1.0
    config.data.scale_min = 0.75
    config.data.scale_max = 1.25
    config.data.flip_probability = 0.5
    config.data.color_scale_min = 0.8
    config.data.color_scale_max = 1.2
    config.data.center_jitter = 0.0
    # Training decodes large JPEG windows at 1/2 or 1/4 when the crop shrinks them that much.
    config.data.jpeg_downscale = True
    # Image files over these are skipped (counted each epoch) when the data is opened, never decoded;
    # TFRecord images over them are skipped (counted) by the input pipeline before decoding.
    config.data.max_image_pixels = images.DEFAULT_MAX_IMAGE_PIXELS
    config.data.max_image_bytes = images.DEFAULT_MAX_IMAGE_BYTES

    config.model = ml_collections.ConfigDict()
    config.model.preset = "hg8"  # hg1, hg2, hg4, hg8, hg2_small, hg_tiny; cpm6, cpm_small, cpm_tiny
    # Overrides of the preset; 0 keeps the preset's value.
    config.model.num_stacks = 0  # hourglass presets
    config.model.num_stages = 0  # CPM presets
    config.model.filters = 0
    config.model.depth = 0
    config.model.input_size = 0
    # Start from this model instead of random weights: a .keras file, a training workdir or a
    # pretrained preset (official weights: convert them with hourglass-weights). The run trains
    # its architecture, input normalisation and weights; model.preset then names its family
    # (any hg* for an hourglass) and the overrides above stay 0. A workdir's checkpoint wins.
    config.model.init_from = ""

    config.train = ml_collections.ConfigDict()
    config.train.optimizer = "rmsprop"  # rmsprop | adam | sgd (momentum 0.9)
    # Multi-person models: the push and pull weights against a detection loss on
    # peak-1 targets (the official 1e-3 each); scaled by data.target_peak**2 with the targets.
    config.train.tag_loss_weight = 1e-3
    config.train.learning_rate = 2.5e-4
    # constant | plateau (divide by plateau_factor when the validation metric
    # stalls for plateau_patience epochs) | cosine (to 0 over all steps)
    config.train.schedule = "plateau"
    config.train.plateau_factor = 0.2
    config.train.plateau_patience = 5
    config.train.warmup_steps = 0
    config.train.epochs = 100
    config.train.steps_per_epoch = 1000
    config.train.batch_size = 6
    config.train.max_train_minutes = 0.0  # stop after this much training time (0 = no limit)
    # Resume a workdir whose config.json differs in what the run learns (epochs and runtime may always change).
    config.train.allow_config_change = False
    config.train.seed = 0

    config.eval = ml_collections.ConfigDict()
    config.eval.flip_test = True
    config.eval.decode_method = "quarter"
    config.eval.val_batches = 0  # 0 = the whole validation set each epoch
    config.eval.num_images = 6  # validation crops drawn to TensorBoard

    config.runtime = ml_collections.ConfigDict()
    config.runtime.strategy = "default"  # default | mirrored | multi_worker | tpu
    # auto | float32 | mixed_float16 | mixed_bfloat16. "auto" is mixed_bfloat16 on CPUs
    # with bfloat16 instructions (AVX512-BF16, AMX), where a training step takes ~0.6x
    # the float32 time, and float32 elsewhere (trainer.resolve_precision).
    config.runtime.precision = "auto"
    # XLA per device: "auto" (Keras') compiles on a GPU or TPU and not on CPUs,
    # where XLA builds its convolutions from Eigen instead of TensorFlow's
    # oneDNN kernels and a training step is 1.3-1.6x slower (BENCHMARKS.md,
    # "Training step against PyTorch"); also off under a distribution strategy.
    # True or False force it.
    config.runtime.jit_compile = ml_collections.FieldReference("auto", field_type=object)
    config.runtime.tpu_address = ""
    config.runtime.verbose = 1  # Keras progress bar: 1 = bar, 2 = one line per epoch

    return config
