#!/usr/bin/env bash
# Trains gqn_jax on GPUs: every GPU of one host, or (`slurm`) every GPU of several hosts.
#
#   bash experiments/launch_multi_gpu.sh install      # once: CUDA builds of JAX and PyTorch
#   bash experiments/launch_multi_gpu.sh local        # one process, all local GPUs
#   NODES=4 bash experiments/launch_multi_gpu.sh slurm   # sbatch: NODES x GPUS_PER_NODE
#
# One host: a single process drives all its GPUs; the data mesh spans them and the global
# batch is split between them. SLURM: one process per GPU (JAX's SLURM detection assigns
# GPU number SLURM_LOCALID to each task, so every task must see all GPUs of its node); the
# processes find each other from SLURM's variables (--distributed=auto).
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=${DATASET:-rooms_ring_camera}        # any experiments/configs/<dataset>.py
WORKDIR=${WORKDIR:-runs/$DATASET}            # on a filesystem all nodes share, for slurm.
DATA_DIR=${DATA_DIR:-data/tfds}
NODES=${NODES:-2}
PY=.venv/bin/python

local_gpus() { nvidia-smi --list-gpus | wc -l; }
# The paper's batch of 36 rounded up to a multiple of the device count.
round_batch() { echo $(( (36 + $1 - 1) / $1 * $1 )); }

# Where PyTorch's CUDA build comes from when .venv holds a CPU-only one (make setup
# TORCH_INDEX=...): PyPI, whose Linux torch is a CUDA build. Only pip's configuration is
# ignored for that one install (a local wheel folder may hold a +cpu build, which pip prefers).
TORCH_CUDA_INDEX=${TORCH_CUDA_INDEX:-https://pypi.org/simple}

install() {
  make setup
  if ! "$PY" -c 'import sys, torch; sys.exit(torch.version.cuda is None)' 2>/dev/null; then
    echo "replacing .venv's CPU-only torch with PyPI's CUDA build"
    PIP_CONFIG_FILE=/dev/null "$PY" -m pip install --isolated --quiet --index-url "$TORCH_CUDA_INDEX" \
      -c requirements.lock --no-deps --force-reinstall torch
    PIP_CONFIG_FILE=/dev/null "$PY" -m pip install --isolated --quiet --index-url "$TORCH_CUDA_INDEX" \
      -c requirements.lock torch   # its nvidia-* CUDA libraries, at the lock's versions.
  fi
  # JAX's CUDA 13 plugin, at the lock's jax: the same CUDA 13 libraries as torch==2.13.0 (the
  # lock's nvidia-* pins satisfy both).
  "$PY" -m pip install --quiet -c requirements.lock \
    "jax[cuda13]==$(sed -n 's/^jax==//p' requirements.lock)"
  "$PY" -c 'import jax, torch; print("JAX:", jax.devices(), "| PyTorch", torch.__version__,
    "CUDA", torch.version.cuda, "GPU available:", torch.cuda.is_available())'
}

run_local() {
  local gpus; gpus=$(local_gpus)
  local batch=${BATCH:-$(round_batch "$gpus")}
  echo "training $DATASET on $gpus GPUs, global batch $batch, workdir $WORKDIR"
  "$PY" -m gqn_jax.train --config="experiments/configs/$DATASET.py" --workdir="$WORKDIR" \
    --config.data.data_dir="$DATA_DIR" --config.train.batch_size="$batch" "${@}"
}

run_slurm() {
  local gpus=${GPUS_PER_NODE:-8}
  local batch=${BATCH:-$(round_batch $((NODES * gpus)))}
  mkdir -p "$WORKDIR"
  sbatch --job-name="gqn-$DATASET" --nodes="$NODES" --ntasks-per-node="$gpus" \
    --gpus-per-node="$gpus" --cpus-per-task="${CPUS_PER_TASK:-8}" \
    --output="$WORKDIR/slurm-%j.out" --wrap="srun --gpu-bind=none $PY -m gqn_jax.train \
      --config=experiments/configs/$DATASET.py --workdir=$WORKDIR --distributed=auto \
      --config.data.data_dir=$DATA_DIR --config.train.batch_size=$batch \
      --config.train.progress_bar=False $*"
  echo "submitted: $DATASET on $NODES x $gpus GPUs, global batch $batch, workdir $WORKDIR"
}

case "${1:-}" in
  install) install ;;
  local) shift; run_local "$@" ;;
  slurm) shift; run_slurm "$@" ;;
  *) echo "usage: $0 {install|local|slurm} [--config.<field>=<value> ...]" >&2; exit 2 ;;
esac
