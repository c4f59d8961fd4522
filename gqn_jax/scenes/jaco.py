"""The jaco family: a Kinova Jaco arm in random poses and a coloured target ball, in a room.

The arm is dm_control's maintained MuJoCo model (``dm_control/third_party/kinova``: the 6-joint
Jaco arm with its 3-finger hand attached at the wrist site, as dm_control's manipulation tasks
assemble it), so 9 joints as in the released data. Each scene draws a target position within the
arm's reach and a colour for it, then joint angles (within the model's joint ranges; unlimited
joints over the whole circle) until no part of the arm comes near the floor or the target.
Cameras stand on a sphere around the arm, above its base, facing a point of the arm's height.

The factors hold the joint angles (``joints``, radians, by the model's joint names), the target
(``target``: ``position``, ``rgb``) and, for read-outs, the positions of the hand (its grip site,
``hand``) that those angles give.

Poses are drawn without MuJoCo (scene sampling must not load MuJoCo's GL next to TensorFlow; see
worker.py): :class:`Kinematics` reads the bodies' frames from the model's XML and chains them, and
:meth:`Jaco.apply` poses the compiled model by turning each jointed body by its joint's angle in
the model itself. The tests check both against MuJoCo's own kinematics.
"""

import dataclasses
import functools
import importlib.util
import pathlib
import xml.etree.ElementTree as ElementTree

import numpy as np

from gqn_jax import extras
from gqn_jax.scenes import camera
from gqn_jax.scenes import palette

ARM_PREFIX = "jaco/"    # prefixes of the arm's and the hand's names in the scene model.
HAND_PREFIX = "hand/"
WRIST_SITE = "wristsite"
GRIP_SITE = "gripsite"
TARGET_RADIUS = 0.05
TARGET_RADII = (0.25, 0.6)   # horizontal distance of the target from the base's axis ...
TARGET_HEIGHTS = (0.05, 0.8)  # ... and its centre's height.
CLEARANCE = 0.08        # least distance of the arm's axis from the floor and the target's surface.
CAMERA_CENTRE = (0.0, 0.0, 0.35)  # the point every camera faces ...
CAMERA_RADIUS = 1.25              # ... from this distance ...
CAMERA_ELEVATIONS = (0.1, 0.75)   # ... at an elevation (radians) in this range.
ROOM_HALF_WIDTH = 3.5
ROOM_HEIGHT = 3.5


def asset_dir() -> pathlib.Path:
  """dm_control's Kinova directory (jaco_arm.xml, jaco_hand.xml, meshes), without importing it."""
  extras.check("dm_control", "scenes", "the jaco scenes (dm_control's Jaco model)")
  package = importlib.util.find_spec("dm_control").submodule_search_locations[0]
  return pathlib.Path(package) / "third_party" / "kinova"


def _quat(values) -> np.ndarray:
  quat = np.asarray(values, np.float64)
  return quat / np.linalg.norm(quat)


def quat_multiply(a, b) -> np.ndarray:
  """The Hamilton product a b of (w, x, y, z) quaternions: rotation b, then a."""
  aw, ax, ay, az = a
  bw, bx, by, bz = b
  return np.array([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                   aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw])


def axis_angle(axis, angle) -> np.ndarray:
  """The (w, x, y, z) quaternion of a rotation by ``angle`` about unit ``axis``."""
  return np.array([np.cos(angle / 2), *(np.sin(angle / 2) * np.asarray(axis, np.float64))])


