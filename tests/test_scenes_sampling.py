"""Laws of scene sampling (no rendering): walks, meshes, cameras, objects, determinism."""

import itertools
import json

import numpy as np
import pytest

from gqn_jax import released_format
from gqn_jax.scenes import FAMILIES
from gqn_jax.scenes import camera
from gqn_jax.scenes import get_family
from gqn_jax.scenes import meshes
from gqn_jax.scenes import palette
from gqn_jax.scenes import rooms
from gqn_jax.scenes import scene
from gqn_jax.scenes import shepard_metzler


@pytest.mark.parametrize("parts", [2, 5, 7, 30])
def test_self_avoiding_walk_has_distinct_face_adjacent_cells(parts):
  for seed in range(200):
    cells = shepard_metzler.self_avoiding_walk(np.random.default_rng(seed), parts)
    assert cells.shape == (parts, 3) and cells.dtype.kind == "i"
    assert len({tuple(cell) for cell in cells}) == parts, f"seed {seed}: a cell repeats"
    steps = np.abs(np.diff(cells, axis=0)).sum(axis=1)
    assert (steps == 1).all(), f"seed {seed}: consecutive cells do not share a face"


def test_shepard_metzler_cubes_follow_the_walk_and_are_centred():
  for name, parts in (("shepard_metzler_5_parts", 5), ("shepard_metzler_7_parts", 7)):
    for index in range(20):
      factors, cameras = scene.sample_scene(name, "train", index, seed=0)
      cells = np.array([cube["cell"] for cube in factors["cubes"]])
      positions = np.array([cube["position"] for cube in factors["cubes"]])
      assert len(cells) == parts
      np.testing.assert_allclose(positions, cells - cells.mean(axis=0))
      np.testing.assert_allclose(positions.mean(axis=0), 0, atol=1e-12)
      # Cameras on a sphere around the object, each facing its centre.
      radius = get_family(name).camera_radius
      np.testing.assert_allclose(np.linalg.norm(cameras[:, :3], axis=1), radius, rtol=1e-6)
      yaw, pitch = camera.look_at(cameras[:, :3].astype(np.float64), np.zeros(3))
      np.testing.assert_allclose(_angle_difference(cameras[:, 3], yaw), 0, atol=1e-5)
      np.testing.assert_allclose(cameras[:, 4], pitch, atol=1e-5)


def test_ring_cameras_lie_on_one_ring_and_face_the_room_centre():
  for index in range(10):
    _, cameras = scene.sample_scene("rooms_ring_camera", "train", index, seed=3)
    radius = np.hypot(cameras[:, 0], cameras[:, 1])
    np.testing.assert_allclose(radius, rooms.RING_RADIUS, rtol=1e-6)
    np.testing.assert_allclose(cameras[:, 2], rooms.RING_HEIGHT, rtol=1e-6)
    yaw, pitch = camera.look_at(cameras[:, :3].astype(np.float64), rooms.RING_TARGET)
    np.testing.assert_allclose(_angle_difference(cameras[:, 3], yaw), 0, atol=1e-5)
    np.testing.assert_allclose(cameras[:, 4], pitch, atol=1e-5)


def test_free_cameras_stay_inside_the_room_and_vary():
  _, cameras = scene.sample_scene("rooms_free_camera_no_object_rotations", "train", 0, seed=0)
  all_cameras = np.concatenate([
      scene.sample_scene("rooms_free_camera_no_object_rotations", "train", i, seed=0)[1]
      for i in range(20)])
  assert (np.abs(all_cameras[:, :2]) < rooms.HALF_WIDTH).all()
  assert ((all_cameras[:, 2] > 0) & (all_cameras[:, 2] < rooms.WALL_HEIGHT)).all()
  assert (np.abs(all_cameras[:, 3]) <= np.pi).all() and (np.abs(all_cameras[:, 4]) < 1.5).all()
  assert np.ptp(all_cameras[:, 3]) > 5.0, "yaw should cover the circle"
  assert len(np.unique(cameras[:, 0])) == len(cameras)


