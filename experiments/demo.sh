#!/usr/bin/env bash
# `make demo`: generate rooms, build them into a TFDS dataset, train the demo model, and draw
# what it predicts for views it has not seen; every stage is timed (experiments/README.md,
# The demo, gives the last measured times). Rerunning skips what is done (scenes, dataset,
# finished training); `rm -rf runs/demo` trains again.
#
# Environment: DEMO_TRAIN_SCENES / DEMO_TEST_SCENES (scenes to generate), DEMO_WORKDIR (run
# directory); extra arguments go to gqn_jax.train, e.g. --config.train.num_steps=500.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
TFDS=${TFDS:-.venv/bin/tfds}
TRAIN_SCENES=${DEMO_TRAIN_SCENES:-1200}
TEST_SCENES=${DEMO_TEST_SCENES:-100}
WORKDIR=${DEMO_WORKDIR:-runs/demo}
NAME=rooms_ring_camera
SCENES_ROOT=data/generated/demo   # kept apart from other generated sets: a dataset directory
DATA_DIR=data/tfds/demo           # holds the scenes of one generation run only.
CONFIG=experiments/configs/demo.py
REFERENCE=${DEMO_REFERENCE:-pretrained/rooms_ring_camera_32px}  # gqn_jax/configs/reference.py, trained
SCENE_COUNTS="$TRAIN_SCENES train + $TEST_SCENES test"

mkdir -p "$WORKDIR/logs"
source experiments/stages.sh

stage "1/5 Generating $SCENE_COUNTS $NAME scenes (MuJoCo) into $SCENES_ROOT"
generate_scenes "$SCENES_ROOT" "$TRAIN_SCENES" "$TEST_SCENES" "$DATA_DIR"
done_stage "generate scenes"

stage "2/5 Building TFDS dataset gqn/generated_$NAME in $DATA_DIR"
build_dataset "$SCENES_ROOT" "$DATA_DIR" "$WORKDIR/logs/tfds_build.log"
done_stage "build TFDS dataset"

stage "3/5 Training $CONFIG in $WORKDIR (TensorBoard: tensorboard --logdir=$WORKDIR)"
"$PY" -m gqn_jax.train --config="$CONFIG" --workdir="$WORKDIR" --verbosity=-1 "$@" \
  | tee "$WORKDIR/logs/train_summary.txt"
done_stage "train (compile included)"

stage "4/5 Picture"
PICTURE=$(ls -1 "$WORKDIR"/images/step_*.png | tail -n 1)
"$PY" experiments/figures/enlarge.py "$PICTURE" "$WORKDIR/demo.png" 4
done_stage "picture"

stage "5/5 The shipped reference model ($REFERENCE) on the same held-out scenes"
if [ -d "$REFERENCE/checkpoints" ]; then
  "$PY" -m gqn_jax.render novel_views --workdir="$REFERENCE" --data_dir="$DATA_DIR" \
    --output="$WORKDIR/reference_novel_views.png" --scenes=6 --samples=4
else
  echo "no shipped model at $REFERENCE: skipped"
fi
done_stage "reference model's predictions"

print_stage_times
echo
grep -h "finished at step" "$WORKDIR/logs/train_summary.txt" || true
echo "Each row: context views (grey: unused) | true query view | reconstruction | 4 samples"
echo "from the prior, i.e. the model's predictions of the query view from the context alone."
echo "picture: $WORKDIR/demo.png (4x enlarged; original $PICTURE)"
if [ -f "$WORKDIR/reference_novel_views.png" ]; then
  echo "the shipped reference model (an hour of CPU training) on the same held-out scenes:"
  echo "  $WORKDIR/reference_novel_views.png"
fi
