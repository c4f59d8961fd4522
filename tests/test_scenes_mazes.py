"""The mazes family: labmaze layouts, cameras inside free cells, and images that show the map.

Rendered views are checked with MuJoCo's segmentation rendering against rays cast through the
recorded cell map with camera.py's pinhole model, so the layout, the cell-to-world mapping and
the camera convention are tested together. Rendering runs in a render worker process.
"""

import collections
import json

import numpy as np

from gqn_jax.scenes import camera
from gqn_jax.scenes import mazes
from gqn_jax.scenes import scene
from gqn_jax.scenes import worker

NAME = "mazes"
SIZE = 24


def _grid(factors) -> np.ndarray:
  return np.array([list(row) for row in factors["cells"]])


def _connected(grid) -> bool:
  free = {tuple(cell) for cell in np.argwhere(grid == mazes.FREE)}
  seen, todo = set(), [next(iter(free))]
  while todo:
    row, column = todo.pop()
    if (row, column) in seen:
      continue
    seen.add((row, column))
    todo += [n for n in ((row + 1, column), (row - 1, column), (row, column + 1),
                         (row, column - 1)) if n in free]
  return seen == free


def test_layout_is_a_connected_7x7_level_with_one_or_two_rooms():
  room_counts = collections.Counter()
  for index in range(40):
    factors, _ = scene.sample_scene(NAME, "train", index, seed=0)
    grid = _grid(factors)
    assert grid.shape == (7, 7) and set(grid.ravel()) <= {mazes.WALL, mazes.FREE}
    assert _connected(grid), factors["cells"]
    room_counts[len(factors["rooms"])] += 1
    covered = set()
    for room in factors["rooms"]:
      assert room["rows"] in mazes.ROOM_SIZES and room["columns"] in mazes.ROOM_SIZES
      cells = grid[room["row"]:room["row"] + room["rows"],
                   room["column"]:room["column"] + room["columns"]]
      assert cells.shape == (room["rows"], room["columns"]), "room outside the grid"
      assert (cells == mazes.FREE).all(), "a room holds a wall"
      assert room["floor"]["colour"] != factors["floor"]["colour"]
      inside = set(mazes.room_of_cell([room]))
      assert not inside & covered, "rooms overlap"
      covered |= inside
    # Corridors are one cell wide: outside rooms, no 2 x 2 block of free cells.
    for row in range(6):
      for column in range(6):
        block = {(row + i, column + j) for i in (0, 1) for j in (0, 1)}
        if not block & covered:
          assert not all(grid[cell] == mazes.FREE for cell in block), factors["cells"]
  assert set(room_counts) == {1, 2}, room_counts


def test_cell_centres_and_cell_of_agree_with_the_map_orientation():
  # Row 0 is the north (+y) edge, column 0 the west (-x) edge, cells are unit squares.
  np.testing.assert_allclose(mazes.cell_centre(0, 0), [-3.0, 3.0])
  np.testing.assert_allclose(mazes.cell_centre(6, 6), [3.0, -3.0])
  rows, columns = np.mgrid[:7, :7]
  centres = mazes.cell_centre(rows.ravel(), columns.ravel())
  found = mazes.cell_of(centres[:, 0] + 0.49, centres[:, 1] - 0.49)
  np.testing.assert_array_equal(found[0], rows.ravel())
  np.testing.assert_array_equal(found[1], columns.ravel())


def test_cameras_stand_at_eye_height_inside_free_cells():
  yaws = []
  for index in range(10):
    factors, cameras = scene.sample_scene(NAME, "test", index, seed=2)
    assert cameras.shape == (300, 5)
    grid = _grid(factors)
    rows, columns = mazes.cell_of(cameras[:, 0], cameras[:, 1])
    assert ((rows >= 0) & (rows < 7) & (columns >= 0) & (columns < 7)).all()
    assert (grid[rows, columns] == mazes.FREE).all(), "a camera inside a wall"
    offset = np.abs(cameras[:, :2] - mazes.cell_centre(rows, columns))
    assert (offset <= 0.5 - mazes.CAMERA_MARGIN + 1e-6).all()
    np.testing.assert_allclose(cameras[:, 2], mazes.EYE_HEIGHT, rtol=1e-6)
    np.testing.assert_array_equal(cameras[:, 4], 0.0)
    assert len(set(zip(rows, columns))) > 5, "cameras spread over the level"
    yaws.append(cameras[:, 3])
  assert np.ptp(np.concatenate(yaws)) > 6.0, "headings cover the circle"


