"""SavedModels: the whole pose estimator for TF Serving, and the bare network for converters.

``export_saved_model`` writes a SavedModel whose signatures take whole photos
and return keypoints in the photo's pixels. Cropping, resizing, normalisation
and heatmap decoding all run inside the graph, with the same code as training
and evaluation (``data.crop``, ``transforms.warp_image``, ``prediction.single_person.predict_keypoints``).

Signatures (N is dynamic; H, W any size, the same within one request):

==================  ================================================  =============================
signature           inputs                                            outputs
==================  ================================================  =============================
``serving_default`` ``images`` uint8 [N, H, W, 3] (RGB, 0..255)       ``keypoints`` float32 [N, K, 2]
``serving_boxes``   ``images`` uint8 [N, H, W, 3],                    (x, y) in the photo's pixels,
                    ``boxes`` float32 [N, 4] (x, y, w, h)             ``scores`` float32 [N, K]
``serving_float``   ``images`` float32 [N, H, W, 3] in [0, 1],
                    ``boxes`` float32 [N, 4]
``serving_bytes``   ``image_bytes`` string [N]: encoded JPEG, PNG,
                    BMP or GIF (base64 ``{"b64": ...}`` over REST),
                    each image its own size
``heatmaps``        ``images`` float32 [N, h, w, 3] in [0, 1]:        ``heatmaps`` float32
                    person crops at the network's input size          [N, h/4, w/4, K], last stack
==================  ================================================  =============================

Person crops follow the readers' convention (``data.crop``):
the square of side ``1.25 * max(w, h)`` centred on the box, zoomed to the
network input. A box of all zeros means "the whole image", i.e. the box
(0, 0, W, H), as ``prediction.estimator.PoseEstimator`` does without a box;
``serving_default`` and ``serving_bytes`` always use the whole image. Scores
are heatmap maxima divided by the training target's peak (``HeatmapCodec.peak``).
TF Serving signatures cannot have optional inputs, hence one signature with
boxes and one without. ``heatmaps`` exposes only the last stack, the one every
prediction uses; earlier stacks are training aids.

The serving inputs are declared with unknown rank and their shapes are
checked in the graph, so invalid requests fail with ``InvalidArgumentError``
naming the problem: a wrong rank or channel count (the message shows the
shape received), a box with w <= 0 or h <= 0 (other than all zeros) or
non-finite values, a boxes batch that differs from the images batch, an
empty image, float images outside [0, 1]. A wrong dtype is rejected by the
signature itself ("expected to be a uint8 tensor but is a float tensor").
"""

from __future__ import annotations

import tensorflow as tf

from tf_hourglass.data import crop, transforms
from tf_hourglass.data.codec import HeatmapCodec
from tf_hourglass.model import keypoint_heatmaps
from tf_hourglass.model.folding import fold_batch_norms
from tf_hourglass.prediction.single_person import predict_keypoints

SERVING_SIGNATURES = ("serving_default", "serving_boxes", "serving_float", "serving_bytes", "heatmaps")


def fixed_input_size(model) -> tuple[int, int]:
    """(height, width) of the network input; exports need it fixed."""
    size = tuple(model.inputs[0].shape[1:3])
    if any(s is None for s in size):
        raise ValueError(
            f"Exports need a fixed input size; the model takes input shape {tuple(model.inputs[0].shape)}. "
            "Rebuild it with input_shape=(height, width, 3) and copy the weights."
        )
    return int(size[0]), int(size[1])


def network_function(model, batch_size: int | None = None) -> tf.function:
    """``images [B, H, W, 3] float32 -> {"heatmaps": last stack's K maps}`` as a ``tf.function``.

    Models that take a centre map (CPM) get a centred one inside the graph,
    and their background map is dropped, so exports take only images. The
    graph is the model's inference graph (``folding.fold_batch_norms``).

    ``autograph=False`` as in Keras' own exporter: autograph would turn the
    layers' Python ``training`` branches into graph conditionals that hold the
    BatchNorm updates, and converters then cannot freeze the variables.
    """
    height, width = fixed_input_size(model)
    spec = tf.TensorSpec([batch_size, height, width, 3], tf.float32, name="images")
    # Every export runs the inference graph: BatchNorms after convolutions folded into them.
    network = fold_batch_norms(model)

    def heatmaps(images):
        return {"heatmaps": keypoint_heatmaps(model, images, network=network)}

    return tf.function(heatmaps, input_signature=[spec], autograph=False)


def track_captured_variables(module: tf.Module, functions) -> None:
    """Makes the tf.Variables the traced functions capture children of ``module``.

    Saving the Keras model object itself instead would also save its Keras
    wrappers, and TFLite then keeps the weights as mutable resource variables
    (READ_VARIABLE ops that fail at run time) instead of freezing them.
    """
    captured, seen = [], set()
    for function in functions:
        for variable in function.get_concrete_function().variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                captured.append(variable)
    module.network_variables = captured


