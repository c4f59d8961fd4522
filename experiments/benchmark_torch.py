"""Times the PyTorch baseline's train step (experiments/baselines/torch_gqn), CPU or CUDA.

  .venv/bin/python -m experiments.benchmark_torch --batch 36 --context_views 5 --output \
      /tmp/benchmark_torch.jsonl                         # the paper's model (gqn_jax ModelConfig())
  .venv/bin/python -m experiments.benchmark_torch --batch 1 --context_views 2 \
      --model steps=2 --warmup_steps 1 --timed_steps 3   # a smoke run

The model defaults to gqn_jax's ``ModelConfig()``, which is the paper's architecture (64 px,
tower, L = 12, 128 hidden and canvas channels, z 3 channels); ``--model field=value`` overrides
any field. Each (batch, context views) pair runs in a fresh process, so that its peak resident
memory (``getrusage`` high-water mark) is its own. Each prints one JSON record:

  {impl: 'pytorch', config, batch, context_views, steps_per_s, scenes_per_s, compile_s,
   peak_mem_mib, ...}

steps_per_s is 1 / the median of ``--timed_steps`` train steps after ``--warmup_steps``;
compile_s is the first step's time less that median (torch.compile's tracing and code
generation with ``--compile``; eager's one-off costs without). The inputs are random tensors of
the right shapes: the data pipeline is not part of what is timed.
"""

import dataclasses
import functools
import json
import statistics
import time

from experiments import harness
from gqn_jax.config import ModelConfig, model_config

# ModelConfig fields the PyTorch model reads (the others choose among gqn_jax's implementations).
TORCH_FIELDS = ("image_size", "representation", "r_channels", "steps", "hidden_channels",
                "canvas_channels", "latent_channels", "kernel_size", "share_cores", "dtype")


def parse_overrides(pairs) -> ModelConfig:
  """['steps=2', 'share_cores=true'] -> a validated ModelConfig with those fields replaced."""
  fields = dataclasses.asdict(ModelConfig())
  for pair in pairs:
    name, sep, text = pair.partition("=")
    if not sep or name not in fields:
      raise SystemExit(f"--model takes field=value with a field of ModelConfig "
                       f"({sorted(fields)}); got {pair!r}")
    default = fields[name]
    if isinstance(default, bool):
      value = text.lower() in ("1", "true", "yes")
    elif isinstance(default, int):
      value = int(text)
    else:
      value = text
    fields[name] = value
  return model_config(fields)


def random_batch(config: ModelConfig, batch: int, context_views: int, device="cpu"):
  """Uniform images and normal poses in the train step's layout; every context view present."""
  import torch
  size = config.image_size
  tensors = dict(context_images=torch.rand(batch, context_views, 3, size, size),
                 context_poses=torch.randn(batch, context_views, 7),
                 context_mask=torch.ones(batch, context_views, dtype=torch.bool),
                 query_image=torch.rand(batch, 3, size, size),
                 query_pose=torch.randn(batch, 7))
  return {name: x.to(device) for name, x in tensors.items()}


def prepare_device(torch, device: str):
  """Checks that ``device`` ('cpu' or 'cuda') is usable and sets PyTorch up as a careful user
  would there; returns a description of the device for the record."""
  if device == "cpu":
    return "cpu"
  if device != "cuda":
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
  if not torch.cuda.is_available():
    raise RuntimeError(
        f"PyTorch {torch.__version__} sees no CUDA device (CUDA build: "
        f"{torch.version.cuda or 'none'}); on a GPU machine install a CUDA build of torch "
        f"(`pip install torch=={torch.__version__.split('+')[0]}` from PyPI is one)")
  # cuDNN picks the fastest algorithm per shape; float32 matmuls may use TF32, as XLA's do at
  # JAX's default precision (cuDNN's convolutions already allow it by default).
  torch.backends.cudnn.benchmark = True
  torch.set_float32_matmul_precision("high")
  return torch.cuda.get_device_name()


