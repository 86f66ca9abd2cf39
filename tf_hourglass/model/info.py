"""What a pose model says about itself: ``ModelInfo``, saved with the model.

Everything needed to use a trained or converted network travels with it: the
model kind, the keypoint spec (names, flip pairs, skeleton, PCK normaliser),
the heatmap codec's settings (sigma, peak, decode method, background channel),
the input normalisation (the mean the model subtracts itself, if any) and the
input size. A ``PoseModel`` keeps it in ``pose_info`` and saves it in its
config (``"pose_info"``), so a ``.keras`` file is self-describing; exports
write the same dictionary beside the exported file (``info_path``).

``model_info(model)`` is the one reader for a Keras model: the model's own
info, else what can be told from the network (16 keypoints: MPII; the
training-target defaults sigma 1, peak 1, "quarter" decoding). Files are
read by ``model_loader``, which also accepts the ``inference.json`` written
beside models by earlier versions.
"""

from __future__ import annotations

import dataclasses
import json
import math

from tf_hourglass.data import keypoint_specs
from tf_hourglass.data.codec import DECODE_METHODS, HeatmapCodec
from tf_hourglass.data.records import KeypointSpec

# What the model's outputs are, and so which decoder turns them into people.
SINGLE_PERSON = "single_person"  # heatmaps of one person in a person-centred crop
MULTI_PERSON = "multi_person"  # Associative Embedding: heatmaps and tags of every person in the image
MODEL_KINDS = (SINGLE_PERSON, MULTI_PERSON)

