"""Checksums of a short tiny-config training run, to show a refactor leaves training bit-identical.

  python tests/_bit_identity.py OUT.json [DEVICES]

Trains the tiny config for 6 steps on synthetic global batches (tests/_train_synthetic.py) with
``trainer.train_and_evaluate`` on DEVICES simulated CPU devices (default 1), evaluation and
pictures on, and writes SHA-256 digests of the final parameters and optimizer state, the logged
train and eval means, and a digest of the last picture. Run it before and after a change and
compare the two files: equal digests mean equal bits. Not a test (nothing is hard-coded): the
reference is whatever the code before the change produced.

XLA_FLAGS get the CPU flags the command-line entry points set (gqn_jax/xla_flags.py), so
both runs compile as ``gqn-train`` does, whichever module sets it.
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]


def _digest(tree) -> str:
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  sha = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]:
    leaf = np.asarray(leaf)
    sha.update(jax.tree_util.keystr(path).encode())
    sha.update(str(leaf.dtype).encode() + str(leaf.shape).encode())
    sha.update(np.ascontiguousarray(leaf).tobytes())
  return sha.hexdigest()


def _run(out: pathlib.Path) -> None:
  import jax  # pylint: disable=import-outside-toplevel
  import _train_synthetic  # pylint: disable=import-outside-toplevel
  from gqn_jax import trainer  # pylint: disable=import-outside-toplevel
  from gqn_jax.configs import tiny  # pylint: disable=import-outside-toplevel
  config = tiny.get_config()
  config.train.update(num_steps=6, log_every_steps=2, checkpoint_every_steps=6,
                      eval_every_steps=3, eval_batches=2, image_every_steps=6, image_scenes=2,
                      prior_samples=2, progress_bar=False, batch_size=4)
  with tempfile.TemporaryDirectory() as workdir:
    result = trainer.train_and_evaluate(config, workdir, data=_train_synthetic.data(config))
    image = hashlib.sha256(pathlib.Path(result["image"]).read_bytes()).hexdigest()
  state = result["state"]
  record = {
      "devices": jax.device_count(),
      "step": result["step"],
      "params_sha256": _digest(state.params),
      "opt_state_sha256": _digest(state.opt_state),
      "params_sum": float(sum(float(abs(x).sum()) for x in jax.tree.leaves(
          jax.device_get(state.params)))),
      "train": result["train"],
      "eval": result["eval"],
      "image_sha256": image,
  }
  out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
  print(json.dumps(record, sort_keys=True))


def main():
  out = pathlib.Path(sys.argv[1]).resolve()
  devices = int(sys.argv[2]) if len(sys.argv) > 2 else 1
  if os.environ.get("_GQN_BIT_IDENTITY_CHILD"):
    _run(out)
    return
  flags = ["--xla_disable_hlo_passes=cse_barrier_expander"]
  if devices > 1:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=" ".join(flags),
             _GQN_BIT_IDENTITY_CHILD="1",
             PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
  subprocess.run([sys.executable, __file__, str(out), str(devices)], env=env, cwd=REPO,
                 check=True)


if __name__ == "__main__":
  main()
