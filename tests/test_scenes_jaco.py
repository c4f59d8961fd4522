"""The jaco family: dm_control's Jaco arm posed as the factors say, and seen where they say.

The pose is drawn without MuJoCo (jaco.Kinematics); MuJoCo's own kinematics, run on the
compiled scene model in a separate process, must agree with it. Views are checked with MuJoCo's
segmentation rendering in a render worker.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

from gqn_jax.scenes import camera
from gqn_jax.scenes import jaco
from gqn_jax.scenes import scene
from gqn_jax.scenes import worker

NAME = "jaco"
REPO = pathlib.Path(__file__).resolve().parents[1]
HAND_GEOMS = [jaco.ARM_PREFIX + jaco.HAND_PREFIX + name for name in (
    "link_6_main", "link_6_insert", "finger_knuckle_1", "finger_tip_1", "finger_knuckle_2",
    "finger_tip_2", "finger_knuckle_3", "finger_tip_3")]

# Runs in a fresh process: MuJoCo's kinematics of the scene model posed by Jaco.apply.
_MUJOCO_CHECK = """
import json, sys
import mujoco
import numpy as np
from gqn_jax.scenes import jaco, scene
family = jaco.Jaco()
model = mujoco.MjModel.from_xml_string(family.model_xml(16))
report = {"joints": [model.joint(i).name for i in range(model.njnt)], "scenes": []}
base = model.body(jaco.ARM_PREFIX + "b_base").id  # stands on the floor.
arm = [i for i in range(model.ngeom) if model.geom(i).name.startswith(jaco.ARM_PREFIX)
       and model.geom_type[i] == mujoco.mjtGeom.mjGEOM_MESH and model.geom_bodyid[i] != base]
for index in range(int(sys.argv[1])):
  factors, _ = scene.sample_scene("jaco", "train", index, 0)
  family.apply(model, factors)
  data = mujoco.MjData(model)
  mujoco.mj_forward(model, data)
  vertices = []
  for geom in arm:  # every mesh vertex of the arm, in the world.
    mesh = model.geom_dataid[geom]
    local = model.mesh_vert[model.mesh_vertadr[mesh]:model.mesh_vertadr[mesh]
                            + model.mesh_vertnum[mesh]]
    vertices.append(data.geom_xpos[geom] + local @ data.geom_xmat[geom].reshape(3, 3).T)
  vertices = np.concatenate(vertices)
  target = np.array(factors["target"]["position"])
  report["scenes"].append({
      "bodies": {model.body(i).name: data.xpos[i].tolist() for i in range(model.nbody)},
      "grip": data.site(jaco.ARM_PREFIX + jaco.HAND_PREFIX + jaco.GRIP_SITE).xpos.tolist(),
      "lowest": float(vertices[:, 2].min()),
      "nearest_target": float(np.linalg.norm(vertices - target, axis=1).min()),
      "target": data.body("target").xpos.tolist()})
