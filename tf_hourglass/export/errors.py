"""The errors an export raises besides ``ValueError`` (bad arguments) and ``FileExistsError``."""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export could not be produced or did not pass its own checks."""


class MissingRequirementError(ExportError):
    """A package, a GPU or a TensorFlow feature the format needs is not available here.

    The message names every missing item, so one run tells the user all that is needed.
    """


class VerificationError(ExportError):
    """The exported file disagrees with the Keras model beyond the format's tolerance."""
