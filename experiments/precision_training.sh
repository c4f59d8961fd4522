#!/usr/bin/env bash
# Trains the demo model twice on `make demo`'s rooms, float32 and bfloat16 compute, from the same
# seed, and prints each run's closing line (train and eval loss): does bfloat16 learn as well?
#
#   bash experiments/precision_training.sh [STEPS]     (default 300 steps a run)
#
# Needs the dataset `make demo` builds (data/tfds/demo). Runs land in runs/precision/<dtype>;
# rerunning starts them afresh. experiments/README.md quotes the result.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
STEPS=${1:-300}
if [ ! -d data/tfds/demo ]; then
  echo "data/tfds/demo is missing: run 'make demo' first (it generates and builds the rooms)" >&2
  exit 1
fi
for DTYPE in float32 bfloat16; do
  WORKDIR=runs/precision/$DTYPE
  rm -rf "$WORKDIR"
  echo "== $DTYPE: $STEPS steps into $WORKDIR"
  "$PY" -m gqn_jax.train --config=experiments/configs/demo.py --workdir="$WORKDIR" \
    --verbosity=-1 --config.model.dtype="$DTYPE" --config.train.num_steps="$STEPS" \
    --config.train.eval_every_steps="$STEPS" --config.train.image_every_steps="$STEPS" \
    --config.train.checkpoint_every_steps="$STEPS" | grep "finished at step"
done
