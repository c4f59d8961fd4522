"""Installing gqn_jax: the lock, the extras, the core without them, and the console scripts."""

import configparser
import os
import pathlib
import re
import subprocess
import sys
import textwrap

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
import pytest

from gqn_jax import extras

REPO = pathlib.Path(__file__).resolve().parents[1]

# What the core must not need, e.g. on a GPU machine with only JAX, Flax, Optax and Orbax.
OPTIONAL = ("tensorflow", "tensorflow_datasets", "apache_beam", "mujoco", "torch", "matplotlib")

# Prepended to a subprocess's code: packages named in BLOCKED look not installed. The path
# finder that finds installed packages does not see them, so importing one raises
# ModuleNotFoundError and importlib.util.find_spec returns None, as for a package that is absent
# (PyTorch, for one, probes for TensorFlow with find_spec).
BLOCKER = textwrap.dedent("""\
    import importlib.machinery
    import sys
    class _HidingPathFinder(importlib.machinery.PathFinder):
      @classmethod
      def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
          return None
        return super().find_spec(name, path, target)
    sys.meta_path[:] = [_HidingPathFinder if finder is importlib.machinery.PathFinder else finder
                        for finder in sys.meta_path]
    """)


def run_python(code: str, *args: str, blocked=(), timeout=300) -> subprocess.CompletedProcess:
  source = f"BLOCKED = {tuple(blocked)!r}\n" + BLOCKER + textwrap.dedent(code)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-c", source, *args], capture_output=True, text=True,
                        cwd=REPO, env=env, timeout=timeout, check=False)


def setup_cfg() -> configparser.ConfigParser:
  parser = configparser.ConfigParser()
  parser.read(REPO / "setup.cfg")
  return parser


def requirements(value: str) -> list[Requirement]:
  return [Requirement(line.strip()) for line in value.splitlines()
          if line.strip() and not line.strip().startswith("#")]


def lock() -> dict[str, str]:
  pins = {}
  for line in (REPO / "requirements.lock").read_text().splitlines():
    line = line.split("#")[0].strip()
    if line:
      name, version = line.split("==")
      pins[canonicalize_name(name)] = version
  return pins


# --- the lock and the ranges -------------------------------------------------------------------

def test_lock_pins_public_versions_inside_setup_cfg_ranges():
  """Every range in setup.cfg admits its locked version; no pin is a local (+cpu) build."""
  pins = lock()
  local = {name: version for name, version in pins.items() if "+" in version}
  assert not local, f"local versions are not on the public index: {local}"
  config = setup_cfg()
  groups = {"install_requires": config["options"]["install_requires"],
            **dict(config["options.extras_require"])}
  assert {"scenes", "data", "figures", "baseline", "test", "all"} <= set(groups)
  for group, value in groups.items():
    for requirement in requirements(value):
      name = canonicalize_name(requirement.name)
      if name == "gqn-jax":  # the 'all' extra: the others.
        assert requirement.extras <= set(groups), requirement
        continue
      assert name in pins, f"{group}: {requirement} is not pinned in requirements.lock"
      assert requirement.specifier.contains(pins[name], prereleases=True), (
          f"{group}: {requirement} excludes the locked {name}=={pins[name]}")
      if group == "install_requires":  # ranges: users bring their own versions.
        assert not any(spec.operator == "==" for spec in requirement.specifier), requirement


def test_lock_pins_pytorchs_cuda_libraries():
  """PyPI's torch for Linux pulls its CUDA libraries; the lock pins them, so nothing floats."""
  pins = lock()
  assert "+" not in pins["torch"]
  assert [name for name in pins if name.startswith("nvidia-")], "no nvidia-* pins"
  assert "triton" in pins and "clu" in pins


# --- the core without the extras --------------------------------------------------------------

CORE_MODULES = ("gqn_jax", "gqn_jax.model", "gqn_jax.train_step", "gqn_jax.parallel",
                "gqn_jax.objective", "gqn_jax.checkpoints", "gqn_jax.config", "gqn_jax.trainer",
                "gqn_jax.logging_utils", "gqn_jax.evaluation", "gqn_jax.configs.tiny",
                "gqn_jax.configs.paper", "gqn_jax.train", "gqn_jax.extras")


