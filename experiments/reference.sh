#!/usr/bin/env bash
# `make reference`: a shipped reference model from nothing. Generates scenes, builds them into
# the TFDS dataset, trains the reference config, evaluates it on held-out scenes and renders
# every figure; each stage is timed. Rerunning continues where it stopped: finished scenes and
# the built dataset are kept, and the training resumes exactly from its latest checkpoint. The
# training is the longest stage (each model card says how long the shipped run took).
#
# REFERENCE picks the model (default rooms_ring_camera):
#   rooms_ring_camera        gqn_jax/configs/reference.py -> runs/reference
#                            (shipped as pretrained/rooms_ring_camera_32px)
#   shepard_metzler_7_parts  gqn_jax/configs/reference_shepard_metzler.py
#                            -> runs/reference_shepard_metzler
#                            (shipped as pretrained/shepard_metzler_7_parts_32px)
# Environment: REFERENCE_TRAIN_SCENES / REFERENCE_TEST_SCENES, REFERENCE_WORKDIR, NICE (a
# niceness for the training, default 0); extra arguments go to gqn_jax.train, e.g.
# --config.train.num_steps=2000 for a shorter run. Afterwards
#   python -m gqn_jax.pretrained export <workdir> pretrained/<name>
# writes the parameters-only run directory that the repository ships.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
TFDS=${TFDS:-.venv/bin/tfds}
NAME=${REFERENCE:-rooms_ring_camera}
case "$NAME" in
  # The data directories are the configs' data.data_dir.
  rooms_ring_camera) SUFFIX=""; DEFAULT_TRAIN=20000 ;;
  shepard_metzler_7_parts) SUFFIX="_shepard_metzler"; DEFAULT_TRAIN=10000 ;;
  *) echo "REFERENCE=$NAME: the reference models are rooms_ring_camera and" \
       "shepard_metzler_7_parts" >&2; exit 2 ;;
esac
CONFIG=gqn_jax/configs/reference$SUFFIX.py
TRAIN_SCENES=${REFERENCE_TRAIN_SCENES:-$DEFAULT_TRAIN}
TEST_SCENES=${REFERENCE_TEST_SCENES:-400}
WORKDIR=${REFERENCE_WORKDIR:-runs/reference$SUFFIX}
NICE=${NICE:-0}
SCENES_ROOT=data/generated/reference$SUFFIX
DATA_DIR=data/tfds/reference$SUFFIX
SCENE_COUNTS="$TRAIN_SCENES train + $TEST_SCENES test"

mkdir -p "$WORKDIR/logs"
source experiments/stages.sh

stage "1/5 Generating $SCENE_COUNTS $NAME scenes into $SCENES_ROOT"
generate_scenes "$SCENES_ROOT" "$TRAIN_SCENES" "$TEST_SCENES" "$DATA_DIR"
done_stage "generate scenes"

stage "2/5 Building TFDS dataset gqn/generated_$NAME in $DATA_DIR"
build_dataset "$SCENES_ROOT" "$DATA_DIR" "$WORKDIR/logs/tfds_build.log"
done_stage "build TFDS dataset"

stage "3/5 Training $CONFIG in $WORKDIR (TensorBoard: tensorboard --logdir=$WORKDIR)"
nice -n "$NICE" "$PY" -m gqn_jax.train --config="$CONFIG" --workdir="$WORKDIR" --verbosity=-1 \
  "$@" | tee -a "$WORKDIR/logs/train_summary.txt"
done_stage "train (compile included)"

stage "4/5 Evaluating on $TEST_SCENES held-out scenes; 5/5 figures into $WORKDIR/figures"
EVAL_FLAGS="--num_scenes=$TEST_SCENES" sh experiments/figures/render_all.sh "$WORKDIR" \
  "$WORKDIR/figures"
# The README's picture: the last training image, 3x enlarged.
"$PY" experiments/figures/enlarge.py "$(ls -1 "$WORKDIR"/images/step_*.png | tail -n 1)" \
  "$WORKDIR/figures/training_image.png" 3
done_stage "evaluate and figures"

print_stage_times
