# Stages shared by experiments/demo.sh and experiments/reference.sh (sourced, not run):
# timed stages, scene generation and the TFDS build, each skipping what is already done.
# Needs PY, TFDS and NAME set by the caller.

STAGES_START=$(date +%s)
STAGES_LAST=$STAGES_START
STAGE_TIMES=()

stage() { echo; echo "== $1"; }

# done_stage LABEL: records the time since the previous stage ended.
done_stage() {
  local now; now=$(date +%s)
  STAGE_TIMES+=("$(printf '%-34s %6d s' "$1" $((now - STAGES_LAST)))")
  STAGES_LAST=$now
}

print_stage_times() {
  echo
  echo "== Stage times (load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
  printf '%s\n' "${STAGE_TIMES[@]}"
  printf '%-34s %6d s\n' "total" $(($(date +%s) - STAGES_START))
}

# generate_scenes ROOT TRAIN_SCENES TEST_SCENES DATA_DIR: $NAME scenes into ROOT. Shard names
# depend on the counts, so scenes (and a dataset built from them) of other counts are removed
# rather than mixed in; gqn_jax.generate itself skips the shards already written.
generate_scenes() {
  local root=$1 train=$2 test=$3 data_dir=$4 counts="$2 train + $3 test"
  if [ "$(cat "$root/.counts" 2>/dev/null)" != "$counts" ]; then
    rm -rf "${root:?}/$NAME" "${data_dir:?}"
  fi
  "$PY" -m gqn_jax.generate --name="$NAME" --root="$root" --train_scenes="$train" \
    --test_scenes="$test"
  mkdir -p "$root"
  echo "$counts" > "$root/.counts"
}

# build_dataset ROOT DATA_DIR LOG: the TFDS dataset gqn/generated_$NAME from ROOT's scenes,
# unless built; on failure, the log's tail and where the whole log is.
build_dataset() {
  local root=$1 data_dir=$2 log=$3
  if [ -n "$(ls "$data_dir"/gqn/generated_"$NAME"/*/dataset_info.json 2>/dev/null)" ]; then
    echo "already built"
  elif ! "$TFDS" build data/gqn --config=generated_"$NAME" --data_dir="$data_dir" \
      --manual_dir="$root" --file_format=array_record > "$log" 2>&1; then
    tail -n 40 "$log"
    echo "tfds build failed; full log: $log" >&2
    exit 1
  else
    echo "built (log: $log)"
  fi
}
