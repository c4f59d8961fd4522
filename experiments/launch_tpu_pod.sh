#!/usr/bin/env bash
# Trains gqn_jax on a Cloud TPU VM pod slice: one process per host, all in lockstep.
#
#   PROJECT=my-project BUCKET=my-bucket bash experiments/launch_tpu_pod.sh all
#
# Steps (run one at a time, or `all` in order):
#   create   create the TPU VM slice
#   copy     copy this checkout (git archive of HEAD) to every worker
#   install  uv, a Python 3.11 venv, gqn_jax[data,tensorboard] + jax[tpu] on every worker;
#            gcsfuse mounts the data bucket
#   train    start training on every worker (--worker=all), detached, logging to train.log
#   logs     follow worker 0's log
#   delete   delete the slice
#
# Data: the TFDS dataset is built once (experiments/README.md) and copied to
# gs://$BUCKET/tfds/gqn/<config>/...; workers read it through a gcsfuse mount at /mnt/gqn,
# each process only its own 1/P of the records. Checkpoints and TensorBoard events go straight
# to gs://$BUCKET/runs/$RUN (orbax writes gs:// itself), shared by all workers as orbax needs.
#
# Runtime (TPU software version, gcloud's --version), by TPU generation, as Cloud TPU's
# "TPU software versions" page lists them:
#   v6e (Trillium)    v2-alpha-tpuv6e        e.g. ACCELERATOR=v6e-16      ZONE=us-east5-b
#   v5p               v2-alpha-tpuv5         e.g. ACCELERATOR=v5p-16      ZONE=us-east5-a
#   v5e               v2-alpha-tpuv5-lite    e.g. ACCELERATOR=v5litepod-16 ZONE=us-west4-a
#   v4 and older      tpu-ubuntu2204-base    e.g. ACCELERATOR=v4-16       ZONE=us-central2-b
# RUNTIME defaults to the one for ACCELERATOR's generation. All of them are Ubuntu 22.04, whose
# python3 is 3.10, older than gqn_jax's 3.11: `install` therefore installs uv
# (https://docs.astral.sh/uv/) and lets it fetch a standalone CPython $PYTHON_VERSION for the
# venv; the system Python is left alone. (The zones are examples; check where your quota is.)
set -euo pipefail

: "${PROJECT:?set PROJECT to your Google Cloud project}"
: "${BUCKET:?set BUCKET to a GCS bucket (no gs:// prefix) holding tfds/ and receiving runs/}"
ZONE=${ZONE:-us-central2-b}
TPU_NAME=${TPU_NAME:-gqn-pod}
ACCELERATOR=${ACCELERATOR:-v4-16}          # 8 chips on 2 hosts.
case $ACCELERATOR in
  v6e-*) default_runtime=v2-alpha-tpuv6e ;;
  v5p-*) default_runtime=v2-alpha-tpuv5 ;;
  v5litepod-*|v5e-*) default_runtime=v2-alpha-tpuv5-lite ;;
  *) default_runtime=tpu-ubuntu2204-base ;;   # v4, v3, v2
esac
RUNTIME=${RUNTIME:-$default_runtime}
PYTHON_VERSION=${PYTHON_VERSION:-3.11}     # the lock's wheels are cp311.
DATASET=${DATASET:-rooms_ring_camera}      # any experiments/configs/<dataset>.py
RUN=${RUN:-$DATASET}
REMOTE_DIR=gqn_jax

# The global batch must split evenly over the chips: the paper's 36 rounded up to a multiple
# of the chip count (v4 and v5p names count TensorCores, two per chip; v5e/v6e count chips).
cores=${ACCELERATOR##*-}
case $ACCELERATOR in v4-*|v5p-*) chips=$((cores / 2));; *) chips=$cores;; esac
BATCH=${BATCH:-$(( (36 + chips - 1) / chips * chips ))}

tpu() { gcloud compute tpus tpu-vm "$@" --project="$PROJECT" --zone="$ZONE"; }
on_all() { tpu ssh "$TPU_NAME" --worker=all --command="$1"; }

create() {
  tpu create "$TPU_NAME" --accelerator-type="$ACCELERATOR" --version="$RUNTIME"
}

copy() {
  local archive; archive=$(mktemp --suffix=.tar.gz)
  git -C "$(dirname "$0")/.." archive --format=tar.gz -o "$archive" HEAD
  tpu scp "$archive" "$TPU_NAME:gqn_jax.tar.gz" --worker=all
  on_all "rm -rf $REMOTE_DIR && mkdir -p $REMOTE_DIR && tar -xzf gqn_jax.tar.gz -C $REMOTE_DIR"
  rm -f "$archive"
}

install() {
  on_all "set -e
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl lsb-release
    if ! command -v gcsfuse >/dev/null; then
      export GCSFUSE_REPO=gcsfuse-\$(lsb_release -c -s)
      echo \"deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt \$GCSFUSE_REPO main\" | sudo tee /etc/apt/sources.list.d/gcsfuse.list
      curl -s https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null
      sudo apt-get update -qq && sudo apt-get install -y -qq gcsfuse
    fi
    sudo mkdir -p /mnt/gqn && sudo chown \$USER /mnt/gqn
    mountpoint -q /mnt/gqn || gcsfuse --implicit-dirs $BUCKET /mnt/gqn
    command -v uv >/dev/null || [ -x \$HOME/.local/bin/uv ] || curl -LsSf https://astral.sh/uv/install.sh | sh
    export PATH=\$HOME/.local/bin:\$PATH
    cd $REMOTE_DIR
    rm -rf .venv && uv venv --quiet --python $PYTHON_VERSION .venv
    # Training needs the core, TFDS (data) and TensorBoard event files; not MuJoCo or PyTorch.
    uv pip install --quiet --python .venv/bin/python -c requirements.lock -e '.[data,tensorboard]' gcsfs google-cloud-storage
    uv pip install --quiet --python .venv/bin/python \"jax[tpu]==\$(sed -n 's/^jax==//p' requirements.lock)\"
    .venv/bin/python -c 'import sys, jax; print(sys.version.split()[0], jax.process_index(), jax.local_device_count(), jax.device_count())'"
}

train() {
  # --distributed=on: JAX finds the other hosts, the process count and this host's index
  # from the TPU VM's metadata. nohup + setsid: training outlives the ssh session.
  on_all "cd $REMOTE_DIR && setsid nohup .venv/bin/python -m gqn_jax.train \
    --config=experiments/configs/$DATASET.py --workdir=gs://$BUCKET/runs/$RUN \
    --distributed=on --config.data.data_dir=/mnt/gqn/tfds --config.train.batch_size=$BATCH \
    --config.train.progress_bar=False > train.log 2>&1 < /dev/null &"
  echo "started: $DATASET on $ACCELERATOR ($chips chips), global batch $BATCH, workdir gs://$BUCKET/runs/$RUN"
}

logs() { tpu ssh "$TPU_NAME" --worker=0 --command="tail -f $REMOTE_DIR/train.log"; }

delete() { tpu delete "$TPU_NAME" --quiet; }

case "${1:-}" in
  create|copy|install|train|logs|delete) "$1" ;;
  all) create; copy; install; train ;;
  *) echo "usage: PROJECT=... BUCKET=... $0 {create|copy|install|train|logs|delete|all}" >&2; exit 2 ;;
esac
