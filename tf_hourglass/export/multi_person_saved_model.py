"""The SavedModel of a multi-person (Associative Embedding) model: photos in, people out, for TF Serving.

Every step of ``prediction.multi_person.predict_people`` (the official
test.py at one scale, flip test on) runs inside the graph:

1. each photo is letterboxed into the model's square input by the official
   transform (``letterbox_matrices``, the photo's longer side spans the input)
   and warped bilinearly (``transforms.warp_image``), uint8 -> [0, 1];
2. the network runs on the inputs and their mirrors; the last stack's
   heatmaps of the two are summed (the mirror's unflipped), halved and clipped
   at 1 (an image whose summed pair exceeds 10 gets nobody, as test.py), its
   first tag component of both stacked (D = 2);
3. people are grouped in graph ops (``data.grouping_tf``: the codec's
   grouping settings, the official test.py's by default; a Hungarian
   minimum-cost assignment where the official code uses Munkres, see there),
   scored before refinement, refined;
4. heatmap coordinates times the stride are input pixels; the inverse
   letterbox takes them to the photo's pixels.

Signatures (N is dynamic; P = ``max_people``, 30 by default; K keypoints):

==================  ==========================================  =======================================
signature           inputs                                      outputs
==================  ==========================================  =======================================
``serving_default`` ``images`` uint8 [N, H, W, 3] (RGB),        ``num_people`` int32 [N],
                    H, W any size, the same within a request    ``keypoints`` float32 [N, P, K, 2]
``serving_bytes``   ``image_bytes`` string [N]: encoded JPEG,   (x, y) photo pixels,
                    PNG, BMP or GIF, each image its own size    ``keypoint_scores`` float32 [N, P, K],
                                                                ``scores`` float32 [N, P]
==================  ==========================================  =======================================

Image i's people are rows ``0 .. num_people[i] - 1``, strongest first (by
``scores``, the mean detection value of the K joints before refinement, as
test.py); the rows after them are zero. ``keypoint_scores`` is each joint's
detection value: 1 for a joint filled in by refinement (as the official
code), 0 for a joint not found, whose ``keypoints`` are then (0, 0). TF
Serving's batching joins requests of equal shapes only: photos of different
sizes go to ``serving_bytes`` or one request each. Invalid inputs fail with an
``InvalidArgumentError`` naming the problem, as the single-person signatures.
"""

from __future__ import annotations

import tensorflow as tf

from tf_hourglass.data import grouping_tf, transforms
from tf_hourglass.data.ae_codec import AssociativeEmbeddingCodec
from tf_hourglass.export.saved_model import (
    checked_shape,
    checked_size,
    crop_encoded,
    fixed_input_size,
    guarded,
    network_function,
    track_captured_variables,
)
from tf_hourglass.model.associative_embedding import split_outputs
from tf_hourglass.model.info import MULTI_PERSON, model_info

MULTI_PERSON_SIGNATURES = ("serving_default", "serving_bytes")
MAX_PEOPLE = 30
# test.py leaves out a scale whose summed image + mirror heatmap exceeds this somewhere.
MAX_HEATMAP_SUM = 10.0


def letterbox_matrices(image_height, image_width, side: int):
    """The official photo -> input matrix [3, 3] float32 (``prediction.multi_person.letterbox_matrix``) in TF ops."""
    height = tf.cast(image_height, tf.float32)
    width = tf.cast(image_width, tf.float32)
    longer = tf.maximum(height, width)
    zoom = side / longer
    return tf.stack(
        [
            tf.stack([zoom, 0.0, side * (-(width / 2.0) / longer + 0.5)]),
            tf.stack([0.0, zoom, side * (-(height / 2.0) / longer + 0.5)]),
            tf.constant([0.0, 0.0, 1.0]),
        ]
    )


def unflip_maps(maps, flip_permutation):
    """Maps [N, H, W, K] of mirrored inputs -> of the inputs (``grouping.unflip_maps`` in TF ops)."""
    return tf.gather(tf.reverse(maps, axis=[2]), list(flip_permutation), axis=3)


