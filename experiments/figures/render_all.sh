#!/bin/sh
# Evaluates one training run and renders every figure of it into one directory.
#
#   sh experiments/figures/render_all.sh <workdir> [<output dir>] [flags]
#   sh experiments/figures/render_all.sh runs/demo runs/demo/figures --data_dir=data/tfds
#
# The flags go to every command, so only those that gqn_jax.evaluate, gqn_jax.render and
# gqn_jax.probe all take: --data_dir, --split, --step, --seed. EVAL_FLAGS go to gqn_jax.evaluate
# alone (e.g. EVAL_FLAGS=--num_scenes=400).
#
# Writes evaluation.json (and prints its table), novel_views.png, uncertainty.png,
# self_correction.png, flyaround.gif, training_curves.png, scene_algebra.png (rooms only;
# skipped with a note otherwise), and representation_space.png and probe.png (+ probe.json)
# for generated scenes only (they need the scenes' factors). PYTHON defaults to the project's
# virtual environment.
set -eu
if [ $# -lt 1 ]; then
  echo "usage: $0 <workdir> [<output dir>] [--data_dir= --split= --step= --seed=]" >&2
  exit 2
fi
WORKDIR=$1
OUT=${2:-$WORKDIR/figures}
[ $# -ge 2 ] && shift 2 || shift 1
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"

# shellcheck disable=SC2086  # EVAL_FLAGS is a list of flags.
"$PYTHON" -m gqn_jax.evaluate --workdir="$WORKDIR" --output="$OUT/evaluation.json" ${EVAL_FLAGS:-} "$@"
for FIGURE in novel_views uncertainty self_correction training_curves; do
  "$PYTHON" -m gqn_jax.render "$FIGURE" --workdir="$WORKDIR" --output="$OUT/$FIGURE.png" "$@"
done
"$PYTHON" -m gqn_jax.render flyaround --workdir="$WORKDIR" --output="$OUT/flyaround.gif" "$@"
# These need rooms (scene_algebra) and scene factors (representation_space, probe): a run on
# other data gets a one-line error naming why, and the script goes on.
for FIGURE in scene_algebra representation_space; do
  "$PYTHON" -m gqn_jax.render "$FIGURE" --workdir="$WORKDIR" --output="$OUT/$FIGURE.png" "$@" \
    || echo "skipped $FIGURE (see the error above)" >&2
done
"$PYTHON" -m gqn_jax.probe --workdir="$WORKDIR" --output="$OUT/probe.png" "$@" \
  || echo "skipped probe (see the error above)" >&2
echo "figures in $OUT"
