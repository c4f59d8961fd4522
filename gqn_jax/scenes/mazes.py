"""The mazes family: DeepMind Lab-style maze levels seen by a first-person camera.

A level is a 7 x 7 grid of cells, each a wall block or free floor, inside a ring of border walls.
Its layout comes from labmaze (DeepMind Lab's own maze generator, installed with dm_control):
corridors one cell wide and one or two rectangular rooms. Walls, corridor floor and each room's
floor have their own textures; a gradient sky is seen above the walls. Cameras stand at eye height
at random points of free cells, facing random headings, level (pitch 0), as an agent walking
through the level would see it.

The layout is recorded in the factors as ``cells``: 7 strings, one per grid row, ``*`` for a wall
and ``.`` for free floor. Row 0 is the north edge (largest y), column 0 the west edge (smallest
x): cell (row, column) is the unit square centred at ``cell_centre(row, column)``, so printing the
rows gives a top-down map with north up. The grid spans [-3.5, 3.5] in x and y, like a room.

As for rooms, one MuJoCo model serves every scene: it holds a wall block and a floor tile for
every cell, and a scene shows the blocks of its wall cells and the tiles of its free cells
(geom group 0; the rest stay in group 3, which MuJoCo does not draw by default).
"""

import dataclasses

import numpy as np

from gqn_jax import extras
from gqn_jax.scenes import camera
from gqn_jax.scenes import palette

# Texture repeats per unit length (texuniform materials).
MAZE_TEXTURE_REPEATS = (1.0, 3.0)

GRID = 7                # cells per side.
HALF_WIDTH = GRID / 2   # the grid spans [-3.5, 3.5] in x and y; each cell is 1 x 1.
WALL_HEIGHT = 1.0
EYE_HEIGHT = 0.45       # DeepMind Lab's eye is a little under half a wall's height.
CAMERA_MARGIN = 0.25    # cameras keep this far from the edges of their cell (no wall is closer).
MAX_ROOMS = 2
ROOM_SIZES = (3, 5)     # room sides, in cells (labmaze's rooms have odd sides).
WALL, FREE = "*", "."
HIDDEN_GROUP = 3        # MuJoCo's default scene options draw geom groups 0-2 only.
# Border walls: name -> (centre x, y; half sizes x, y), the ring of cells around the grid.
BORDERS = {
    "north": ((0.0, HALF_WIDTH + 0.5), (HALF_WIDTH + 1, 0.5)),
    "south": ((0.0, -HALF_WIDTH - 0.5), (HALF_WIDTH + 1, 0.5)),
    "east": ((HALF_WIDTH + 0.5, 0.0), (0.5, HALF_WIDTH)),
    "west": ((-HALF_WIDTH - 0.5, 0.0), (0.5, HALF_WIDTH)),
}
# Directional lights (direction of travel, brightness) that shade the walls' faces differently.
LIGHTS = (((0.4, 0.7, -1.0), 0.45), ((-0.6, -0.3, -0.8), 0.25))
SURFACES = ("wall", "floor", *(f"room{k}" for k in range(MAX_ROOMS)))


def cell_centre(row, column) -> np.ndarray:
  """World (x, y) of the centre of grid cell (row, column): row 0 north, column 0 west."""
  return np.stack([np.asarray(column, np.float64) - (GRID - 1) / 2,
                   (GRID - 1) / 2 - np.asarray(row, np.float64)], axis=-1)


def cell_of(x, y):
  """(row, column) of the cell holding world point (x, y); may lie outside 0..6 (the border)."""
  return (np.floor(HALF_WIDTH - np.asarray(y)).astype(int),
          np.floor(np.asarray(x) + HALF_WIDTH).astype(int))


def layout(rng, rooms: int):
  """A labmaze level with exactly ``rooms`` rooms: (cells: 7 strings, rooms: [dict]).

  labmaze sometimes fits fewer rooms than asked; it is asked again with the next seed drawn
  from ``rng``, so the level is a function of ``rng`` alone.
  """
  labmaze = extras.require("labmaze", "scenes", "the mazes scenes")
  while True:
    maze = labmaze.RandomMaze(
        height=GRID + 2, width=GRID + 2, max_rooms=rooms, room_min_size=ROOM_SIZES[0],
        room_max_size=ROOM_SIZES[1], spawns_per_room=0, objects_per_room=0, simplify=False,
        max_variations=26, random_seed=int(rng.integers(2 ** 31)))
    entities = np.array([list(row) for row in str(maze.entity_layer).splitlines()])[1:-1, 1:-1]
    variations = np.array([list(row) for row in str(maze.variations_layer).splitlines()])
    variations = variations[1:-1, 1:-1]
    letters = sorted(set(variations.ravel()) - {"."})
    if len(letters) == rooms:
      break
  cells = ["".join(WALL if entity == "*" else FREE for entity in row) for row in entities]
  found = []
  for letter in letters:
    where = np.argwhere(variations == letter)
    (top, left), (bottom, right) = where.min(axis=0), where.max(axis=0)
    found.append({"row": int(top), "column": int(left), "rows": int(bottom - top + 1),
                  "columns": int(right - left + 1)})
  return cells, found


def room_of_cell(rooms) -> dict:
  """{(row, column): room index} of every cell inside a room."""
  return {(room["row"] + i, room["column"] + j): index for index, room in enumerate(rooms)
          for i in range(room["rows"]) for j in range(room["columns"])}


