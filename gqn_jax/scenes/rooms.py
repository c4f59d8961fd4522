"""The rooms families: a square 7 x 7 room, 1 to 3 objects, ring or free cameras.

One MuJoCo model serves every scene of a family: it holds every wall/floor pattern as a material
and, for each of the 3 object slots, one body with a geom of each of the 7 shapes. A scene picks
materials, colours, light placements and which geom of each slot is visible (geom group 0;
unused geoms stay in group 3, which MuJoCo does not draw by default), so the renderer and its
uploaded textures and meshes are reused across scenes.

Scenes are described by a plain, JSON-ready ``factors`` dict; :meth:`Rooms.apply` renders from
the factors alone, so the recorded factors reproduce the scene.
"""

import dataclasses
from typing import Literal

import numpy as np

from gqn_jax.scenes import camera
from gqn_jax.scenes import meshes
from gqn_jax.scenes import palette

# Texture repeats per unit length (texuniform materials).
ROOM_TEXTURE_REPEATS = (0.6, 2.0)

HALF_WIDTH = 3.5        # the room spans [-3.5, 3.5] in x and y.
WALL_HEIGHT = 8.0       # tall enough that no free camera sees over the walls.
MAX_OBJECTS = 3
HIDDEN_GROUP = 3        # MuJoCo's default scene options draw geom groups 0-2 only.
NUM_LIGHTS = 3
RING_RADIUS = 3.0       # ring cameras: distance from the room's centre ...
RING_HEIGHT = 1.6       # ... height above the floor ...
RING_TARGET = (0.0, 0.0, 0.5)  # ... and the point they all face.

# Shape -> (MJCF geom attributes in the object's frame, radius of its footprint). Every object
# stands on the floor (z = 0 of its body) and is about one unit tall.
SHAPES = {
    "box": ('type="box" size="0.45 0.45 0.45" pos="0 0 0.45"', 0.64),
    "sphere": ('type="sphere" size="0.5" pos="0 0 0.5"', 0.5),
    "cylinder": ('type="cylinder" size="0.45 0.45" pos="0 0 0.45"', 0.45),
    "capsule": ('type="capsule" size="0.35 0.3" pos="0 0 0.65"', 0.35),
    "cone": ('type="mesh" mesh="cone"', 0.5),
    "icosahedron": ('type="mesh" mesh="icosahedron"', 0.55),
    "triangle": ('type="mesh" mesh="triangle"', 0.55),
}
MESHES = {
    "cone": meshes.cone(radius=0.5, height=1.0),
    "icosahedron": meshes.icosahedron(circumradius=0.6),
    "triangle": meshes.triangular_prism(circumradius=0.55, height=0.9),
}
# Wall planes: name -> (centre x, y; the plane's x axis). A plane's normal is x cross z, which
# points into the room for these axes.
WALLS = {
    "north": ((0.0, HALF_WIDTH), (1, 0, 0)),
    "south": ((0.0, -HALF_WIDTH), (-1, 0, 0)),
    "east": ((HALF_WIDTH, 0.0), (0, -1, 0)),
    "west": ((-HALF_WIDTH, 0.0), (0, 1, 0)),
}


