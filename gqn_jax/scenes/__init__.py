"""Procedural scenes in the families of DeepMind's released GQN datasets, rendered with MuJoCo.

``FAMILIES`` maps each released dataset name that can be generated to its family: an object
with ``name``, ``frames_per_scene``, ``default_image_size``, ``model_xml(image_size)``,
``sample(rng) -> (factors, cameras)`` and ``apply(model, factors)``. See ``camera.py`` for the
camera convention.
"""

from gqn_jax import released_format
from gqn_jax.scenes.jaco import Jaco
from gqn_jax.scenes.mazes import Mazes
from gqn_jax.scenes.rooms import Rooms
from gqn_jax.scenes.shepard_metzler import ShepardMetzler

FAMILIES = {family.name: family for family in (
    Rooms("rooms_ring_camera", camera_mode="ring", rotate_objects=False, object_extent=1.8),
    Rooms("rooms_free_camera_no_object_rotations", camera_mode="free", rotate_objects=False,
          object_extent=2.5),
    Rooms("rooms_free_camera_with_object_rotations", camera_mode="free", rotate_objects=True,
          object_extent=2.5),
    ShepardMetzler("shepard_metzler_5_parts", parts=5, camera_radius=6.0),
    ShepardMetzler("shepard_metzler_7_parts", parts=7, camera_radius=7.0),
    Jaco(),
    Mazes(),
)}

for _family in FAMILIES.values():  # the released layout fixes the frames per scene.
  assert _family.frames_per_scene == released_format.DATASETS[_family.name].frames_per_scene
assert FAMILIES["mazes"].default_image_size == released_format.DATASETS["mazes"].frame_size


def get_family(name: str):
  """The family of the released dataset ``name``; a ValueError lists the ones there are."""
  if name not in FAMILIES:
    raise ValueError(f"unknown scene family {name!r}; generated families: {', '.join(FAMILIES)}")
  return FAMILIES[name]
