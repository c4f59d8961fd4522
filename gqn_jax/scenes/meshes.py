"""Vertices of the room objects that are not MuJoCo primitives: cone, icosahedron, triangle.

Each function returns vertices [V, 3] of a convex solid standing on the plane z = 0 and centred
on the z axis; MuJoCo builds the mesh as the convex hull of the vertices, so no faces are needed.
"""

import numpy as np


def cone(radius: float, height: float, segments: int = 32) -> np.ndarray:
  """A right circular cone: a ring of ``segments`` base vertices and the apex."""
  angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
  base = np.stack([radius * np.cos(angle), radius * np.sin(angle), np.zeros(segments)], axis=1)
  return np.concatenate([base, [[0.0, 0.0, height]]])


def icosahedron(circumradius: float) -> np.ndarray:
  """A regular icosahedron resting on one of its faces."""
  golden = (1 + np.sqrt(5)) / 2
  vertices = []
  for a in (-1.0, 1.0):
    for b in (-golden, golden):
      vertices += [(0, a, b), (a, b, 0), (b, 0, a)]  # three orthogonal golden rectangles
  vertices = np.array(vertices) * circumradius / np.hypot(1, golden)
  # (1, 1, 1) / sqrt(3) is the normal of the face with vertices (0, 1, g), (1, g, 0), (g, 0, 1);
  # turning it to -z lays the solid on that face.
  vertices = vertices @ _rotation_onto(np.ones(3) / np.sqrt(3), np.array([0.0, 0.0, -1.0])).T
  return vertices - [0.0, 0.0, vertices[:, 2].min()]


def triangular_prism(circumradius: float, height: float) -> np.ndarray:
  """An upright prism over an equilateral triangle with the given circumradius."""
  angle = np.pi / 2 + np.array([0.0, 2.0, 4.0]) * np.pi / 3
  triangle = np.stack([circumradius * np.cos(angle), circumradius * np.sin(angle)], axis=1)
  bottom = np.concatenate([triangle, np.zeros((3, 1))], axis=1)
  top = np.concatenate([triangle, np.full((3, 1), height)], axis=1)
  return np.concatenate([bottom, top])


def mesh_xml(name: str, vertices: np.ndarray) -> str:
  """An MJCF ``<mesh>`` asset element for ``vertices``."""
  values = " ".join(f"{value:.6f}" for value in np.asarray(vertices).reshape(-1))
  return f'<mesh name="{name}" vertex="{values}"/>'


def _rotation_onto(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """The rotation matrix that turns unit vector ``source`` onto unit vector ``target``.

  Rodrigues' formula; source and target must not be opposite.
  """
  axis = np.cross(source, target)
  cosine = float(source @ target)
  cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.eye(3) + cross + cross @ cross / (1 + cosine)