def test_objects_rotate_only_in_the_with_rotations_family():
  for name, rotates in (("rooms_ring_camera", False),
                        ("rooms_free_camera_no_object_rotations", False),
                        ("rooms_free_camera_with_object_rotations", True)):
    yaws = [o["yaw"] for i in range(30)
            for o in scene.sample_scene(name, "train", i, seed=0)[0]["objects"]]
    assert any(yaws) == rotates, name


def test_room_factors_use_the_released_vocabulary():
  counts, shapes, walls, floors = set(), set(), set(), set()
  for index in range(300):
    factors, _ = scene.sample_scene("rooms_free_camera_with_object_rotations", "test", index, 0)
    objects = factors["objects"]
    counts.add(len(objects))
    shapes |= {o["shape"] for o in objects}
    walls.add(factors["wall"]["colour"])
    floors.add(factors["floor"]["colour"])
    for a, b in itertools.combinations(objects, 2):  # objects do not overlap.
      distance = np.hypot(*np.subtract(a["position"][:2], b["position"][:2]))
      assert distance > rooms.SHAPES[a["shape"]][1] + rooms.SHAPES[b["shape"]][1]
    assert len(factors["lights"]) == rooms.NUM_LIGHTS
  assert counts == {1, 2, 3}
  assert shapes == {"box", "sphere", "cylinder", "capsule", "cone", "icosahedron", "triangle"}
  assert walls == {"red", "green", "cerise", "orange", "yellow"} == set(palette.WALL_COLOURS)
  assert floors == {"yellow", "white", "blue"} == set(palette.FLOOR_COLOURS)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_scene_depends_only_on_seed_split_and_index(name):
  first = scene.sample_scene(name, "train", 7, seed=11)
  again = scene.sample_scene(name, "train", 7, seed=11)
  assert json.dumps(first[0]) == json.dumps(again[0])
  np.testing.assert_array_equal(first[1], again[1])
  assert first[1].shape == (released_format.DATASETS[name].frames_per_scene, 5)
  assert first[1].dtype == np.float32
  for other in (scene.sample_scene(name, "train", 8, seed=11),
                scene.sample_scene(name, "test", 7, seed=11),
                scene.sample_scene(name, "train", 7, seed=12)):
    assert not np.array_equal(first[1], other[1])


def test_factors_are_json_ready():
  for name in FAMILIES:
    factors, _ = scene.sample_scene(name, "train", 0, seed=0)
    assert json.loads(json.dumps(factors)) == factors


def test_meshes_are_the_named_solids():
  ico = meshes.icosahedron(0.6)
  centre = ico.mean(axis=0)
  assert ico.shape == (12, 3)
  np.testing.assert_allclose(np.linalg.norm(ico - centre, axis=1), 0.6)
  np.testing.assert_allclose(ico[:, 2].min(), 0, atol=1e-12)
  assert np.sum(np.isclose(ico[:, 2], 0, atol=1e-9)) == 3, "rests on a face"
  cone = meshes.cone(0.5, 1.0, segments=16)
  np.testing.assert_allclose(cone[-1], [0, 0, 1.0])
  np.testing.assert_allclose(np.hypot(cone[:-1, 0], cone[:-1, 1]), 0.5)
  prism = meshes.triangular_prism(0.55, 0.9)
  sides = np.linalg.norm(prism[[0, 1, 2]] - prism[[1, 2, 0]], axis=1)
  np.testing.assert_allclose(sides, 0.55 * np.sqrt(3))  # equilateral
  np.testing.assert_allclose(prism[3:] - prism[:3], [[0, 0, 0.9]] * 3)


def test_bad_names_and_values_are_named_in_errors():
  with pytest.raises(ValueError, match="unknown scene family 'rooms'"):
    get_family("rooms")
  assert set(FAMILIES) == set(released_format.DATASETS), "every released dataset is generated"
  with pytest.raises(ValueError, match="split"):
    scene.sample_scene("rooms_ring_camera", "validation", 0, 0)
  with pytest.raises(ValueError, match="seed"):
    scene.sample_scene("rooms_ring_camera", "train", 0, -1)


def _angle_difference(a, b):
  return (np.asarray(a, np.float64) - b + np.pi) % (2 * np.pi) - np.pi