def _seen_by_rays(factors, record, step=0.004, far=13.0):
  """The geom name each pixel centre's ray meets first (None: the sky), by marching the map."""
  grid = _grid(factors)
  rays = camera.pixel_rays(record, SIZE).reshape(-1, 3)  # [P, 3]
  t = np.arange(step, far, step)
  points = record[:3] + t[None, :, None] * rays[:, None, :]  # [P, T, 3]
  rows, columns = mazes.cell_of(points[..., 0], points[..., 1])
  inside = (rows >= 0) & (rows < 7) & (columns >= 0) & (columns < 7)
  border = (rows >= -1) & (rows <= 7) & (columns >= -1) & (columns <= 7) & ~inside
  wall = np.zeros_like(inside)
  wall[inside] = grid[rows[inside], columns[inside]] == mazes.WALL
  low = (points[..., 2] >= 0) & (points[..., 2] <= mazes.WALL_HEIGHT)
  hit = (wall | border) & low | (points[..., 2] < 0)
  names = []
  for ray in range(len(rays)):
    first = np.flatnonzero(hit[ray])
    if not len(first):
      names.append(None)
      continue
    k = first[0]
    row, column = rows[ray, k], columns[ray, k]
    if points[ray, k, 2] < 0:  # through the floor: the tile of the cell it entered.
      names.append(f"floor_{row}_{column}")
    elif border[ray, k]:
      side = ("north" if row == -1 else "south" if row == 7 else
              "west" if column == -1 else "east")
      names.append(f"border_{side}")
    else:
      names.append(f"wall_{row}_{column}")
  return np.array(names, dtype=object).reshape(SIZE, SIZE)


def test_rendered_geoms_are_where_the_cell_map_and_camera_say():
  """Each pixel shows the wall block, border, floor tile or sky that a ray through the map hits.

  A wrong cell-to-world mapping, a flipped row order or a yaw sign error moves most pixels;
  only pixels on an edge (where the ray passes within the march step of a boundary) may differ.
  """
  factors, cameras = scene.sample_scene(NAME, "train", 5, seed=0)
  cameras = cameras[:6]
  names = ([f"wall_{r}_{c}" for r in range(7) for c in range(7)]
           + [f"floor_{r}_{c}" for r in range(7) for c in range(7)]
           + [f"border_{side}" for side in mazes.BORDERS])
  masks = worker.call("geom_masks", factors, cameras, SIZE, names)  # [G, S, H, W]
  assert (masks.sum(axis=0) <= 1).all()
  grid = _grid(factors)
  for name, mask in zip(names, masks):  # blocks of free cells and tiles of walls stay hidden.
    kind, *cell = name.split("_")
    if kind in ("wall", "floor") and mask.any():
      assert grid[int(cell[0]), int(cell[1])] == (mazes.WALL if kind == "wall" else mazes.FREE)
  kinds = set()
  for frame, record in enumerate(cameras.astype(np.float64)):
    seen = np.full((SIZE, SIZE), None, dtype=object)
    for name, mask in zip(names, masks[:, frame]):
      seen[mask] = name
    expected = _seen_by_rays(factors, record)
    agree = np.mean(seen == expected)
    assert agree > 0.95, (frame, agree)
    kinds |= {str(name).split("_")[0] for name in seen.ravel()}
  assert {"wall", "floor"} <= kinds


def test_room_floors_show_their_own_colour():
  """Free cells inside a room are drawn in the room's floor material, corridors in the floor's."""
  factors, cameras = scene.sample_scene(NAME, "train", 1, seed=0)
  room = factors["rooms"][0]
  row, column = room["row"] + 1, room["column"] + 1  # the room's middle cell.
  x, y = mazes.cell_centre(row, column)
  record = np.array([[x, y, 2.5, 0.0, -np.pi / 2 + 1e-3]], np.float32)  # straight down.
  frame = worker.call("render_factors", factors, record, SIZE)[0]
  centre = frame[SIZE // 2 - 2:SIZE // 2 + 2, SIZE // 2 - 2:SIZE // 2 + 2].reshape(-1, 3)
  room_rgb, corridor_rgb = (np.array(surface["rgb"]) for surface in (room["floor"],
                                                                     factors["floor"]))
  colour = centre.mean(axis=0) / 255
  direction = colour / np.linalg.norm(colour)  # shading scales brightness, not the hue.
  assert (direction @ (room_rgb / np.linalg.norm(room_rgb))
          > direction @ (corridor_rgb / np.linalg.norm(corridor_rgb)))


def test_scenes_render_identically_from_their_factors():
  first = worker.call("render_scene", NAME, "train", 3, 16, 0)
  factors = json.loads(json.dumps(first[2]))
  again = worker.call("render_factors", factors, first[1], 16)
  np.testing.assert_array_equal(again, first[0])
  assert first[0].shape == (300, 16, 16, 3)
  other = worker.call("render_scene", NAME, "train", 4, 16, 0)
  assert other[2]["cells"] != first[2]["cells"] or not np.array_equal(other[0], first[0])