@dataclasses.dataclass(frozen=True)
class Rooms:
  """One rooms family (see the module docstring)."""
  name: str
  camera_mode: Literal["ring", "free"]
  rotate_objects: bool
  frames_per_scene: int = 10
  default_image_size: int = 64  # generate.py's default pixels per side.
  object_extent: float = 2.0  # object centres lie in [-extent, extent]^2 (ring: a disc).

  def model_xml(self, image_size: int) -> str:
    """The MJCF model of the family, for square frames of ``image_size`` pixels."""
    assets = [palette.texture_xml(f"{surface}_{pattern}", pattern)
              for surface in ("wall", "floor") for pattern in palette.PATTERNS]
    assets += [f'<material name="{surface}_{pattern}" texture="{surface}_{pattern}" '
               f'texuniform="true" specular="0.1" shininess="0.1"/>'
               for surface in ("wall", "floor") for pattern in palette.PATTERNS]
    assets += [meshes.mesh_xml(name, vertices) for name, vertices in MESHES.items()]
    first = next(iter(palette.PATTERNS))
    # Walls and floor cast no shadows (nothing in the room lies behind them from any light),
    # which keeps them out of the shadow maps: most of the rendering time on OSMesa.
    walls = [f'<geom name="wall_{name}" type="plane" material="wall_{first}" castshadow="false" '
             f'pos="{x} {y} {WALL_HEIGHT / 2}" size="{HALF_WIDTH} {WALL_HEIGHT / 2} 0.25" '
             f'xyaxes="{ax} {ay} {az} 0 0 1"/>' for name, ((x, y), (ax, ay, az)) in WALLS.items()]
    lights = [f'<light name="light{i}" mode="fixed" type="spot" castshadow="true" pos="0 0 3" '
              f'dir="0 0 -1" cutoff="70" exponent="2" attenuation="1 0 0" ambient="0 0 0" '
              f'specular="0.2 0.2 0.2"/>' for i in range(NUM_LIGHTS)]
    objects = []
    for slot in range(MAX_OBJECTS):
      geoms = "".join(f'<geom name="object{slot}_{shape}" {attributes} group="{HIDDEN_GROUP}"/>'
                      for shape, (attributes, _) in SHAPES.items())
      objects.append(f'<body name="object{slot}" pos="0 0 0">{geoms}</body>')
    return f"""
<mujoco model="{self.name}">
  <compiler angle="radian"/>
  <option><flag contact="disable" gravity="disable"/></option>
  <statistic center="0 0 1" extent="{2 * HALF_WIDTH}"/>
  <visual>
    <global offwidth="{image_size}" offheight="{image_size}"
            fovy="{camera.FIELD_OF_VIEW_DEGREES}"/>
    <quality shadowsize="{4 * image_size}" offsamples="4"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0 0 0" specular="0 0 0"/>
    <map znear="0.01" zfar="4" shadowscale="0.9"/>
  </visual>
  <default><geom contype="0" conaffinity="0"/></default>
  <asset>{"".join(assets)}</asset>
  <worldbody>
    <geom name="floor" type="plane" material="floor_{first}" castshadow="false"
          size="{HALF_WIDTH} {HALF_WIDTH} 0.25"/>
    {"".join(walls)}
    {"".join(lights)}
    {"".join(objects)}
  </worldbody>
</mujoco>"""

  def sample(self, rng):
    """Draws one scene: (factors dict, cameras float32 [S, 5])."""
    objects = self._sample_objects(rng)
    factors = {
        "wall": palette.random_surface(rng, palette.WALL_COLOURS, ROOM_TEXTURE_REPEATS),
        "floor": palette.random_surface(rng, palette.FLOOR_COLOURS, ROOM_TEXTURE_REPEATS),
        "objects": objects,
        "lights": [_light(rng) for _ in range(NUM_LIGHTS)],
    }
    if self.camera_mode == "ring":
      cameras = camera.on_ring(rng, self.frames_per_scene, RING_RADIUS, RING_HEIGHT, RING_TARGET)
    else:
      cameras = self._free_cameras(rng, objects)
    return factors, cameras

  def apply(self, model, factors) -> None:
    """Writes a scene's factors into the family's compiled MuJoCo model."""
    for surface, geoms in (("wall", [f"wall_{name}" for name in WALLS]), ("floor", ["floor"])):
      material = model.material(f"{surface}_{factors[surface]['pattern']}")
      material.rgba[:] = [*factors[surface]["rgb"], 1.0]
      material.texrepeat[:] = factors[surface]["texrepeat"]
      for name in geoms:
        model.geom(name).matid[:] = material.id
    for slot in range(MAX_OBJECTS):
      placed = factors["objects"][slot] if slot < len(factors["objects"]) else None
      body = model.body(f"object{slot}")
      if placed is not None:
        body.pos[:] = placed["position"]
        body.quat[:] = [np.cos(placed["yaw"] / 2), 0.0, 0.0, np.sin(placed["yaw"] / 2)]
      for shape in SHAPES:
        geom = model.geom(f"object{slot}_{shape}")
        visible = placed is not None and placed["shape"] == shape
        geom.group[:] = 0 if visible else HIDDEN_GROUP
        if visible:
          geom.rgba[:] = [*placed["rgb"], 1.0]
    for index, light in enumerate(factors["lights"]):
      target = model.light(f"light{index}")
      target.pos[:] = light["position"]
      target.dir[:] = light["direction"]
      target.diffuse[:] = light["diffuse"]

  def _sample_objects(self, rng):
    count = int(rng.integers(1, MAX_OBJECTS + 1))
    objects = []
    while len(objects) < count:
      shape = str(rng.choice(list(SHAPES)))
      if self.camera_mode == "ring":  # a disc, so that no object comes close to the ring.
        radius = self.object_extent * np.sqrt(rng.uniform())
        angle = rng.uniform(-np.pi, np.pi)
        x, y = radius * np.cos(angle), radius * np.sin(angle)
      else:
        x, y = rng.uniform(-self.object_extent, self.object_extent, 2)
      footprint = SHAPES[shape][1]
      if all(np.hypot(x - o["position"][0], y - o["position"][1])
             > footprint + SHAPES[o["shape"]][1] + 0.1 for o in objects):
        objects.append({
            "shape": shape,
            "rgb": palette.random_colour(rng),
            "position": [float(x), float(y), 0.0],
            "yaw": float(rng.uniform(-np.pi, np.pi)) if self.rotate_objects else 0.0,
        })
    return objects

  def _free_cameras(self, rng, objects):
    """Random positions inside the room, away from objects, each facing a random point.

    The points lie where objects may stand, so most frames show some of the scene instead of a
    blank wall; yaw and pitch still vary continuously over the whole circle.
    """
    margin = 0.5
    positions, targets = [], []
    while len(positions) < self.frames_per_scene:
      x, y = rng.uniform(-HALF_WIDTH + margin, HALF_WIDTH - margin, 2)
      z = rng.uniform(0.7, 2.0)
      target = [*rng.uniform(-self.object_extent, self.object_extent, 2), rng.uniform(0.0, 1.0)]
      if np.hypot(x - target[0], y - target[1]) > 1.5 and all(
          np.hypot(x - o["position"][0], y - o["position"][1])
          > SHAPES[o["shape"]][1] + 0.4 for o in objects):
        positions.append((x, y, z))
        targets.append(target)
    return camera.facing(np.array(positions), np.array(targets))


def _light(rng):
  """A shadow-casting spotlight high in the room, aimed at a point of the floor near its centre."""
  position = np.array([*rng.uniform(-2.8, 2.8, 2), rng.uniform(3.0, 3.8)])
  target = np.array([*rng.uniform(-1.0, 1.0, 2), 0.0])
  direction = (target - position) / np.linalg.norm(target - position)
  brightness = rng.uniform(0.25, 0.4)
  return {
      "position": [float(v) for v in position],
      "direction": [float(v) for v in direction],
      "diffuse": [float(brightness)] * 3,
  }