def save_network(model, path: str, batch_size: int | None = None) -> None:
    """The bare network as a SavedModel: ``serving_default`` images -> last-stack heatmaps."""
    module = tf.Module(name="tf_hourglass_network")
    module.heatmaps = network_function(model, batch_size)
    track_captured_variables(module, [module.heatmaps])
    tf.saved_model.save(module, path, signatures={"serving_default": module.heatmaps})


# ----- crops inside the graph --------------------------------------------------


def guarded(condition, message: str, data, tensor):
    """``tensor``, computable only once ``condition`` held; else an error with ``message`` and ``data``.

    The control dependency orders the check before the work that would fail
    with a less helpful message.
    """
    check = tf.debugging.Assert(condition, [message, data], summarize=16)
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def checked_shape(tensor, shape, description: str):
    """``tensor`` with the static ``shape``, after checking its actual shape at run time.

    Serving inputs are declared with an unknown rank: a concrete function does
    not check shapes, so a wrong rank would otherwise fail deep inside the
    graph with a message about TensorLists; this fails first, saying what
    was expected and what was received.
    """
    actual = tf.shape(tensor)
    fixed = [(axis, size) for axis, size in enumerate(shape) if size is not None]

    def sizes_match():
        return tf.reduce_all(
            tf.stack([tf.constant(True)] + [tf.equal(actual[axis], size) for axis, size in fixed])
        )

    matches = tf.cond(tf.equal(tf.size(actual), len(shape)), sizes_match, lambda: tf.constant(False))
    return tf.ensure_shape(guarded(matches, f"{description}; received shape", actual, tensor), shape)


def crop_matrices(boxes, image_height, image_width, input_size):
    """Forward crop matrices [N, 3, 3] (image pixels -> input pixels) for person boxes [N, 4].

    ``crop.box_crop_matrices`` after checking the boxes; all-zero boxes become
    the whole image (0, 0, W, H).
    """
    boxes = tf.cast(boxes, tf.float32)
    whole = tf.reduce_all(tf.equal(boxes, 0.0), axis=-1)
    positive = (boxes[:, 2] > 0.0) & (boxes[:, 3] > 0.0)
    finite = tf.reduce_all(tf.math.is_finite(boxes), axis=-1)
    boxes = guarded(
        tf.reduce_all(finite & (whole | positive)),
        "boxes must be finite (x, y, w, h) with w > 0 and h > 0, or all zero for the whole image; "
        "received boxes",
        boxes,
        boxes,
    )
    # As inference.check_box: a box that misses the image, or barely touches it, gives a crop of padding.
    x, y, w, h = tf.unstack(boxes, axis=-1)
    width, height = tf.cast(image_width, tf.float32), tf.cast(image_height, tf.float32)
    overlap_w = tf.minimum(x + w, width) - tf.maximum(x, 0.0)
    overlap_h = tf.minimum(y + h, height) - tf.maximum(y, 0.0)
    overlaps = (
        (overlap_w > 0.0)
        & (overlap_h > 0.0)
        & (overlap_w >= crop.MIN_BOX_OVERLAP * w)
        & (overlap_h >= crop.MIN_BOX_OVERLAP * h)
    )
    boxes = guarded(
        tf.reduce_all(whole | overlaps),
        f"boxes must overlap the image by at least {crop.MIN_BOX_OVERLAP:.0%} of their width and height; "
        "received image height and width, then the boxes",
        tf.concat([tf.stack([height, width]), tf.reshape(boxes, [-1])], 0),
        boxes,
    )
    whole_box = tf.stack([0.0, 0.0, width, height])
    boxes = tf.where(whole[:, None], whole_box[None, :], boxes)
    return crop.box_crop_matrices(boxes, input_size)


def checked_size(images):
    """``images`` [N, H, W, C], checked to hold at least one image of height and width > 0."""
    shape = tf.shape(images)
    message = "images must hold at least one image, of height > 0 and width > 0; received shape"
    return guarded(tf.reduce_all(shape[:3] > 0), message, shape, images)


def crop_images(images, boxes, input_size, pixel_scale: float):
    """Person crops [N, h, w, 3] in [0, 1] and their matrices from same-size images [N, H, W, 3].

    ``pixel_scale`` turns image values into [0, 1] (1/255 for uint8).
    """
    images = checked_size(images)
    shape = tf.shape(images)
    boxes = guarded(
        tf.equal(tf.shape(boxes)[0], shape[0]),
        "boxes must have one row per image; received images of shape, boxes of shape",
        tf.stack([shape, tf.concat([tf.shape(boxes), [0, 0]], 0)]),
        boxes,
    )
    matrices = crop_matrices(boxes, shape[1], shape[2], input_size)
    crops = tf.map_fn(
        lambda image_matrix: transforms.warp_image(image_matrix[0], image_matrix[1], input_size),
        (images, matrices),
        fn_output_signature=tf.TensorSpec([*input_size, 3], tf.float32),
    )
    return crops * pixel_scale, matrices


# The formats tf.io.decode_image reads, by their first bytes.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")