print(json.dumps(report))
"""


def test_mujoco_kinematics_agree_with_the_factors():
  """Jaco.apply poses MuJoCo's model as jaco.Kinematics computed; no part meets floor or ball."""
  scenes = 6
  result = subprocess.run([sys.executable, "-c", _MUJOCO_CHECK, str(scenes)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.splitlines()[-1])
  chain = jaco.kinematics()
  assert sorted(report["joints"]) == sorted(chain.joints)
  assert len(chain.joints) == 9, "6 arm joints and 3 fingers, as released"
  for index, found in enumerate(report["scenes"]):
    factors, _ = scene.sample_scene(NAME, "train", index, 0)
    assert sorted(jaco.ARM_PREFIX + name for name in factors["joints"]) == sorted(chain.joints)
    frames = chain.frames({jaco.ARM_PREFIX + k: v for k, v in factors["joints"].items()})
    for link in chain.links:
      np.testing.assert_allclose(found["bodies"][link.name], frames[link.name][0], atol=1e-9,
                                 err_msg=link.name)
    np.testing.assert_allclose(found["grip"], factors["hand"], atol=1e-9)
    np.testing.assert_allclose(found["target"], factors["target"]["position"], atol=1e-12)
    assert found["lowest"] > 0.0, f"scene {index}: the arm goes through the floor"
    assert found["nearest_target"] > jaco.TARGET_RADIUS, f"scene {index}: the arm meets the ball"


def test_joint_angles_target_and_cameras_follow_their_ranges():
  chain = jaco.kinematics()
  limits = {link.joint.removeprefix(jaco.ARM_PREFIX): link.limits for link in chain.links
            if link.joint}
  assert limits["joint_2"] == (0.820305, 5.462881) and limits["joint_1"] is None
  angles = []
  for index in range(40):
    factors, cameras = scene.sample_scene(NAME, "test", index, seed=1)
    for name, value in factors["joints"].items():
      low, high = limits[name] or (-np.pi, np.pi)
      assert low <= value <= high, (name, value)
    angles.append([factors["joints"][name] for name in sorted(limits)])
    target = np.array(factors["target"]["position"])
    assert jaco.TARGET_RADII[0] <= np.hypot(*target[:2]) <= jaco.TARGET_RADII[1]
    assert jaco.TARGET_HEIGHTS[0] <= target[2] <= jaco.TARGET_HEIGHTS[1]
    assert cameras.shape == (11, 5)
    offset = cameras[:, :3].astype(np.float64) - jaco.CAMERA_CENTRE
    np.testing.assert_allclose(np.linalg.norm(offset, axis=1), jaco.CAMERA_RADIUS, rtol=1e-6)
    yaw, pitch = camera.look_at(cameras[:, :3].astype(np.float64), jaco.CAMERA_CENTRE)
    np.testing.assert_allclose(np.angle(np.exp(1j * (cameras[:, 3] - yaw))), 0, atol=1e-5)
    np.testing.assert_allclose(cameras[:, 4], pitch, atol=1e-5)
  assert (np.std(angles, axis=0) > 0.2).all(), "every joint varies between scenes"


def _analytic_sphere(centre, radius, record, size, samples=4):
  """(area in pixels, (column, row) centroid) of a sphere, by casting camera.pixel_rays."""
  rays = camera.pixel_rays(record, size, samples)
  offset = np.asarray(centre) - record[:3]
  along = rays @ offset
  hit = (along > 0) & (offset @ offset - along ** 2 < radius ** 2)
  if not hit.any():
    return 0.0, np.full(2, np.nan)
  rows, columns = (np.mgrid[:size * samples, :size * samples] + 0.5) / samples
  return hit.sum() / samples ** 2, np.array([columns[hit].mean(), rows[hit].mean()])


def test_target_and_hand_are_seen_where_the_factors_put_them():
  """The ball's pixels centre on its recorded position; the hand covers its recorded grip site."""
  size, checked_target, checked_hand = 160, 0, 0
  for index in range(4):
    factors, cameras = scene.sample_scene(NAME, "train", index, seed=0)
    masks = worker.call("geom_masks", factors, cameras, size, ["target", *HAND_GEOMS])
    target, hand = masks[0], masks[1:].any(axis=0)
    rows, columns = np.mgrid[:size, :size] + 0.5
    for frame, record in enumerate(cameras.astype(np.float64)):
      area, centroid = _analytic_sphere(factors["target"]["position"], jaco.TARGET_RADIUS,
                                        record, size)
      seen = target[frame].sum()
      inside = np.all((centroid > 8) & (centroid < size - 8))
      if inside and abs(seen - area) < 0.03 * area:  # in view and not hidden by the arm.
        found = [(columns * target[frame]).sum() / seen, (rows * target[frame]).sum() / seen]
        np.testing.assert_allclose(found, centroid, atol=0.25, err_msg=f"{index}, {frame}")
        checked_target += 1
      grip = camera.project([factors["hand"]], record, size)[0]
      if hand[frame].sum() > 20 and np.all((grip > 0) & (grip < size)):
        # The grip site lies between the fingers: within the hand's silhouette's box.
        hand_rows, hand_columns = np.nonzero(hand[frame])
        assert hand_columns.min() - 1 <= grip[0] <= hand_columns.max() + 2, (index, frame)
        assert hand_rows.min() - 1 <= grip[1] <= hand_rows.max() + 2, (index, frame)
        checked_hand += 1
  assert checked_target >= 10 and checked_hand >= 10, (checked_target, checked_hand)


def test_scenes_render_identically_from_their_factors():
  first = worker.call("render_scene", NAME, "train", 2, 24, 0)
  factors = json.loads(json.dumps(first[2]))
  again = worker.call("render_factors", factors, first[1], 24)
  np.testing.assert_array_equal(again, first[0])
  assert first[0].shape == (11, 24, 24, 3)
  other = worker.call("render_scene", NAME, "train", 3, 24, 0)
  assert not np.array_equal(other[0], first[0])
