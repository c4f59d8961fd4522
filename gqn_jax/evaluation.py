"""Held-out metrics of a trained GQN, next to two trivial predictors on the same scenes.

For every number of context views M = 1..K, each held-out scene is scored by

* the model: the negative ELBO (NLL + KL, z from the posterior) in nats per image and bits per
  dimension, and PSNR / SSIM of its predictive mean (the average of ``samples`` prior samples)
  and of single prior samples; the PSNR of the posterior reconstruction; and, once per scene
  (they do not depend on M), the PSNR of the same prior draws rendered from no context (r = 0,
  the sum over M = 0 views), which equals the model's own when the prediction ignores the
  context, and rendered from all K views at another viewpoint (the first context view's pose),
  which equals the model's own at K views when the prediction ignores the query pose;
* ``nearest_view``: the context view whose pose is closest to the query pose, as the prediction;
* ``mean_image``: the mean training image, whatever the context.

The baselines are scored under the same Gaussian likelihood (pixel sigma) as the model, with no
latent (KL = 0), so their negative ELBO is their NLL: a model that does not beat them has learned
nothing about the scene. ``nll_floor_nats`` is the NLL of a perfect mean under that sigma.

Everything random is a fixed function of the seed and the scene (its frames: of its name; its
latent draws: of its index among the evaluated scenes), never of the batch size, and each scene
keeps the same K + 1 frames for every M (the first M of its K context views). So two evaluations
of one checkpoint give identical numbers, and the rows for different M differ only in the
context.

  run = checkpoints.load("runs/demo")
  batches, count = evaluation.held_out_batches(run.config, "test", data_dir, num_scenes=64,
                                               batch_size=8)
  mean = evaluation.mean_training_image(run.config, data_dir, scenes=100)
  results = evaluation.evaluate(run.model_config, run.params, batches, mean_image=mean,
                                sigma=0.7, total_scenes=count)
  print(evaluation.format_table(results))
"""

import functools
import math
from typing import Any, Iterable, Mapping

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from gqn_jax import config as config_lib
from gqn_jax import objective
from gqn_jax.figures import scenes as scenes_lib
from gqn_jax.model import GQN, latent_noise

LN_2 = math.log(2.0)
PREDICTORS = ("gqn", "nearest_view", "mean_image")
# Random streams, folded into the seed's key: the posterior draw of the ELBO, then one per sample.
_POSTERIOR_STREAM = 0


# --- Image metrics -------------------------------------------------------------------------------

def psnr(prediction, target):
  """Peak signal-to-noise ratio in dB of images in [0, 1]; [..., H, W, 3] -> [...].

  Leading axes broadcast (e.g. samples [S, B, ...] against targets [B, ...]).
  """
  return _per_image(pix.psnr, prediction, target)


def ssim(prediction, target):
  """Structural similarity (dm-pix: 11x11 Gaussian window, sigma 1.5) of images in [0, 1]."""
  return _per_image(lambda a, b: pix.ssim(a, b, max_val=1.0), prediction, target)


def _per_image(metric, prediction, target):
  """dm-pix metrics take [N, H, W, C]; this takes any broadcastable leading axes."""
  prediction, target = jnp.broadcast_arrays(jnp.asarray(prediction, jnp.float32),
                                            jnp.asarray(target, jnp.float32))
  batch_shape = prediction.shape[:-3]
  flat = lambda x: x.reshape((-1,) + x.shape[-3:])
  return metric(flat(prediction), flat(target)).reshape(batch_shape)


def bits_per_dimension(nats_per_image, dimensions: int):
  """Nats per image -> bits per sub-pixel."""
  return nats_per_image / (dimensions * LN_2)


def nearest_view(context_images, context_poses, context_mask, query_pose):
  """The real context view whose 7-D pose is nearest the query pose (Euclidean): [B, H, W, 3].

  The 7-D pose mixes position (scene units) with sines and cosines of yaw and pitch, so a view
  from the same place facing elsewhere is far, as it should be for predicting an image.
  """
  distance = jnp.linalg.norm(context_poses - query_pose[:, None, :], axis=-1)  # [B, K]
  distance = jnp.where(context_mask, distance, jnp.inf)
  index = jnp.argmin(distance, axis=1)
  return jnp.take_along_axis(context_images, index[:, None, None, None, None], axis=1)[:, 0]


