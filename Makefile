# gqn_jax: `make demo` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Headless MuJoCo rendering on CPU machines uses OSMesa; tcmalloc makes the CPU train step
# faster (gqn_jax/allocator.py says why).
APT_PACKAGES := libosmesa6 libgl1 libegl1 libtcmalloc-minimal4
# Two worker processes (pytest-xdist): both cores busy, and no single process accumulates every
# test's compiled programs, threads and imported runtimes (TensorFlow, PyTorch, JAX) - a serial
# run of the whole suite once died with a segmentation fault in CI. worksteal: a worker that
# runs out of tests takes queued ones from the other, so the minute-long multi-process tests do
# not leave one core idle at the end. PYTEST_FLAGS= runs serially.
PYTEST_FLAGS ?= -n 2 --dist worksteal

.PHONY: setup system-packages test test-fast demo reference bench bench-reference profile-reference bench-memory bench-activations bench-convs \
	bench-b36 bench-bf16 bench-gpu bench-generate bench-input summary \
	contact-sheets tfds-generated figures clean

setup: $(STAMP)

# Everything (every extra: scenes, data, tensorboard, figures, baseline, test) at the versions
# in requirements.lock, all from the public index (PyPI). PyPI's torch for Linux is a CUDA build
# (with its nvidia-* CUDA libraries) that runs on CPU-only machines too. Optional, smaller:
# PyTorch's CPU-only build from PyTorch's own index, installed first so that it stands for the
# lock's torch==2.13.0 (2.13.0+cpu satisfies it):
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

$(STAMP): setup.cfg requirements.lock pyproject.toml
	@$(MAKE) --no-print-directory system-packages
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet -c requirements.lock --no-deps --index-url $(TORCH_INDEX) torch)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[all]'
	touch $(STAMP)

system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing system packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "NOTE: install these system packages (Debian/Ubuntu names) for headless rendering and a faster CPU allocator: $$missing"; \
	  echo "      e.g. sudo apt-get install $$missing"; \
	fi

test: setup
	$(PY) -m pytest $(PYTEST_FLAGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_FLAGS)

summary: setup
	$(PY) -m gqn_jax.summary --config=gqn_jax/configs/paper.py

# The README's main job: generate rooms, train the demo model, render novel views.
demo: setup
	bash experiments/demo.sh

# A shipped reference model from nothing: scenes, dataset, training on 2 CPU cores, evaluation,
# figures (experiments/reference.sh; rerun to resume). Not part of the tests. The rooms model by
# default; REFERENCE=shepard_metzler_7_parts for the second one.
reference: setup
	bash experiments/reference.sh

# gqn_jax against the PyTorch baseline; writes JSON and the markdown table the README quotes.
bench: setup
	$(PY) -m experiments.benchmark  # experiments/results/benchmark.{json,md}

bench-memory: setup
	$(PY) -m experiments.memory_analysis

# What each implementation keeps for the backward pass (traced / one forward pass; minutes).
bench-activations: setup
	$(PY) -m experiments.saved_activations

bench-convs: setup
	$(PY) -m experiments.benchmark_convs

# float32 against bfloat16 compute, gqn_jax and PyTorch (autocast), the paper model at batch 4.
bench-bf16: setup
	$(PY) -m experiments.benchmark --cases paper-tower paper-tower-bf16 \
	  --output=experiments/results/benchmark_bf16.json
	$(PY) -m experiments.benchmark_precision
	$(PY) -m experiments.memory_analysis --batch 4 --remat false --dtype float32 bfloat16 \
	  --output=experiments/results/memory_bf16.json

# The paper's batch on this CPU: one warm-up and two timed steps each.
bench-b36: setup
	$(PY) -m experiments.benchmark --suite=cpu-b36 --warmup_steps=1 --timed_steps=2

# A machine with an NVIDIA GPU: CUDA builds of JAX (jax[cuda13]) and PyTorch (PyPI's
# torch==2.13.0 for Linux, put back in place of a CPU-only build) into .venv, then the paper
# model at batch 36 in float32 and bfloat16, gqn_jax and PyTorch on the GPU (the case fails
# saying so when PyTorch or JAX sees no GPU).
bench-gpu: setup
	bash experiments/launch_multi_gpu.sh install
	$(PY) -m experiments.benchmark --suite=gpu

# The reference model's step (gqn_jax/configs/reference.py, batch 16) against PyTorch's; its
# steps are short, so the median of 15 is cheap and steadier than the default 3.
bench-reference: setup
	$(PY) -m experiments.benchmark --suite=reference --warmup_steps=3 --timed_steps=15

profile-reference: setup
	$(PY) -m experiments.profile_step

bench-generate: setup
	$(PY) -m experiments.benchmark_generate

bench-input: setup
	$(PY) -m experiments.benchmark_input

contact-sheets: setup
	$(PY) -m gqn_jax.generate --name=rooms_ring_camera --contact_sheet=docs/images/contact_sheet_rooms.png --contact_sheet_scenes=5
	$(PY) -m gqn_jax.generate --name=shepard_metzler_7_parts --contact_sheet=docs/images/contact_sheet_shepard_metzler.png --contact_sheet_scenes=5
	$(PY) -m gqn_jax.generate --name=mazes --contact_sheet=docs/images/contact_sheet_mazes.png --contact_sheet_scenes=5 --contact_sheet_frames=12
	$(PY) -m gqn_jax.generate --name=jaco --contact_sheet=docs/images/contact_sheet_jaco.png --contact_sheet_scenes=5

tfds-generated: setup
	$(VENV)/bin/tfds build data/gqn --config=generated_rooms_ring_camera --data_dir=data/tfds --file_format=array_record

RUN ?= runs/demo
# Evaluate a run against the baselines and render every figure into $(RUN)/figures.
figures: setup
	sh experiments/figures/render_all.sh $(RUN)

clean:
	rm -rf $(VENV) runs .pytest_cache data/generated/demo data/tfds/demo
