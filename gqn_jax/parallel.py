"""Processes and meshes: one mesh axis, ``data``, over every device of every process.

The training state is replicated on all devices; each global batch is split on its leading
(scene) axis. The program that runs on the mesh is ``train_step.make_train_step``::

  parallel.initialize()                          # before anything else touches JAX
  mesh = parallel.data_mesh()
  with jax.set_mesh(mesh):
    state = parallel.replicate(state, mesh)
    step = train_step.make_train_step(model, optim_cfg, mesh)
    for local_batch in batches:                  # this process's rows of the global batch
      state, metrics = step(state, parallel.shard_batch(local_batch, mesh), rng)

Multi-host: every process runs the same program on its own slice of the global batch.
``initialize`` starts ``jax.distributed`` from explicit flags, or by JAX's own detection on a
cluster (SLURM, Open MPI, Cloud TPU pods).
"""

import os
from typing import Literal

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
DistributedMode = Literal["auto", "on", "off"]
DISTRIBUTED_MODES = ("auto", "on", "off")


def _cluster_detected() -> bool:
  """Whether a multi-process launcher started us (SLURM srun, Open MPI mpirun)."""
  for variable in ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
    value = os.environ.get(variable, "")
    if value.isdigit() and int(value) > 1:
      # SLURM's variables must all be there for JAX's detection to work.
      return not variable.startswith("SLURM") or "SLURM_JOB_ID" in os.environ
  return False


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, mode: DistributedMode = "auto") -> bool:
  """Starts multi-process JAX when asked to or when a cluster launcher is detected.

  Args:
    coordinator_address: ``host:port`` of process 0's coordinator service.
    num_processes, process_id: this job's process count and this process's index.
    mode: ``'on'`` always initializes (JAX fills unset arguments in from the cluster, e.g. on
      a Cloud TPU pod); ``'off'`` never does; ``'auto'`` does when any argument is given or a
      SLURM / Open MPI launch of more than one process is detected.

  Returns:
    Whether ``jax.distributed`` was initialized. Must run before any other JAX call.
  """
  if mode not in DISTRIBUTED_MODES:
    raise ValueError(f"distributed mode must be one of {DISTRIBUTED_MODES}, got {mode!r}")
  explicit = any(v is not None for v in (coordinator_address, num_processes, process_id))
  if mode == "off":
    if explicit:
      raise ValueError("distributed mode 'off' contradicts the coordinator_address / "
                       "num_processes / process_id given")
    return False
  if mode == "auto" and not explicit and not _cluster_detected():
    return False
  # CPU processes need a collectives backend to all-reduce across hosts; accelerators ignore it.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  return True


def data_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh named ``data`` over ``devices`` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices)


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree, mesh):
  """Places a host or single-device pytree on every device of the mesh.

  Every process must pass the same values (as they do for a state built from the same seed or
  restored from the same checkpoint).
  """
  sharding = replicated(mesh)

  def to_global(x):
    if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
      data = to_global(jax.random.key_data(x))  # keys do not convert to NumPy; their bits do.
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(sharding, x, x.shape)

  return jax.tree.map(to_global, tree)


def check_batch_size(global_batch_size: int, mesh, where: str = "config.train.batch_size"):
  """The global batch must split evenly over processes and devices; says which does not."""
  devices, processes = mesh.devices.size, jax.process_count()
  if global_batch_size % devices:
    raise ValueError(f"{where}={global_batch_size} does not split over the {devices} devices "
                     f"of the mesh ({processes} process(es)); use a multiple of {devices}")


def shard_batch(local_batch, mesh):
  """This process's rows of a global batch -> global arrays sharded on the leading axis.

  Process i holds rows [i * B / P, (i + 1) * B / P) of the global batch of B scenes, which is
  what ``input_pipeline.create_dataset`` yields on process i.
  """
  sharding = batch_sharding(mesh)
  processes = jax.process_count()

  def to_global(x):
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(
        sharding, x, (x.shape[0] * processes,) + x.shape[1:])

  return jax.tree.map(to_global, local_batch)