def people_function(
    network, codec: AssociativeEmbeddingCodec, flip_permutation, max_people: int = MAX_PEOPLE
):
    """``(inputs [N, S, S, 3] in [0, 1], matrices [N, 3, 3]) -> the signatures' outputs`` (steps 2 to 4).

    ``network`` maps inputs to the last stack's output [N, S/4, S/4, C];
    ``matrices`` are the photo -> input transforms.
    """
    options = dict(codec.grouping_options)
    if not options.pop("adjust", True):
        raise ValueError(
            f"The SavedModel groups with the quarter-pixel adjustment; the codec has adjust=False: {codec}."
        )
    options.pop("max_people", None)
    num_keypoints, tag_dim, stride = codec.num_keypoints, codec.tag_dim, codec.stride

    def people(inputs, matrices):
        count = tf.shape(inputs)[0]
        outputs = network(tf.concat([inputs, tf.reverse(inputs, axis=[2])], axis=0))
        heatmaps, tags = split_outputs(outputs, num_keypoints, tag_dim)
        heatmaps = heatmaps / codec.peak  # in the official scale, as codec.unit_heatmaps
        tags = tags[..., 0]  # test.py groups with the first tag component of the image and of its mirror
        pair = heatmaps[:count] + unflip_maps(heatmaps[count:], flip_permutation)
        kept = tf.reduce_max(pair, axis=[1, 2, 3], keepdims=True) <= MAX_HEATMAP_SUM
        merged = tf.minimum(pair / 2.0, 1.0) * tf.cast(kept, tf.float32)
        both_tags = tf.stack([tags[:count], unflip_maps(tags[count:], flip_permutation)], axis=-1)
        grouped, scores, num_people = grouping_tf.group_people(
            merged, both_tags, max_people=max_people, **options
        )
        inverse = tf.linalg.inv(matrices)
        points = grouped[..., :2] * float(stride)  # input pixels
        photo = tf.einsum("npkj,nij->npki", points, inverse[:, :2, :2]) + inverse[:, None, None, :2, 2]
        found = grouped[..., 2] > 0
        return {
            "num_people": num_people,
            "keypoints": tf.where(found[..., None], photo, 0.0),
            "keypoint_scores": grouped[..., 2],
            "scores": scores,
        }

    return people


def multi_person_serving_module(
    model, codec: AssociativeEmbeddingCodec, flip_permutation, max_people: int = MAX_PEOPLE
) -> tf.Module:
    """A ``tf.Module`` with ``serving_default`` and ``serving_bytes`` (module docstring) as ``tf.function`` s."""
    kind = model_info(model).kind
    if kind != MULTI_PERSON:
        raise ValueError(
            f"{model.name} is a {kind} model; the multi-person SavedModel groups the heatmaps and tags of a "
            "multi-person (Associative Embedding) model. export_model writes each kind's own SavedModel."
        )
    height, width = fixed_input_size(model)
    if height != width or tuple(codec.input_size) != (height, width):
        raise ValueError(
            f"The multi-person SavedModel letterboxes photos into a square input given by the codec; "
            f"received a model input of {(height, width)} and a codec input of {codec.input_size}."
        )
    side = height
    network = network_function(model)
    people = people_function(
        lambda inputs: network(inputs)["heatmaps"], codec, flip_permutation, max_people=max_people
    )

    def letterbox(image):
        shape = tf.shape(image)
        matrix = letterbox_matrices(shape[0], shape[1], side)
        return transforms.warp_image(image, matrix, (side, side)) / 255.0, matrix

    def serving_default(images):
        images = checked_shape(images, [None, None, None, 3], "images must be uint8 [N, H, W, 3] (RGB)")
        images = checked_size(images)
        inputs, matrices = tf.map_fn(
            letterbox,
            images,
            fn_output_signature=(
                tf.TensorSpec([side, side, 3], tf.float32),
                tf.TensorSpec([3, 3], tf.float32),
            ),
        )
        return people(inputs, matrices)

    def serving_bytes(image_bytes):
        image_bytes = checked_shape(image_bytes, [None], "image_bytes must be a string vector [N]")
        image_bytes = guarded(
            tf.size(image_bytes) > 0,
            "image_bytes must hold at least one image; received",
            image_bytes,
            image_bytes,
        )
        inputs, matrices = crop_encoded(
            image_bytes, (side, side), lambda height, width: letterbox_matrices(height, width, side)
        )
        return people(inputs, matrices)

    module = tf.Module(name="tf_hourglass_people")
    module.serving_default = tf.function(
        serving_default, input_signature=[tf.TensorSpec(None, tf.uint8, name="images")], autograph=False
    )
    module.serving_bytes = tf.function(
        serving_bytes, input_signature=[tf.TensorSpec(None, tf.string, name="image_bytes")], autograph=False
    )
    module.network = network
    track_captured_variables(module, [module.serving_default, module.serving_bytes])
    return module


def export_multi_person_saved_model(
    model, codec: AssociativeEmbeddingCodec, flip_permutation, path: str, max_people: int = MAX_PEOPLE
) -> None:
    """Writes the multi-person serving SavedModel (signatures in the module docstring) to ``path``."""
    module = multi_person_serving_module(model, codec, flip_permutation, max_people)
    signatures = {name: getattr(module, name) for name in MULTI_PERSON_SIGNATURES}
    tf.saved_model.save(module, path, signatures=signatures)