# Written into every saved info; bumped when a field changes meaning.
INFO_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """How to use a pose network's outputs.

    Args:
        spec: the keypoints, in the model's channel order (None: unknown; the
            user must name them).
        kind: one of ``MODEL_KINDS``.
        sigma, peak: the training targets' Gaussian (heatmap pixels) and value
            at a joint; decoding divides scores by ``peak``.
        decode_method: the ``HeatmapCodec`` decoding ("quarter", "dark", "argmax").
        background_channel: the model's last heatmap channel is a background
            map (Convolutional Pose Machines), never decoded.
        input_mean: the per-channel value the network subtracts from its
            [0, 1] RGB input itself (None: it takes [0, 1] RGB as is). The
            model does it, so callers always pass [0, 1] RGB; recorded so that
            a reader of the file knows.
        input_size: (height, width) of the network input, None if any size.
    """

    spec: KeypointSpec | None = None
    kind: str = SINGLE_PERSON
    sigma: float = 1.0
    peak: float = 1.0
    decode_method: str = "quarter"
    background_channel: bool = False
    input_mean: tuple[float, ...] | None = None
    input_size: tuple[int, int] | None = None

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}; received kind={self.kind!r}.")
        for name in ("sigma", "peak"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number; received {name}={value!r}.")
        if self.decode_method not in DECODE_METHODS:
            raise ValueError(
                f"decode_method must be one of {DECODE_METHODS}; received decode_method={self.decode_method!r}."
            )
        if self.input_mean is not None:
            object.__setattr__(self, "input_mean", tuple(float(v) for v in self.input_mean))
        if self.input_size is not None:
            object.__setattr__(self, "input_size", tuple(int(s) for s in self.input_size))
        object.__setattr__(self, "sigma", float(self.sigma))
        object.__setattr__(self, "peak", float(self.peak))
        object.__setattr__(self, "background_channel", bool(self.background_channel))

    def codec(self, input_size, heatmap_size, decode_method: str | None = None) -> HeatmapCodec:
        """The ``HeatmapCodec`` that decodes this model's heatmaps (``decode_method`` overrides the saved one)."""
        return HeatmapCodec(
            input_size=input_size,
            heatmap_size=heatmap_size,
            sigma=self.sigma,
            peak=self.peak,
            decode_method=decode_method or self.decode_method,
            background_channel=self.background_channel,
        )

    def to_dict(self) -> dict:
        """The JSON-ready form saved in model configs and beside exported files."""
        return {
            "version": INFO_VERSION,
            "kind": self.kind,
            "spec": None if self.spec is None else keypoint_specs.spec_to_dict(self.spec),
            "codec": {
                "sigma": self.sigma,
                "peak": self.peak,
                "decode_method": self.decode_method,
                "background_channel": self.background_channel,
            },
            "input_mean": None if self.input_mean is None else list(self.input_mean),
            "input_size": None if self.input_size is None else list(self.input_size),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data, source: str = "model info") -> ModelInfo:
        """Inverse of ``to_dict``; also reads the ``inference.json`` of earlier versions.

        Those hold only ``spec`` and ``codec: {sigma, peak}``; the rest takes
        its default. ``source`` names the file in error messages.

        Raises:
            ValueError: not a dictionary, a newer version, or a field that does not fit.
        """
        if not isinstance(data, dict):
            raise ValueError(
                f"{source}: expected a JSON object with the model's settings; received {data!r:.80}."
            )
        version = data.get("version", INFO_VERSION)
        if not isinstance(version, int) or version > INFO_VERSION:
            raise ValueError(
                f"{source}: written by a newer tf_hourglass (model info version {version!r}; this one reads "
                f"up to {INFO_VERSION}). Upgrade tf_hourglass."
            )
        codec = data.get("codec") or {}
        try:
            spec = data.get("spec")
            return cls(
                spec=None if spec is None else keypoint_specs.spec_from_dict(spec),
                kind=data.get("kind", SINGLE_PERSON),
                sigma=codec.get("sigma", 1.0),
                peak=codec.get("peak", 1.0),
                decode_method=codec.get("decode_method", "quarter"),
                background_channel=codec.get("background_channel", False),
                input_mean=data.get("input_mean"),
                input_size=data.get("input_size"),
            )
        except (TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{source}: {error}") from error

    @classmethod
    def from_json(cls, text: str, source: str = "model info") -> ModelInfo:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise ValueError(f"{source}: not valid JSON ({str(error)[:100]}).") from error
        return cls.from_dict(data, source)


def default_spec(num_keypoints: int) -> KeypointSpec | None:
    """MPII for a 16-keypoint model (the paper's), else unknown."""
    return keypoint_specs.MPII if num_keypoints == keypoint_specs.MPII.num_keypoints else None


def model_info(model) -> ModelInfo:
    """A Keras pose model's ``ModelInfo``: its own, else the defaults its network implies."""
    info = getattr(model, "pose_info", None)
    if info is not None:
        return info
    return inferred_info(model)


def inferred_info(model) -> ModelInfo:
    """What can be told from a Keras pose network alone: sizes, mean, background map, MPII for 16 joints."""
    image_shape = getattr(model, "image_shape", None) or tuple(model.inputs[0].shape[1:])
    input_size = tuple(image_shape[:2]) if None not in tuple(image_shape[:2]) else None
    num_keypoints = getattr(model, "num_keypoints", None)
    if num_keypoints is None:
        num_keypoints = int(model.outputs[-1].shape[-1])
    return ModelInfo(
        spec=default_spec(num_keypoints),
        kind=getattr(model, "model_kind", SINGLE_PERSON),
        background_channel=bool(getattr(model, "background_channel", False)),
        input_mean=getattr(model, "input_mean", None),
        input_size=input_size,
    )


def info_for(model, spec: KeypointSpec | None, codec: HeatmapCodec | None = None, **changes) -> ModelInfo:
    """The info to save with ``model`` after training or conversion: its network's facts, ``spec`` and ``codec``."""
    fields = dict(spec=spec)
    if codec is not None:
        fields.update(
            sigma=codec.sigma,
            peak=codec.peak,
            decode_method=codec.decode_method,
            background_channel=codec.background_channel,
        )
    return dataclasses.replace(inferred_info(model), **fields, **changes)