def crop_encoded(image_bytes, input_size, whole_image_matrix=None):
    """Whole-image crops [N, h, w, 3] in [0, 1] and matrices from encoded images [N] of any sizes.

    ``whole_image_matrix(height, width)`` gives an image's matrix [3, 3]; by
    default the whole-image box crop (``crop_matrices`` of an all-zero box).
    """
    if whole_image_matrix is None:

        def whole_image_matrix(height, width):
            return crop_matrices(tf.zeros([1, 4]), height, width, input_size)[0]

    def crop_one(encoded_index):
        encoded, index = encoded_index
        # decode_image's own error names neither the input nor which of the batch.
        known = tf.reduce_any([tf.strings.substr(encoded, 0, len(magic)) == magic for magic in _IMAGE_MAGIC])
        encoded = guarded(
            known,
            tf.strings.format(
                "image_bytes[{}] is not an image: Unknown image file format (empty, or not JPEG, PNG, "
                "GIF or BMP); its first bytes",
                index,
            ),
            tf.strings.substr(encoded, 0, 8),
            encoded,
        )
        image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
        image = checked_size(image[None])[0]
        shape = tf.shape(image[None])
        matrix = whole_image_matrix(shape[1], shape[2])
        return transforms.warp_image(image, matrix, input_size) / 255.0, matrix

    return tf.map_fn(
        crop_one,
        (image_bytes, tf.range(tf.shape(image_bytes)[0])),
        fn_output_signature=(
            tf.TensorSpec([*input_size, 3], tf.float32),
            tf.TensorSpec([3, 3], tf.float32),
        ),
    )


# ----- the serving module -------------------------------------------------------


def serving_module(model, codec: HeatmapCodec) -> tf.Module:
    """A ``tf.Module`` with the signatures above as traced ``tf.function`` attributes."""
    input_size = fixed_input_size(model)
    if tuple(codec.input_size) != input_size:
        raise ValueError(f"The codec's input size {codec.input_size} differs from the model's {input_size}.")
    network = network_function(model)

    def network_heatmaps(crops, training=False):
        return network(crops)["heatmaps"]

    def predict(crops, matrices):
        keypoints, _, scores = predict_keypoints(network_heatmaps, crops, matrices, codec)
        return {"keypoints": keypoints, "scores": scores}

    # Unknown ranks, checked by ``checked_shape`` (see there why).
    uint8_images = tf.TensorSpec(None, tf.uint8, name="images")
    float_images = tf.TensorSpec(None, tf.float32, name="images")
    boxes_spec = tf.TensorSpec(None, tf.float32, name="boxes")
    bytes_spec = tf.TensorSpec(None, tf.string, name="image_bytes")

    def check_images(images, dtype):
        return checked_shape(images, [None, None, None, 3], f"images must be {dtype} [N, H, W, 3] (RGB)")

    def check_boxes(boxes):
        return checked_shape(boxes, [None, 4], "boxes must be float32 [N, 4] (x, y, w, h)")

    def serving_default(images):
        images = check_images(images, "uint8")
        boxes = tf.zeros([tf.shape(images)[0], 4])
        return predict(*crop_images(images, boxes, input_size, 1.0 / 255.0))

    def serving_boxes(images, boxes):
        images, boxes = check_images(images, "uint8"), check_boxes(boxes)
        return predict(*crop_images(images, boxes, input_size, 1.0 / 255.0))

    def serving_float(images, boxes):
        images, boxes = check_images(images, "float32"), check_boxes(boxes)
        # A float image in 0..255 would otherwise give confident nonsense.
        low, high = tf.reduce_min(images), tf.reduce_max(images)
        images = guarded(
            (low >= 0.0) & (high <= 1.0),
            "serving_float takes images in [0, 1] (uint8 0..255 images go to serving_boxes); received min, max",
            tf.stack([low, high]),
            images,
        )
        return predict(*crop_images(images, boxes, input_size, 1.0))

    def serving_bytes(image_bytes):
        image_bytes = checked_shape(image_bytes, [None], "image_bytes must be a string vector [N]")
        image_bytes = guarded(
            tf.size(image_bytes) > 0,
            "image_bytes must hold at least one image; received",
            image_bytes,
            image_bytes,
        )
        return predict(*crop_encoded(image_bytes, input_size))

    module = tf.Module(name="tf_hourglass_pose")
    signature_specs = {
        "serving_default": (serving_default, [uint8_images]),
        "serving_boxes": (serving_boxes, [uint8_images, boxes_spec]),
        "serving_float": (serving_float, [float_images, boxes_spec]),
        "serving_bytes": (serving_bytes, [bytes_spec]),
    }
    for name, (function, specs) in signature_specs.items():
        setattr(module, name, tf.function(function, input_signature=specs, autograph=False))
    module.heatmaps = network
    track_captured_variables(module, [getattr(module, name) for name in SERVING_SIGNATURES])
    return module


def export_saved_model(model, codec: HeatmapCodec, path: str) -> None:
    """Writes the serving SavedModel (signatures in the module docstring) to ``path``."""
    module = serving_module(model, codec)
    signatures = {name: getattr(module, name) for name in SERVING_SIGNATURES}
    tf.saved_model.save(module, path, signatures=signatures)