def measure(config: ModelConfig, batch: int, context_views: int, warmup_steps: int,
            timed_steps: int, compile: bool, threads: int, seed: int = 0,
            after_warmup=None, device: str = "cpu") -> dict:
  """Builds the model and times its train step; meant to run in a process of its own.

  device: 'cpu' or 'cuda'. On CUDA the record adds the caching allocator's peak over the timed
  steps (``device_peak_mem_mib``); every step ends by reading the loss, which waits for the GPU.
  """
  # Imported here, not at the top: the parent process, which only spawns and collects, never
  # loads PyTorch.
  import torch
  from experiments.baselines.torch_gqn import GQN, make_train_step
  device_name = prepare_device(torch, device)
  if threads > 0:
    torch.set_num_threads(threads)
  torch.manual_seed(seed)
  import_mem = harness.peak_rss_mib()
  model = GQN(config).to(device)
  train_step = make_train_step(model, compile=compile)
  data = random_batch(config, batch, context_views, device)

  def timed(step):
    start = time.perf_counter()
    loss = float(train_step(data, step)["loss"])  # float() waits for the step to finish.
    if loss != loss:  # NaN
      raise FloatingPointError(f"non-finite loss at step {step}")
    return time.perf_counter() - start

  first = timed(0)
  for step in range(1, warmup_steps):
    timed(step)
  if after_warmup is not None:  # e.g. restart the peak-memory count
    after_warmup()
  if device == "cuda":
    torch.cuda.reset_peak_memory_stats()
  durations = [timed(warmup_steps + i) for i in range(timed_steps)]
  median = statistics.median(durations)
  return {
      "impl": "pytorch",
      "config": {name: getattr(config, name) for name in TORCH_FIELDS},
      "batch": batch,
      "context_views": context_views,
      "steps_per_s": 1.0 / median,
      "scenes_per_s": batch / median,
      "compile_s": max(first - median, 0.0),
      "peak_mem_mib": harness.peak_rss_mib(),
      # Context for reading the numbers above.
      "compiled": compile,
      "threads": torch.get_num_threads(),
      "median_step_s": median,
      "step_s": durations,
      "first_step_s": first,
      "import_mem_mib": import_mem,
      "device": device_name,
      "device_peak_mem_mib": (torch.cuda.max_memory_allocated() / 2**20
                              if device == "cuda" else None),
      "parameters": sum(p.numel() for p in model.parameters()),
      "torch": torch.__version__,
  }


def main(argv=None):
  parser = harness.parser(__doc__)
  parser.add_argument("--batch", type=int, nargs="+", default=[36], help="scenes per step")
  parser.add_argument("--context_views", type=int, nargs="+", default=[5],
                      help="context views M per scene")
  parser.add_argument("--model", nargs="*", default=[], metavar="FIELD=VALUE",
                      help="ModelConfig overrides, e.g. steps=2 representation=pool")
  parser.add_argument("--warmup_steps", type=int, default=3)
  parser.add_argument("--timed_steps", type=int, default=10)
  parser.add_argument("--compile", action="store_true", help="torch.compile the loss")
  parser.add_argument("--threads", type=int, default=0,
                      help="torch intra-op threads; 0 keeps PyTorch's default")
  parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
  args = parser.parse_args(argv)
  if args.warmup_steps < 1 or args.timed_steps < 1:
    parser.error("--warmup_steps and --timed_steps must be at least 1")
  config = parse_overrides(args.model)
  for batch in args.batch:
    for views in args.context_views:
      record = harness.isolated(functools.partial(
          measure, config=config, batch=batch, context_views=views,
          warmup_steps=args.warmup_steps, timed_steps=args.timed_steps, compile=args.compile,
          threads=args.threads, device=args.device))
      line = json.dumps(record)
      print(line, flush=True)
      if args.output:  # one JSON line per record, appended.
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with args.output.open("a") as f:
          f.write(line + "\n")


if __name__ == "__main__":
  main()