def test_core_imports_without_tensorflow_mujoco_beam_torch():
  result = run_python(f"""
      import importlib
      for name in {CORE_MODULES!r}:
        importlib.import_module(name)
      import jax
      from gqn_jax import config as config_lib, train_step
      from gqn_jax.configs import tiny
      from gqn_jax.model import GQN
      model = GQN(config_lib.model_config(tiny.get_config().model))
      params = train_step.init_params(model, jax.random.key(0))
      print("params", sum(x.size for x in jax.tree.leaves(params)))
      print("loaded", sorted(m for m in {OPTIONAL!r} if m in sys.modules))
      """, blocked=OPTIONAL)
  assert result.returncode == 0, result.stderr
  assert "loaded []" in result.stdout
  assert int(result.stdout.split("params ")[1].split()[0]) > 0


def test_missing_extra_is_one_line_naming_it():
  result = run_python("""
      from gqn_jax import extras, input_pipeline
      try:
        input_pipeline.create_dataset("rooms_ring_camera", "train", global_batch_size=2,
                                    image_size=64)
      except extras.MissingExtraError as error:
        print(error)
      """, blocked=("tensorflow_datasets",))
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == ("reading the prepared TFDS dataset needs tensorflow_datasets, "
                                   "which is not installed: pip install 'gqn_jax[data]'")


def test_console_script_with_a_missing_extra_prints_one_line(tmp_path):
  result = run_python("""
      sys.argv[0] = "gqn-generate"
      from gqn_jax.generate import run
      sys.exit(run())
      """, "--name=rooms_ring_camera", f"--contact_sheet={tmp_path / 'sheet.png'}",
      blocked=("mujoco",))
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      "error: rendering scenes needs mujoco, which is not installed: pip install 'gqn_jax[scenes]'")
  assert not (tmp_path / "sheet.png").exists()


def test_require_names_a_missing_module_and_passes_other_errors(tmp_path, monkeypatch):
  with pytest.raises(extras.MissingExtraError, match=r"pip install 'gqn_jax\[figures\]'$"):
    extras.require("gqn_jax_no_such_module.sub", "figures")
  # A module that is there but fails inside: reinstalling an extra would not help.
  (tmp_path / "gqn_jax_broken_module.py").write_text("import gqn_jax_no_such_dependency\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  with pytest.raises(ModuleNotFoundError) as error:
    extras.require("gqn_jax_broken_module", "figures")
  assert not isinstance(error.value, extras.MissingExtraError)
  assert extras.available("json") and not extras.available("gqn_jax_no_such_module")


# --- console scripts ---------------------------------------------------------------------------

def console_scripts() -> dict[str, str]:
  lines = setup_cfg()["options.entry_points"]["console_scripts"].strip().splitlines()
  return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


# A flag each script defines, that --help must list.
EXPECTED_FLAG = {"gqn-train": "workdir", "gqn-evaluate": "num_scenes",
                 "gqn-generate": "train_scenes", "gqn-render": "ring_size",
                 "gqn-summary": "json", "gqn-probe": "label_scenes"}


@pytest.mark.parametrize("script", sorted(EXPECTED_FLAG))
def test_console_script_help_lists_its_flags(script):
  """Run as pip's generated wrapper runs it: sys.argv[0] is the script, not the module."""
  assert set(console_scripts()) == set(EXPECTED_FLAG)
  module, function = console_scripts()[script].split(":")
  result = run_python(f"""
      sys.argv[0] = {script!r}
      from {module} import {function} as entry_point
      sys.exit(entry_point())
      """, "--help")
  assert "Traceback" not in result.stderr, result.stderr  # (absl's --help exits with 1.)
  listed = re.findall(r"^  --(?:\[no\])?(\w+):", result.stdout, re.M)
  assert EXPECTED_FLAG[script] in listed, result.stdout


def test_a_gs_path_without_the_gcs_extra_is_one_line_naming_it(monkeypatch):
  """What reads gs:// (gcsfs, or TensorFlow's gfile; google-cloud-storage for orbax) is looked
  up only when a value is a gs:// path; missing, the error names the path and the extra."""
  found = {"tensorflow": False, "gcsfs": False, "google.cloud.storage": True}
  monkeypatch.setattr(extras, "available", lambda module: found[module])
  extras.check_cloud_storage(["runs/local", 3, None])  # no gs:// value: nothing is needed.
  with pytest.raises(extras.MissingExtraError,
                     match=r"^the gs:// path gs://b/run needs gcsfs, which is not installed: "
                           r"pip install gcsfs google-cloud-storage$"):
    extras.check_cloud_storage(["runs/local", "gs://b/run"])
  found["tensorflow"] = True  # TensorFlow's gfile reads gs:// in gcsfs's place...
  extras.check_cloud_storage(["gs://b/run"])
  found["google.cloud.storage"] = False  # ...but orbax still needs google-cloud-storage.
  with pytest.raises(extras.MissingExtraError, match="needs google-cloud-storage"):
    extras.check_cloud_storage(["gs://b/run"])
