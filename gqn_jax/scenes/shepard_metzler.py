"""The Shepard-Metzler families: unit cubes along a self-avoiding random walk on a 3-D grid.

Each cube has its own random colour. The object is centred on the origin (the mean of its cube
centres) and seen from cameras on a sphere around it, all facing the origin.
"""

import dataclasses

import numpy as np

from gqn_jax.scenes import camera
from gqn_jax.scenes import palette

STEPS = np.array([(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)])
# Directional lights (direction of travel) and their brightness; with the headlight's ambient
# they give each face of a cube a distinct shade.
LIGHTS = (((-0.5, -0.3, -1.0), 0.6), ((0.6, 0.8, -0.2), 0.35), ((0.2, -0.7, 0.6), 0.2))


def self_avoiding_walk(rng, parts: int) -> np.ndarray:
  """Integer grid cells [parts, 3] of a random walk that never revisits a cell.

  Each step goes to a uniformly chosen free neighbour of the last cell; a walk that traps itself
  (impossible for fewer than a few dozen steps in 3-D, but handled) starts again.
  """
  while True:
    cells = [(0, 0, 0)]
    while len(cells) < parts:
      neighbours = [tuple(int(v) for v in np.add(cells[-1], step)) for step in STEPS]
      free = [cell for cell in neighbours if cell not in cells]
      if not free:
        break
      cells.append(free[int(rng.integers(len(free)))])
    if len(cells) == parts:
      return np.array(cells)


@dataclasses.dataclass(frozen=True)
class ShepardMetzler:
  """One Shepard-Metzler family (see the module docstring)."""
  name: str
  parts: int
  frames_per_scene: int = 15
  default_image_size: int = 64  # generate.py's default pixels per side.
  camera_radius: float = 7.0        # distance of every camera from the object's centre.
  max_abs_sin_pitch: float = 0.95   # keeps cameras away from the poles.

  def model_xml(self, image_size: int) -> str:
    """The MJCF model of the family, for square frames of ``image_size`` pixels."""
    # One body per cube: MuJoCo computes world-body geoms' poses once, at compile time, but
    # moves bodies every time it runs the kinematics.
    cubes = "".join(f'<body name="cube{i}"><geom name="cube{i}" type="box" size="0.5 0.5 0.5" '
                    f'material="cube"/></body>' for i in range(self.parts))
    lights = "".join(
        f'<light name="light{i}" type="directional" castshadow="false" dir="{x} {y} {z}" '
        f'diffuse="{b} {b} {b}" specular="0.15 0.15 0.15"/>'
        for i, ((x, y, z), b) in enumerate(LIGHTS))
    return f"""
<mujoco model="{self.name}">
  <option><flag contact="disable" gravity="disable"/></option>
  <statistic center="0 0 0" extent="{2 * self.camera_radius}"/>
  <visual>
    <global offwidth="{image_size}" offheight="{image_size}"
            fovy="{camera.FIELD_OF_VIEW_DEGREES}"/>
    <quality offsamples="4"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0.25 0.25 0.25" specular="0 0 0"/>
    <map znear="0.01" zfar="4"/>
  </visual>
  <default><geom contype="0" conaffinity="0"/></default>
  <asset><material name="cube" specular="0.2" shininess="0.3"/></asset>
  <worldbody>{lights}{cubes}</worldbody>
</mujoco>"""

  def sample(self, rng):
    """Draws one scene: (factors dict, cameras float32 [S, 5])."""
    cells = self_avoiding_walk(rng, self.parts)
    centre = cells.mean(axis=0)
    cubes = [{"cell": [int(v) for v in cell],
              "position": [float(v) for v in cell - centre],
              "rgb": palette.random_colour(rng)} for cell in cells]
    cameras = camera.on_sphere(rng, self.frames_per_scene, self.camera_radius,
                               self.max_abs_sin_pitch)
    return {"cubes": cubes}, cameras

  def apply(self, model, factors) -> None:
    """Writes a scene's factors into the family's compiled MuJoCo model."""
    for index, cube in enumerate(factors["cubes"]):
      model.body(f"cube{index}").pos[:] = cube["position"]
      model.geom(f"cube{index}").rgba[:] = [*cube["rgb"], 1.0]
