"""The training loop: epochs of jitted steps, checkpoints, summaries, then evaluation.

The loop knows nothing about any method: a method module supplies `create_state`,
`train_step` and `features` (see `vireid_jax.methods`). Every batch is a function of
(config seed, epoch, batch index), and checkpoints carry the step, so a run restarted in the
same workdir continues with exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import functools
import os
import time

from absl import logging
import jax
import numpy as np
import tqdm

from vireid_jax import methods
from vireid_jax.evaluation import protocols
from vireid_jax.evaluation import report
from vireid_jax.training import checkpoint
from vireid_jax.training import summary

# `vireid_jax.data.pipeline.VISIBLE`, restated so this module imports without TensorFlow.
VISIBLE = 0


def run(config, workdir: str, *, mode: str = "train_and_eval") -> dict | None:
  """Trains (resuming from the newest checkpoint in `workdir`) and/or evaluates.

  Returns:
    The evaluation results (also written to `<workdir>/results.json`), or None for `train`.
  """
  # TensorFlow enters only here, through the data package.
  from vireid_jax.data import datasets
  from vireid_jax.data import pipeline

  os.makedirs(workdir, exist_ok=True)
  train_split, test_split = datasets.load(config.data)
  method = methods.get(config.method)
  num_classes = int(train_split.labels.max()) + 1
  reference_steps = pipeline.steps_per_epoch(train_split, config.data.ids_per_batch,
                                             config.data.images_per_id)
  steps_per_epoch = config.train.steps_per_epoch
  if steps_per_epoch <= 0:
    steps_per_epoch = reference_steps
  if steps_per_epoch > reference_steps:
    raise ValueError(f"config.train.steps_per_epoch={steps_per_epoch} exceeds the sampler's "
                     f"{reference_steps} batches per epoch.")
  initial_state = method.create_state(config, num_classes, steps_per_epoch)
  checkpointer = checkpoint.Checkpointer(workdir, max_to_keep=config.train.checkpoints_to_keep)
  state = initial_state
  if checkpointer.latest_step() is not None:
    state = checkpointer.restore(initial_state)
    logging.info("Resumed from step %d in %s", int(state.step), checkpointer.directory)
  elif mode == "eval":
    raise FileNotFoundError(f"--mode=eval needs a checkpoint, and {checkpointer.directory} "
                            "holds none; train first or point --workdir at a trained run.")

  try:
    if mode in ("train", "train_and_eval"):
      state = train(config, workdir, method, state, steps_per_epoch, checkpointer,
                    make_dataset=functools.partial(
                        pipeline.agw_train_dataset, train_split,
                        ids_per_batch=config.data.ids_per_batch,
                        images_per_id=config.data.images_per_id, pad=config.data.pad,
                        seed=config.seed))
  finally:
    checkpointer.wait()
    checkpointer.close()
  if mode == "train":
    return None

  evaluate_fn = functools.partial(evaluate, method=method, test=test_split,
                                  eval_config=config.eval,
                                  batch_size=config.data.eval_batch_size,
                                  eval_batches=pipeline.eval_batches)
  results = {"step": int(jax.device_get(state.step)), "main_feature": config.eval.main_feature}
  if config.eval.before_training:
    # The initial state is a pure function of the config (so a resumed run reports the same);
    # it is rebuilt because training donated the first one's buffers.
    results["before_training"] = evaluate_fn(
        method.create_state(config, num_classes, steps_per_epoch))
    print("Before training (step 0):\n" + report.format_results_table(
        results["before_training"]), flush=True)
  results["trained"] = evaluate_fn(state)
  print(f"Trained (step {results['step']}):\n" + report.format_results_table(
      results["trained"]), flush=True)
  path = os.path.join(workdir, "results.json")
  report.write_results_json(path, results)
  logging.info("Wrote %s", path)
  return results


def train(config, workdir, method, state, steps_per_epoch, checkpointer, *,
          make_dataset):
  """Runs the remaining steps of `config.train.num_epochs` epochs; saves after every epoch."""
  total_steps = config.train.num_epochs * steps_per_epoch
  step = int(jax.device_get(state.step))
  train_step = jax.jit(functools.partial(method.train_step, loss_config=config.loss),
                       donate_argnums=0)
  writer = summary.Writer(os.path.join(workdir, "tensorboard"))
  log_every = max(1, config.train.log_every_steps)
  with tqdm.tqdm(total=total_steps, initial=step, desc="train", unit="step",
                 dynamic_ncols=True) as progress:
    while step < total_steps:
      epoch, start_batch = divmod(step, steps_per_epoch)
      dataset = make_dataset(epoch=epoch, start_batch=start_batch)
      epoch_start = time.time()
      for batch in dataset.take(steps_per_epoch - start_batch).as_numpy_iterator():
        state, metrics = train_step(state, batch)
        step += 1
        progress.update(1)
        if step % log_every == 0 or step % steps_per_epoch == 0:
          metrics = check_finite(jax.device_get(metrics), step)
          writer.scalars(step, {f"train/{name}": value for name, value in metrics.items()})
          progress.set_postfix(epoch=epoch, loss=f"{metrics['loss']:.3f}",
                               acc=f"{metrics['accuracy']:.2f}")
      writer.scalars(step, {"train/epoch_seconds": time.time() - epoch_start})
      checkpointer.save(state)
  writer.close()
  return state


def check_finite(metrics: dict, step: int) -> dict:
  """Stops training on a non-finite loss, naming the step and every loss term."""
  metrics = {name: float(value) for name, value in metrics.items()}
  if not all(np.isfinite(value) for value in metrics.values()):
    terms = ", ".join(f"{name}={value}" for name, value in metrics.items())
    raise FloatingPointError(f"Non-finite loss at step {step}: {terms}. The last good "
                             "checkpoint is kept; lower the learning rate or check the data.")
  return metrics


def extract_features(state, features_fn, images: np.ndarray, modality: str, batch_size: int,
                     eval_batches) -> dict[str, np.ndarray]:
  """Features of `images` [N, H, W, 3] uint8, computed in fixed-size batches.

  The last batch is zero-padded to `batch_size` so one compiled program serves all batches.
  """
  outputs: dict[str, list[np.ndarray]] = {}
  for batch in eval_batches(images, batch_size):
    count = len(batch)
    if count < batch_size:
      batch = np.concatenate([batch, np.zeros((batch_size - count, *batch.shape[1:]),
                                              batch.dtype)])
    for name, value in jax.device_get(features_fn(state, batch, modality)).items():
      outputs.setdefault(name, []).append(np.asarray(value[:count]))
  return {name: np.concatenate(values) for name, values in outputs.items()}


def evaluate(state, *, method, test, eval_config, batch_size, eval_batches) -> list[dict]:
  """SYSU-MM01 protocol (spec §7.3) on the test split: one summary per configured feature."""
  if eval_config.protocol != "sysu":
    raise ValueError(f"config.eval.protocol={eval_config.protocol!r}: only 'sysu' so far.")
  features_fn = jax.jit(method.features, static_argnames="modality")
  query_indices = protocols.sysu_query_indices(test.person_ids, test.cameras,
                                               test.relative_paths)
  candidate_indices = np.flatnonzero(test.modalities == VISIBLE)
  query_features = extract_features(state, features_fn, test.images[query_indices],
                                    "infrared", batch_size, eval_batches)
  candidate_features = extract_features(state, features_fn, test.images[candidate_indices],
                                        "visible", batch_size, eval_batches)
  summaries = []
  for feature in eval_config.features:
    outcome = protocols.evaluate_sysu(
        query_features[feature], test.person_ids[query_indices], test.cameras[query_indices],
        candidate_features[feature], test.person_ids[candidate_indices],
        test.cameras[candidate_indices], test.relative_paths[candidate_indices],
        mode=eval_config.mode, num_trials=eval_config.num_trials,
        max_rank=eval_config.max_rank)
    summaries.append(report.summarize_trials(outcome, feature=feature))
  return summaries
