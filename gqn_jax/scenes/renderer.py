"""Headless MuJoCo rendering: the GL backend, and one reusable renderer per family and thread.

MuJoCo picks its GL backend from ``MUJOCO_GL`` when ``mujoco`` is first imported, so this module
sets it before importing mujoco: EGL where an NVIDIA GPU is present, OSMesa (software, needs
Debian's ``libosmesa6``) otherwise. A ``MUJOCO_GL`` already set in the environment wins.

Creating a GL context and uploading a model's textures costs far more than rendering a 64 px
frame, so each thread keeps one :class:`SceneRenderer` per (family, image size) and every scene
only rewrites a few model fields (see ``rooms.py``).
"""

import atexit
import ctypes.util
import glob
import os
import sys
import threading

import numpy as np

from gqn_jax import extras
from gqn_jax.scenes import camera

_MAX_CACHED = 4
_local = threading.local()  # a GL context is current in one thread: one cache per thread.
_all_renderers = []          # every live renderer, to free them at exit.
_lock = threading.Lock()


def _has_nvidia_gpu() -> bool:
  return bool(glob.glob("/dev/nvidia[0-9]*"))


def select_gl_backend() -> str:
  """Sets ``MUJOCO_GL`` / ``PYOPENGL_PLATFORM`` unless set; returns the backend in use."""
  backend = os.environ.get("MUJOCO_GL", "").strip().lower()
  if not backend:
    backend = "egl" if _has_nvidia_gpu() else "osmesa"
    os.environ["MUJOCO_GL"] = backend
  if backend in ("osmesa", "egl"):
    os.environ.setdefault("PYOPENGL_PLATFORM", backend)
  return backend


def _check_backend(backend: str) -> None:
  """Raises a RuntimeError that says what to do when the backend cannot work here."""
  if backend == "osmesa" and not ctypes.util.find_library("OSMesa"):
    raise RuntimeError(
        "MuJoCo's OSMesa backend (MUJOCO_GL=osmesa) needs the OSMesa library, which is not "
        "installed: run `make system-packages` or `apt-get install -y libosmesa6` as root, or "
        "set MUJOCO_GL=egl on a machine with a GPU.")
  gl_context = sys.modules.get("mujoco.rendering.classic.gl_context")
  chosen = getattr(gl_context, "_MUJOCO_GL", backend)
  if chosen != backend:
    raise RuntimeError(
        f"mujoco was imported with MUJOCO_GL={chosen!r} before gqn_jax.scenes could select "
        f"{backend!r}; import gqn_jax.scenes first or set MUJOCO_GL yourself.")


BACKEND = select_gl_backend()
if "tensorflow" in sys.modules and BACKEND == "osmesa":
  # Loading OSMesa's LLVM after TensorFlow's crashes the process (see worker.py).
  raise ImportError("gqn_jax.scenes.renderer cannot load OSMesa in a process that has imported "
                    "TensorFlow; render through gqn_jax.scenes.worker (gqn_jax.generate does)")
mujoco = extras.require("mujoco", "scenes", "rendering scenes")


class SceneRenderer:
  """Renders scenes of one family at one image size, reusing one model and GL context."""

  def __init__(self, family, image_size: int):
    _check_backend(BACKEND)
    self.family = family
    self.image_size = image_size
    self.model = mujoco.MjModel.from_xml_string(family.model_xml(image_size))
    self._data = mujoco.MjData(self.model)
    self._renderer = mujoco.Renderer(self.model, image_size, image_size)
    self._camera = mujoco.MjvCamera()  # a free camera: lookat, distance, azimuth, elevation.
    self._option = mujoco.MjvOption()

  def render(self, factors, cameras) -> np.ndarray:
    """Frames uint8 [S, H, W, 3] of the scene ``factors`` seen from ``cameras`` [S, 5]."""
    return self._render(factors, cameras, segmentation=False)

  def geom_ids(self, factors, cameras) -> np.ndarray:
    """Per-pixel MuJoCo geom ids int32 [S, H, W] (-1 where no geom is seen)."""
    return self._render(factors, cameras, segmentation=True)[..., 0]

  def geom_id(self, name: str) -> int:
    return self.model.geom(name).id

  def close(self) -> None:
    self._renderer.close()

  def _render(self, factors, cameras, segmentation):
    self.family.apply(self.model, factors)
    mujoco.mj_forward(self.model, self._data)
    cameras = np.asarray(cameras, np.float32)
    size = self.image_size
    if segmentation:
      frames = np.empty((len(cameras), size, size, 2), np.int32)
      self._renderer.enable_segmentation_rendering()
    else:
      frames = np.empty((len(cameras), size, size, 3), np.uint8)
    try:
      for frame, record in zip(frames, cameras.astype(np.float64)):
        self._point(record)
        self._renderer.update_scene(self._data, self._camera, self._option)
        self._renderer.render(out=frame)
    finally:
      self._renderer.disable_segmentation_rendering()
    return frames

  def _point(self, record) -> None:
    """Points MuJoCo's free camera as the camera record says (camera.py's convention).

    A free camera sits at ``lookat - distance * d`` with d = (cos el cos az, cos el sin az,
    sin el), which is camera.forward(yaw=az, pitch=el).
    """
    position, yaw, pitch = record[:3], record[3], record[4]
    self._camera.distance = 1.0
    self._camera.lookat[:] = position + camera.forward(yaw, pitch)
    self._camera.azimuth = np.degrees(yaw)
    self._camera.elevation = np.degrees(pitch)


def get(family, image_size: int) -> SceneRenderer:
  """This thread's renderer for ``family`` at ``image_size`` (created on first use)."""
  cache = _local.__dict__.setdefault("renderers", {})
  key = (family.name, image_size)
  if key not in cache:
    while len(cache) >= _MAX_CACHED:
      _close(cache.pop(next(iter(cache))))
    cache[key] = SceneRenderer(family, image_size)
    with _lock:
      _all_renderers.append(cache[key])
  return cache[key]


def _close(scene_renderer: SceneRenderer) -> None:
  with _lock:
    _all_renderers.remove(scene_renderer)
  scene_renderer.close()


@atexit.register
def _close_all() -> None:
  """Frees the GL contexts while the interpreter can still do it cleanly."""
  with _lock:
    renderers = list(_all_renderers)
    _all_renderers.clear()
  for scene_renderer in renderers:
    scene_renderer.close()