def rotation_matrix(quat) -> np.ndarray:
  w, x, y, z = quat
  return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                   [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                   [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


@dataclasses.dataclass(frozen=True)
class Link:
  """One body of the arm: its frame in its parent's, and its joint (if any)."""
  name: str                  # the body's name in the scene model.
  parent: str | None         # None: attached to the world.
  position: np.ndarray       # [3] in the parent's frame.
  quat: np.ndarray           # [4] (w, x, y, z) in the parent's frame, before the joint turns.
  joint: str | None          # the hinge's name in the scene model.
  axis: np.ndarray | None    # [3] the hinge's axis in the body's frame (through its origin).
  limits: tuple[float, float] | None  # the hinge's range; None: unlimited.


class Kinematics:
  """The arm's kinematic tree, read from dm_control's XML files."""

  def __init__(self, directory):
    directory = pathlib.Path(directory)
    self.links: list[Link] = []
    self.sites: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}  # name -> (body, pos, quat)
    self._read(directory / "jaco_arm.xml", ARM_PREFIX, None, np.zeros(3), _quat([1, 0, 0, 0]))
    wrist_body, wrist_position, wrist_quat = self.sites[ARM_PREFIX + WRIST_SITE]
    self._read(directory / "jaco_hand.xml", ARM_PREFIX + HAND_PREFIX, wrist_body,
               wrist_position, wrist_quat)

  @property
  def joints(self) -> list[str]:
    return [link.joint for link in self.links if link.joint]

  def _read(self, path, prefix, parent, position, quat) -> None:
    """Adds the bodies of one XML file; its top bodies sit at (position, quat) in ``parent``."""
    root = ElementTree.parse(path).getroot()
    default = root.find("default/joint")
    default_range = default.get("range") if default is not None else None

    def visit(element, parent_name, frame_position, frame_quat):
      for body in element.findall("body"):
        local_position = np.array([float(v) for v in body.get("pos", "0 0 0").split()])
        local_quat = _quat([float(v) for v in body.get("quat", "1 0 0 0").split()])
        if parent_name == parent:  # a top body: compose with the attachment frame.
          local_position = frame_position + rotation_matrix(frame_quat) @ local_position
          local_quat = quat_multiply(frame_quat, local_quat)
        joints = body.findall("joint")
        if len(joints) > 1 or any(np.any(np.array(j.get("pos", "0 0 0").split(), float))
                                  for j in joints):
          raise ValueError(f"{path}: body {body.get('name')} needs a general joint model")
        joint = joints[0] if joints else None
        limits = None
        if joint is not None and (joint.get("range") or default_range):
          low, high = (float(v) for v in (joint.get("range") or default_range).split())
          limits = (low, high)
        name = prefix + body.get("name")
        self.links.append(Link(
            name, parent_name, local_position, local_quat,
            prefix + joint.get("name") if joint is not None else None,
            np.array([float(v) for v in joint.get("axis", "0 0 1").split()])
            if joint is not None else None, limits))
        for site in body.findall("site"):
          self.sites[prefix + site.get("name")] = (
              name, np.array([float(v) for v in site.get("pos", "0 0 0").split()]),
              _quat([float(v) for v in site.get("quat", "1 0 0 0").split()]))
        visit(body, name, None, None)

    visit(root.find("worldbody"), parent, position, quat)

  def local_quat(self, link: Link, angles: dict) -> np.ndarray:
    """The body's orientation in its parent's frame with its joint at ``angles[joint]``."""
    if link.joint is None:
      return link.quat
    return quat_multiply(link.quat, axis_angle(link.axis, angles[link.joint]))

  def frames(self, angles: dict) -> dict:
    """{body name: (world position [3], world rotation [3, 3])} for joint ``angles``."""
    frames = {None: (np.zeros(3), np.eye(3))}
    for link in self.links:  # parents come before their children.
      position, rotation = frames[link.parent]
      frames[link.name] = (position + rotation @ link.position,
                           rotation @ rotation_matrix(self.local_quat(link, angles)))
    return frames

  def site_position(self, frames: dict, site: str) -> np.ndarray:
    body, position, _ = self.sites[site]
    return frames[body][0] + frames[body][1] @ position

  def axis_points(self, frames: dict, per_link: int = 6) -> np.ndarray:
    """Points [N, 3] along the arm's axis: each body's origin and the segment to its parent.

    The base's body and the segment to it (fixed on the floor) are left out.
    """
    points = []
    for link in self.links:
      if link.parent is None or link.parent == self.links[0].name:
        continue
      start, end = frames[link.parent][0], frames[link.name][0]
      points += [start + (end - start) * t for t in np.linspace(0, 1, per_link)]
    points += [self.site_position(frames, name) for name in self.sites
               if name.startswith(ARM_PREFIX + HAND_PREFIX)]
    return np.array(points)


@functools.cache
def kinematics() -> Kinematics:
  return Kinematics(asset_dir())


@dataclasses.dataclass(frozen=True)
class Jaco:
  """The jaco family (see the module docstring)."""
  name: str = "jaco"
  frames_per_scene: int = 11
  default_image_size: int = 64

  def model_xml(self, image_size: int) -> str:
    """The MJCF model of the family, for square frames of ``image_size`` pixels."""
    mujoco = extras.require("mujoco", "scenes", "rendering scenes")
    directory = asset_dir()
    arm = mujoco.MjSpec.from_file(str(directory / "jaco_arm.xml"))
    hand = mujoco.MjSpec.from_file(str(directory / "jaco_hand.xml"))
    arm.attach(hand, prefix=HAND_PREFIX, site=arm.site(WRIST_SITE))
    room = mujoco.MjSpec.from_string(self._room_xml(image_size))
    room.attach(arm, prefix=ARM_PREFIX, frame=room.worldbody.add_frame())
    # The XML text is compiled without a file, so the meshes need an absolute directory.
    room.meshdir = str(directory / "meshes_decimated")
    return room.to_xml()

  def _room_xml(self, image_size: int) -> str:
    half, height = ROOM_HALF_WIDTH, ROOM_HEIGHT
    walls = "".join(
        f'<geom name="wall_{name}" type="plane" material="wall" pos="{x} {y} {height / 2}" '
        f'size="{half} {height / 2} 0.5" xyaxes="{ax} {ay} 0 0 0 1"/>'
        for name, (x, y, ax, ay) in {"north": (0, half, 1, 0), "south": (0, -half, -1, 0),
                                     "east": (half, 0, 0, -1), "west": (-half, 0, 0, 1)}.items())
    return f"""
<mujoco model="{self.name}">
  <compiler angle="radian"/>
  <option><flag contact="disable" gravity="disable"/></option>
  <statistic center="{' '.join(map(str, CAMERA_CENTRE))}" extent="{2 * half}"/>
  <visual>
    <global offwidth="{image_size}" offheight="{image_size}"
            fovy="{camera.FIELD_OF_VIEW_DEGREES}"/>
    <quality offsamples="4"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0.2 0.2 0.2" specular="0 0 0"/>
    <map znear="0.01" zfar="4"/>
  </visual>
  <default><geom contype="0" conaffinity="0"/></default>
  <asset>
    <texture name="floor" type="2d" builtin="checker" rgb1="0.62 0.6 0.56" rgb2="0.5 0.48 0.45"
             width="64" height="64"/>
    <material name="floor" texture="floor" texrepeat="2 2" texuniform="true" specular="0.1"/>
    <texture name="wall" type="2d" builtin="flat" rgb1="0.75 0.78 0.8" mark="edge"
             markrgb="0.6 0.62 0.65" width="64" height="64"/>
    <material name="wall" texture="wall" texrepeat="0.5 0.5" texuniform="true" specular="0.05"/>
    <material name="target" specular="0.3" shininess="0.5"/>
  </asset>
  <worldbody>
    <geom name="floor" type="plane" material="floor" size="{half} {half} 0.5"/>
    {walls}
    <light name="key" type="directional" castshadow="false" dir="-0.3 -0.5 -1"
           diffuse="0.45 0.45 0.45" specular="0.2 0.2 0.2"/>
    <light name="fill" type="directional" castshadow="false" dir="0.6 0.4 -0.5"
           diffuse="0.2 0.2 0.2" specular="0 0 0"/>
    <body name="target" pos="0.5 0 0.3">
      <geom name="target" type="sphere" size="{TARGET_RADIUS}" material="target"/>
    </body>
  </worldbody>
</mujoco>"""

  def sample(self, rng):
    """Draws one scene: (factors dict, cameras float32 [S, 5])."""
    chain = kinematics()
    radius, angle = rng.uniform(*TARGET_RADII), rng.uniform(-np.pi, np.pi)
    target = np.array([radius * np.cos(angle), radius * np.sin(angle),
                       rng.uniform(*TARGET_HEIGHTS)])
    while True:  # a pose clear of the floor and the target.
      angles = {link.joint: float(rng.uniform(*(link.limits or (-np.pi, np.pi))))
                for link in chain.links if link.joint}
      frames = chain.frames(angles)
      points = chain.axis_points(frames)
      if (points[:, 2].min() > CLEARANCE and np.linalg.norm(points - target, axis=1).min()
          > TARGET_RADIUS + CLEARANCE):
        break
    hand = chain.site_position(frames, ARM_PREFIX + HAND_PREFIX + GRIP_SITE)
    azimuth = rng.uniform(-np.pi, np.pi, self.frames_per_scene)
    elevation = rng.uniform(*CAMERA_ELEVATIONS, self.frames_per_scene)
    positions = np.asarray(CAMERA_CENTRE) + CAMERA_RADIUS * camera.forward(azimuth, elevation)
    factors = {
        "joints": {name.removeprefix(ARM_PREFIX): value for name, value in angles.items()},
        "target": {"position": [float(v) for v in target], "rgb": palette.random_colour(rng)},
        "hand": [float(v) for v in hand],
    }
    return factors, camera.facing(positions, CAMERA_CENTRE)

  def apply(self, model, factors) -> None:
    """Writes a scene's factors into the family's compiled MuJoCo model.

    The renderer computes the kinematics at the model's reference pose (all joints at 0), so
    each jointed body's rest orientation is turned by its joint's angle here instead.
    """
    chain = kinematics()
    angles = {ARM_PREFIX + name: value for name, value in factors["joints"].items()}
    for link in chain.links:
      if link.joint:
        model.body(link.name).quat[:] = chain.local_quat(link, angles)
    model.body("target").pos[:] = factors["target"]["position"]
    model.material("target").rgba[:] = [*factors["target"]["rgb"], 1.0]