# --- Held-out data --------------------------------------------------------------------------------

def scene_batch(scenes, views: int, seed: int) -> dict[str, np.ndarray]:
  """Scenes -> a batch of the input contract with ``views`` real context views and a query.

  Each scene's K + 1 frames are ``Scene.views(seed, K + 1)``: a function of the seed and the
  scene's name only, so a scene gets the same views whatever batch it lands in.
  """
  context, context_poses, query, query_poses = scenes_lib.context_and_query(scenes, views, seed)
  return {"context_images": context, "context_poses": context_poses,
          "context_mask": np.ones((len(scenes), views), bool), "query_image": query,
          "query_pose": query_poses}


def held_out_batches(config, split: str, data_dir, *, num_scenes: int | None, batch_size: int,
                     seed: int = 0, max_context_views: int | None = None):
  """(batches, scene count): the first ``num_scenes`` scenes of ``split`` (None or more than
  there are: all), in stored order, as batches with all K context views real (``scene_batch``).

  The last batch may be smaller. Batches are read lazily, ``batch_size`` scenes at a time.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
  views = max_context_views or config.data.max_context_views
  stored = scenes_lib.split_size(config.data.dataset, split, data_dir)
  count = stored if num_scenes is None else min(num_scenes, stored)

  def batches():
    for first in range(0, count, batch_size):
      scenes = scenes_lib.read_scenes(
          config.data.dataset, split, data_dir, count=min(batch_size, count - first),
          first=first, image_size=config.model.image_size, pose_order=config.model.pose_order)
      yield scene_batch(scenes, views, seed)

  return batches(), count


def mean_training_image(config, data_dir, *, scenes: int, chunk: int = 32) -> np.ndarray:
  """float32 [H, W, 3]: the mean of every frame of the first ``scenes`` training scenes."""
  count = min(scenes, scenes_lib.split_size(config.data.dataset, "train", data_dir))
  if count < 1:
    raise ValueError(f"{config.data.dataset} train: no scenes for the mean image")
  total, frames = 0.0, 0
  for first in range(0, count, chunk):
    for scene in scenes_lib.read_scenes(config.data.dataset, "train", data_dir,
                                        count=min(chunk, count - first), first=first,
                                        image_size=config.model.image_size):
      images = scene.images()
      total = total + images.sum(axis=0, dtype=np.float64)
      frames += len(images)
  return (total / frames).astype(np.float32)


# --- Evaluation --------------------------------------------------------------------------------

def _noise(model_cfg: config_lib.ModelConfig, key, batch_size: int, offset):
  """stream -> [B, L, G, G, Z] latent draws of that stream for the batch's scenes."""
  return lambda stream: latent_noise(jax.random.fold_in(key, stream), model_cfg, batch_size,
                                     offset)


def _prior_draws(model, params, r, query_pose, noise, samples: int):
  """[S, B, H, W, 3]: ``samples`` prior draws rendered from r (draw s from stream s + 1)."""
  def sample(stream):
    mean = model.apply({"params": params}, r, query_pose, noise(stream), method=GQN.render)
    return jnp.clip(mean, 0.0, 1.0)  # images are in [0, 1]; the Gaussian mean need not be.
  return jax.lax.map(sample, jnp.arange(samples) + 1)