@dataclasses.dataclass(frozen=True)
class Mazes:
  """The mazes family (see the module docstring)."""
  name: str = "mazes"
  frames_per_scene: int = 300
  default_image_size: int = 84  # as released.

  def model_xml(self, image_size: int) -> str:
    """The MJCF model of the family, for square frames of ``image_size`` pixels."""
    assets = [palette.texture_xml(pattern, pattern) for pattern in palette.PATTERNS]
    assets += [f'<material name="{surface}_{pattern}" texture="{pattern}" texuniform="true" '
               f'specular="0.05" shininess="0.1"/>'
               for surface in SURFACES for pattern in palette.PATTERNS]
    # A fixed sky: MuJoCo draws the skybox behind everything, and leaves it out of segmentation.
    assets.append('<texture name="sky" type="skybox" builtin="gradient" rgb1="0.55 0.7 0.95" '
                  'rgb2="0.95 0.97 1.0" width="256" height="256"/>')
    first = next(iter(palette.PATTERNS))
    geoms = []
    for row in range(GRID):
      for column in range(GRID):
        x, y = cell_centre(row, column)
        geoms.append(f'<geom name="wall_{row}_{column}" type="box" material="wall_{first}" '
                     f'pos="{x} {y} {WALL_HEIGHT / 2}" size="0.5 0.5 {WALL_HEIGHT / 2}"/>')
        geoms.append(f'<geom name="floor_{row}_{column}" type="plane" material="floor_{first}" '
                     f'pos="{x} {y} 0" size="0.5 0.5 0.1"/>')
    for name, ((x, y), (half_x, half_y)) in BORDERS.items():
      geoms.append(f'<geom name="border_{name}" type="box" material="wall_{first}" '
                   f'pos="{x} {y} {WALL_HEIGHT / 2}" size="{half_x} {half_y} {WALL_HEIGHT / 2}"/>')
    lights = "".join(
        f'<light name="light{i}" type="directional" castshadow="false" dir="{x} {y} {z}" '
        f'diffuse="{b} {b} {b}" specular="0.05 0.05 0.05"/>'
        for i, ((x, y, z), b) in enumerate(LIGHTS))
    return f"""
<mujoco model="{self.name}">
  <option><flag contact="disable" gravity="disable"/></option>
  <statistic center="0 0 {WALL_HEIGHT / 2}" extent="{GRID + 2}"/>
  <visual>
    <global offwidth="{image_size}" offheight="{image_size}"
            fovy="{camera.FIELD_OF_VIEW_DEGREES}"/>
    <quality offsamples="4"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0 0 0" specular="0 0 0"/>
    <map znear="0.004" zfar="4"/>
  </visual>
  <default><geom contype="0" conaffinity="0"/></default>
  <asset>{"".join(assets)}</asset>
  <worldbody>{"".join(geoms)}{lights}</worldbody>
</mujoco>"""

  def sample(self, rng):
    """Draws one scene: (factors dict, cameras float32 [S, 5])."""
    cells, rooms = layout(rng, int(rng.integers(1, MAX_ROOMS + 1)))
    wall = palette.random_surface(rng, palette.WALL_COLOURS, MAZE_TEXTURE_REPEATS)
    floor = palette.random_surface(rng, palette.FLOOR_COLOURS, MAZE_TEXTURE_REPEATS)
    for room in rooms:  # each room's floor differs in colour from the corridors'.
      others = {k: v for k, v in palette.FLOOR_COLOURS.items() if k != floor["colour"]}
      room["floor"] = palette.random_surface(rng, others, MAZE_TEXTURE_REPEATS)
    free = np.argwhere(np.array([list(row) for row in cells]) == FREE)
    chosen = free[rng.integers(len(free), size=self.frames_per_scene)]
    offsets = rng.uniform(-0.5 + CAMERA_MARGIN, 0.5 - CAMERA_MARGIN, (self.frames_per_scene, 2))
    positions = np.concatenate([cell_centre(chosen[:, 0], chosen[:, 1]) + offsets,
                                np.full((self.frames_per_scene, 1), EYE_HEIGHT)], axis=1)
    yaw = rng.uniform(-np.pi, np.pi, self.frames_per_scene)
    cameras = camera.record(positions, yaw, np.zeros(self.frames_per_scene))
    return {"cells": cells, "rooms": rooms, "wall": wall, "floor": floor}, cameras

  def apply(self, model, factors) -> None:
    """Writes a scene's factors into the family's compiled MuJoCo model."""
    materials = {"wall": _material(model, "wall", factors["wall"]),
                 "floor": _material(model, "floor", factors["floor"])}
    for index, room in enumerate(factors["rooms"]):
      materials[index] = _material(model, f"room{index}", room["floor"])
    rooms = room_of_cell(factors["rooms"])
    for row, line in enumerate(factors["cells"]):
      for column, cell in enumerate(line):
        block, tile = model.geom(f"wall_{row}_{column}"), model.geom(f"floor_{row}_{column}")
        block.group[:] = 0 if cell == WALL else HIDDEN_GROUP
        tile.group[:] = HIDDEN_GROUP if cell == WALL else 0
        block.matid[:] = materials["wall"]
        tile.matid[:] = materials[rooms.get((row, column), "floor")]
    for name in BORDERS:
      model.geom(f"border_{name}").matid[:] = materials["wall"]


def _material(model, surface: str, factors) -> int:
  """Colours the material of ``surface`` in the scene's pattern; returns its id."""
  material = model.material(f"{surface}_{factors['pattern']}")
  material.rgba[:] = [*factors["rgb"], 1.0]
  material.texrepeat[:] = factors["texrepeat"]
  return material.id
