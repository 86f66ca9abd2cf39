"""Camera: yaw, orthographic projection, in-plane rotation and scale.

Pixel positions are relative to the body origin until the canvas places them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tf_hourglass.data.synthetic.body import rot_y


@dataclasses.dataclass
class Camera:
    """How one figure is seen: turned by ``yaw``, projected, rotated by ``roll``, scaled."""

    yaw: float  # degrees; 0 = the figure faces the camera
    roll: float  # degrees, in-plane rotation
    pixels_per_unit: float

    def __post_init__(self):
        self.turn = rot_y(self.yaw)
        c, s = math.cos(math.radians(self.roll)), math.sin(math.radians(self.roll))
        # Image y points down, body y up.
        self.to_image = self.pixels_per_unit * np.array([[c, -s], [s, c]]) @ np.diag([1.0, -1.0])

    def depth(self, points: np.ndarray) -> np.ndarray:
        """Distance toward the camera (body units) of (..., 3) points."""
        return np.asarray(points) @ self.turn[2]

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) body points -> (..., 2) pixel coordinates."""
        turned = np.asarray(points) @ self.turn[:2].T
        return turned @ self.to_image.T

    def project_direction(self, vectors: np.ndarray) -> np.ndarray:
        """(..., 3) body vectors -> (..., 2) pixel vectors."""
        return (np.asarray(vectors) @ self.turn[:2].T) @ self.to_image.T

    def faces_camera(self, rotation: np.ndarray) -> bool:
        """Whether the forward (+z) axis of a body-frame rotation points at us."""
        return float(self.turn[2] @ rotation[:, 2]) > 0