@functools.lru_cache(maxsize=8)
def _per_scene_metrics(model_cfg: config_lib.ModelConfig, samples: int):
  """A jitted function (params, batch, views, sigma, mean_image, key, offset) -> {name: [B]}.

  Cached per architecture, so evaluating several checkpoints (or twice) compiles once.
  """
  model = GQN(model_cfg)
  dimensions = 3 * model_cfg.image_size ** 2

  def scores(prediction, target, sigma):
    nll = objective.gaussian_nll(target, prediction, sigma)
    return {"nll_nats": nll, "kl_nats": jnp.zeros_like(nll), "neg_elbo_nats": nll,
            "neg_elbo_bits_per_dim": bits_per_dimension(nll, dimensions),
            "psnr": psnr(prediction, target), "ssim": ssim(prediction, target)}

  def metrics(params, batch, views, sigma, mean_image, key, offset):
    images, poses = batch["context_images"], batch["context_poses"]
    target, query_pose = batch["query_image"], batch["query_pose"]
    batch_size, max_views = images.shape[:2]
    mask = batch["context_mask"] & (jnp.arange(max_views) < views)[None, :]
    noise = _noise(model_cfg, key, batch_size, offset)
    terms = model.apply({"params": params}, images, poses, query_pose, target, sigma, mask,
                        noise(_POSTERIOR_STREAM))
    r = model.apply({"params": params}, images, poses, mask, method=GQN.represent)
    drawn = _prior_draws(model, params, r, query_pose, noise, samples)  # [S, B, H, W, 3]
    prediction = jnp.mean(drawn, axis=0)
    gqn = {"nll_nats": terms.nll, "kl_nats": terms.kl, "neg_elbo_nats": terms.loss,
           "neg_elbo_bits_per_dim": bits_per_dimension(terms.loss, dimensions),
           "psnr": psnr(prediction, target), "ssim": ssim(prediction, target),
           "psnr_sample": jnp.mean(psnr(drawn, target[None]), axis=0),
           "ssim_sample": jnp.mean(ssim(drawn, target[None]), axis=0),
           "psnr_reconstruction": psnr(jnp.clip(terms.mean, 0.0, 1.0), target),
           # How much the prior samples disagree: the mean over pixels of their variance.
           "sample_variance": jnp.mean(jnp.var(drawn, axis=0), axis=(1, 2, 3)),
           "kl_per_step": terms.kl_per_step}  # [B, L]
    nearest = nearest_view(images, poses, mask, query_pose)
    mean = jnp.broadcast_to(mean_image, target.shape)
    return {"gqn": gqn, "nearest_view": scores(nearest, target, sigma),
            "mean_image": scores(mean, target, sigma)}

  return jax.jit(metrics)


@functools.lru_cache(maxsize=8)
def _control_metrics(model_cfg: config_lib.ModelConfig, samples: int):
  """A jitted function (params, batch, key, offset) -> {'no_context': [B], 'other_pose': [B]}:
  the PSNR against the query image of the model's own prior draws, rendered

  * 'no_context': from no context at all (r = 0, the sum over M = 0 views), at the query pose;
  * 'other_pose': from all K context views, but at the first context view's pose instead of the
    query's. A model that uses the viewpoint draws that other view there, and scores lower than
    at the query pose; a model that ignores the pose scores the same.

  Neither depends on M, so they run once per batch.
  """
  model = GQN(model_cfg)

  def metrics(params, batch, key, offset):
    target, query_pose = batch["query_image"], batch["query_pose"]
    r = model.apply({"params": params}, batch["context_images"], batch["context_poses"],
                    batch["context_mask"], method=GQN.represent)
    noise = _noise(model_cfg, key, target.shape[0], offset)

    def prediction(r, pose):
      return jnp.mean(_prior_draws(model, params, r, pose, noise, samples), axis=0)

    return {"no_context": psnr(prediction(jnp.zeros_like(r), query_pose), target),
            "other_pose": psnr(prediction(r, batch["context_poses"][:, 0]), target)}

  return jax.jit(metrics)


def evaluate(model_cfg: config_lib.ModelConfig, params, batches: Iterable[Mapping[str, Any]], *,
             mean_image, sigma: float, seed: int = 0, samples: int = 4,
             total_scenes: int | None = None, progress: bool = True) -> dict:
  """Metrics of the model and the baselines for each number of context views.

  Args:
    model_cfg: the model's architecture.
    params: its parameters.
    batches: batches of the input contract whose K context views are all real (mask True);
      M = 1..K uses the first M of them.
    mean_image: float [H, W, 3], the ``mean_image`` baseline's prediction.
    sigma: pixel standard deviation of the likelihood, for the model and the baselines.
    seed: seeds every latent draw; scene i's draws depend only on (seed, i).
    samples: prior samples per scene and M (their mean is the model's point prediction).
    total_scenes: for the progress bar.
    progress: show a progress bar over scenes.

  Returns:
    A JSON-ready dict (see ``format_table``): per M and predictor, each metric's mean over
    scenes and its standard error; under ``no_context`` and ``other_pose``, the same for the
    PSNR of the two controls of ``_control_metrics`` (one value each for every M).
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  if samples < 1:
    raise ValueError(f"samples must be a positive integer, got {samples}")
  metrics = _per_scene_metrics(model_cfg, samples)
  control_metrics = _control_metrics(model_cfg, samples)
  key = jax.random.key(seed)
  mean_image = jnp.asarray(mean_image, jnp.float32)
  collected = {}  # views -> predictor -> metric -> [per-scene arrays]
  controls = {"no_context": [], "other_pose": []}  # name -> [per-scene PSNR arrays]
  scenes, max_views = 0, None
  with tqdm(total=total_scenes, unit="scene", desc="evaluating", disable=not progress) as bar:
    for batch in batches:
      batch = {name: jnp.asarray(value) for name, value in batch.items()}
      _check_batch(batch, model_cfg, max_views)
      max_views = batch["context_images"].shape[1]
      for views in range(1, max_views + 1):
        values = jax.device_get(metrics(params, batch, views, sigma, mean_image, key, scenes))
        for predictor, named in values.items():
          for name, value in named.items():
            (collected.setdefault(views, {}).setdefault(predictor, {})
             .setdefault(name, []).append(np.asarray(value, np.float64)))
      for name, value in jax.device_get(control_metrics(params, batch, key, scenes)).items():
        controls[name].append(np.asarray(value, np.float64))
      scenes += batch["query_image"].shape[0]
      bar.update(batch["query_image"].shape[0])
  if not scenes:
    raise ValueError("no batches to evaluate (is the split smaller than one batch?)")
  dimensions = 3 * model_cfg.image_size ** 2
  return {
      "scenes": scenes,
      "image_size": model_cfg.image_size,
      "dimensions": dimensions,
      "sigma": float(sigma),
      "nll_floor_nats": dimensions * objective.nll_floor_per_value(float(sigma)),
      "samples": samples,
      "seed": seed,
      **{name: {"psnr": _summary(np.concatenate(parts))} for name, parts in controls.items()},
      "results": [
          {"context_views": views,
           **{predictor: {name: _summary(np.concatenate(parts)) for name, parts in named.items()}
              for predictor, named in by_predictor.items()}}
          for views, by_predictor in sorted(collected.items())],
  }


def _check_batch(batch, model_cfg, max_views):
  size = model_cfg.image_size
  shape = batch["query_image"].shape
  if shape[1:] != (size, size, 3):
    raise ValueError(f"query_image has shape {shape}; the model takes {size}x{size}x3 images")
  if not bool(jnp.all(batch["context_mask"])):
    raise ValueError("evaluate needs batches whose context views are all real (context_mask "
                     "all True): it masks them to 1..K views itself")
  if max_views is not None and batch["context_images"].shape[1] != max_views:
    raise ValueError(f"batches hold {batch['context_images'].shape[1]} context views after "
                     f"{max_views}; every batch must hold the same K")


def _summary(values: np.ndarray) -> dict:
  """Mean and standard error over scenes (axis 0); lists for a per-scene vector (KL per step)."""
  mean = np.mean(values, axis=0)
  stderr = (np.std(values, axis=0, ddof=1) / math.sqrt(len(values)) if len(values) > 1
            else np.zeros_like(mean))
  return {"mean": mean.tolist(), "stderr": stderr.tolist()}


# --- Reporting ----------------------------------------------------------------------------------

_COLUMNS = (  # (metric, header, format)
    ("neg_elbo_nats", "-ELBO nats", "{:.1f}"),
    ("neg_elbo_bits_per_dim", "bits/dim", "{:.4f}"),
    ("nll_nats", "NLL nats", "{:.1f}"),
    ("kl_nats", "KL nats", "{:.2f}"),
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("psnr_sample", "PSNR 1 sample", "{:.2f}"),
    ("ssim_sample", "SSIM 1 sample", "{:.4f}"),
    ("psnr_reconstruction", "PSNR posterior", "{:.2f}"),
    ("sample_variance", "sample var", "{:.5f}"),
)
_LABELS = {"gqn": "GQN (mean of {samples} samples)", "nearest_view": "nearest context view",
           "mean_image": "mean training image"}


def format_table(results: dict) -> str:
  """A fixed-width table of ``evaluate``'s means, one row per (M, predictor)."""
  labels = {name: label.format(samples=results["samples"]) for name, label in _LABELS.items()}
  label_width = max(map(len, labels.values()))
  widths = [max(len(header), 10) for _, header, _ in _COLUMNS]
  header = (f"{'views':>5}  {'predictor':<{label_width}}  "
            + "  ".join(f"{h:>{w}}" for (_, h, _), w in zip(_COLUMNS, widths)))
  lines = [f"{results['scenes']} scenes, {results['image_size']} px, sigma {results['sigma']}; "
           f"NLL floor {results['nll_floor_nats']:.1f} nats per image. PSNR and SSIM of the "
           f"point prediction; '1 sample': averaged over single prior samples.",
           header, "-" * len(header)]
  for row in results["results"]:
    for predictor in PREDICTORS:
      if predictor not in row:
        continue
      cells = [fmt.format(row[predictor][metric]["mean"]) if metric in row[predictor] else "-"
               for metric, _, fmt in _COLUMNS]
      lines.append(f"{row['context_views']:>5}  {labels[predictor]:<{label_width}}  "
                   + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
  for row in results["results"]:
    per_step = row.get("gqn", {}).get("kl_per_step")
    if per_step:
      lines.append(f"KL per generator step (nats), {row['context_views']} views: "
                   + " ".join(f"{value:.2f}" for value in per_step["mean"]))
  lines.append(f"Controls, the same draws: no context (r = 0) PSNR "
               f"{results['no_context']['psnr']['mean']:.2f} dB; all views at the first context "
               f"view's pose PSNR {results['other_pose']['psnr']['mean']:.2f} dB")
  return "\n".join(lines)


def format_markdown(results: dict) -> str:
  """The model card's table: per M, the prediction's PSNR against both baselines, the posterior
  reconstruction, the sample variance and the KL per generator step (markdown)."""
  header = ("| views M | -ELBO nats | PSNR | SSIM | nearest view | mean image | vs nearest | "
            "vs mean | posterior PSNR | PSNR, no context (r = 0) | PSNR, K views at view 1's "
            "pose | sample variance | KL nats | KL per generator step |")
  lines = [f"{results['scenes']} held-out scenes, {results['image_size']} px, sigma "
           f"{results['sigma']}; PSNR in dB of the prediction (the mean of {results['samples']} "
           f"prior samples).", "", header, "|" + "---|" * (header.count("|") - 1)]
  # The controls are the same for every M.
  no_context, other_pose = (results[name]["psnr"]["mean"]
                            for name in ("no_context", "other_pose"))
  for row in results["results"]:
    gqn, nearest, mean = row["gqn"], row["nearest_view"], row["mean_image"]
    value = lambda metrics, name: metrics[name]["mean"]
    psnr = value(gqn, "psnr")
    cells = [
        str(row["context_views"]), f"{value(gqn, 'neg_elbo_nats'):.1f}", f"{psnr:.2f}",
        f"{value(gqn, 'ssim'):.3f}", f"{value(nearest, 'psnr'):.2f}", f"{value(mean, 'psnr'):.2f}",
        f"{psnr - value(nearest, 'psnr'):+.2f}", f"{psnr - value(mean, 'psnr'):+.2f}",
        f"{value(gqn, 'psnr_reconstruction'):.2f}", f"{no_context:.2f}",
        f"{other_pose:.2f}", f"{value(gqn, 'sample_variance'):.4f}",
        f"{value(gqn, 'kl_nats'):.1f}",
        " ".join(f"{kl:.2f}" for kl in gqn["kl_per_step"]["mean"])]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)
