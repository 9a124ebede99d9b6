"""The training loop: epochs of jitted, data-parallel steps, checkpoints, summaries, evaluation.

The loop knows nothing about any method: it is written against the method contract
(`vireid_jax.methods.base`, documented there) and receives the method from `main.py`; this
package never imports `vireid_jax.methods`. Every batch is a function of (config seed, epoch,
batch index, the method's epoch inputs), and checkpoints carry the step and everything the
method's hooks computed, so a run restarted in the same workdir continues with exactly the
batches, random numbers and parameters an uninterrupted run would have had.

Parallelism: one `jax.jit` step over a mesh of all devices (`training.parallel`); each process
feeds only its rows of every global batch.
"""

from __future__ import annotations

import functools
import os
import time

from absl import logging
import jax
import numpy as np
import tqdm

from vireid_jax import disk
from vireid_jax import evaluation
from vireid_jax import failpoints
from vireid_jax.evaluation import report
from vireid_jax.training import config_checks
from vireid_jax.training import orbax_checkpoints
from vireid_jax.training import parallel
from vireid_jax.training import periodic_evaluation
from vireid_jax.training import summary
from vireid_jax.training import workdir_config
from vireid_jax.training import workdir_lock
from vireid_jax.training.context import DataInfo
from vireid_jax.training.context import EpochContext
from vireid_jax.training.context import write_data_info


MATMUL_PRECISIONS = ("default", "high", "highest")


def matmul_precision(config):
  """The context `config.train.matmul_precision` sets for every jitted computation of a run.

  "default": XLA's default (TF32 convolutions and matrix products on recent NVIDIA GPUs, one
  bfloat16 pass on TPU, full float32 on CPU); "high"; "highest": full float32 everywhere.
  """
  precision = config.train.matmul_precision
  if precision not in MATMUL_PRECISIONS:
    raise ValueError(f"config.train.matmul_precision={precision!r}: expected one of "
                     f"{MATMUL_PRECISIONS}.")
  return jax.default_matmul_precision(precision)


def run(config, workdir: str, method, *, mode: str = "train_and_eval",
        allow_config_change: bool = False) -> dict | None:
  """Trains `method` (resuming from the newest checkpoint in `workdir`) and/or evaluates it.

  Args:
    config: the experiment config.
    workdir: checkpoints, summaries, results.
    method: a `vireid_jax.methods.base.Method` built with `config`.
    mode: "train_and_eval", "train" or "eval".
    allow_config_change: continue a workdir whose recorded training config differs.

  Returns:
    The evaluation results (also written to `<workdir>/results.json`), or None for `train`.

  Raises:
    workdir_config.ConfigMismatchError: `workdir` holds a run with another training config.
    workdir_lock.WorkdirLockedError: another live process trains in `workdir`.
    config_checks.ConfigValueError: a field outside what it allows (before any work).
    orbax_checkpoints.CheckpointMismatchError: the checkpoint does not fit the config's model.
  """
  config_checks.check(config, devices=jax.device_count())
  periodic_evaluation.check_config(config)
  config = resolve_augment_on(config)
  # One live training run per workdir (process 0 of a multi-host run speaks for all); eval
  # only reads committed checkpoints and may run beside a training.
  with workdir_lock.hold(workdir, take=mode != "eval" and jax.process_index() == 0):
    with matmul_precision(config):
      return _run(config, workdir, method, mode=mode, allow_config_change=allow_config_change)


def _run(config, workdir: str, method, *, mode: str, allow_config_change: bool) -> dict | None:
  # TensorFlow enters only here, through the data package.
  from vireid_jax.data import datasets
  from vireid_jax.data import pipeline

  workdir_config.check_or_record(config, workdir, allow_change=allow_config_change)
  # config.eval.test_root / test_tfds_dir may name another folder for the evaluated split; a
  # target dataset (config.data.target) is evaluated whatever the method, and only a method
  # with uses_target gets its training stream.
  splits = datasets.load(config.data, with_target=method.uses_target, eval_config=config.eval)
  mesh = parallel.make_mesh()
  reference_steps = pipeline.steps_per_epoch(splits.train, config.data, target=splits.target)
  steps_per_epoch = config.train.steps_per_epoch
  if steps_per_epoch <= 0:
    steps_per_epoch = reference_steps
  if steps_per_epoch > reference_steps:
    raise ValueError(f"config.train.steps_per_epoch={steps_per_epoch} exceeds the sampler's "
                     f"{reference_steps} batches per epoch.")
  parallel.check_divisible(config.data.eval_batch_size, mesh, "config.data.eval_batch_size")
  print(f"Devices: {mesh.size} x {jax.devices()[0].platform} in {jax.process_count()} "
        "process(es)", flush=True)
  data_info = DataInfo.from_splits(splits, steps_per_epoch)
  if mode != "eval" and jax.process_index() == 0:
    write_data_info(workdir, data_info)
  make_state = lambda: parallel.replicate(method.create_state(data_info), mesh)
  state = make_state()
  state_features = bind_features(jit_features(method, mesh), mesh)

  def features(state, images, modality):
    return evaluation.extract_features(state_features(state), images, modality,
                                       batch_size=config.data.eval_batch_size)

  def evaluate(state, name=None, eval_config=config.eval):
    # Pictures are written by process 0 only.
    output_dir = (os.path.join(workdir, "figures", name)
                  if name is not None and jax.process_index() == 0 else None)
    return evaluation.evaluate(
        state_features(state), splits.test, eval_config, dataset=splits.test_dataset,
        batch_size=config.data.eval_batch_size, output_dir=output_dir,
        data_trial=splits.test_trial)

  during_training = periodic_evaluation.PeriodicEvaluation(
      config, workdir, lambda state: evaluate(
          state, eval_config=periodic_evaluation.main_protocol_config(config.eval)),
      write=tqdm.tqdm.write)
  try:
    if mode == "eval":
      state = restore_for_evaluation(config, workdir, state)
    else:
      checkpointer = orbax_checkpoints.Checkpointer.for_workdir(
          workdir, max_to_keep=config.train.checkpoints_to_keep)
      try:
        if checkpointer.latest_step() is not None:
          state = checkpointer.restore(state)
          logging.info("Resumed from step %d in %s", int(state.step), checkpointer.directory)
        during_training.forget_after(int(jax.device_get(state.step)))
        state = train(config, workdir, method, state, steps_per_epoch, checkpointer, mesh,
                      make_dataset=functools.partial(
                          pipeline.train_dataset, splits.train, config.data, seed=config.seed,
                          process_index=jax.process_index(),
                          process_count=jax.process_count(), target=splits.target),
                      context=EpochContext(config=config, splits=splits, mesh=mesh,
                                           features=features),
                      after_epoch=during_training.after_epoch,
                      prepare_batch=pipeline.device_augmentation(
                          splits.train, config.data, seed=config.seed, target=splits.target))
      finally:
        checkpointer.wait()
        checkpointer.close()
      if mode == "train":
        return None
      if config.eval.select == "best":
        state = restore_best(workdir, state, during_training.best())
  finally:
    during_training.close()

  # Which test split the numbers are of: the training dataset's own, or a target's (direct
  # transfer or domain adaptation), possibly moved into a synthetic domain.
  results = {"step": int(jax.device_get(state.step)), "main_feature": config.eval.main_feature,
             "selected": selection(config, state, steps_per_epoch),
             "test_dataset": splits.test_dataset, "test_domain": splits.test_domain}
  # Tables of a target's test split say whose: the protocol column names the dataset only.
  scored_on = (f", on the target's test split ({splits.test_name})"
               if datasets.has_target(config.data) else "")
  if during_training.curve:
    results["during_training"] = during_training.curve
  if config.eval.before_training:
    # The initial state is a pure function of the config (so a resumed run reports the same);
    # it is rebuilt because training donated the first one's buffers.
    results["before_training"] = evaluate(make_state(), "before_training")
    print(f"Before training (step 0){scored_on}:\n" + report.format_results_table(
        results["before_training"]), flush=True)
  results["trained"] = evaluate(state, "trained")
  print(f"{selection_title(results['selected'])}{scored_on}:\n" + report.format_results_table(
      results["trained"]), flush=True)
  if jax.process_index() == 0:
    path = write_results(workdir, results)
    print(f"Results: {path}; figures: {os.path.join(workdir, 'figures')}; TensorBoard: "
          f"{os.path.join(workdir, 'tensorboard')}", flush=True)
  return results


def write_results(workdir: str, results: dict) -> str:
  """Writes `<workdir>/results.json` atomically and returns its path.

  Raises:
    disk.DiskFullError: the disk is full; the previous results.json is intact.
  """
  path = os.path.join(workdir, "results.json")
  with disk.reporting_full_disk(path, "the results", "The previous results.json, if any, is "
                                "intact, and the checkpoints are complete: --mode=eval writes "
                                "the results again"):
    report.write_results_json(path, results)
  return path


def selection(config, state, steps_per_epoch: int) -> dict:
  """Which checkpoint the results are of, for results.json."""
  step = int(jax.device_get(state.step))
  return {"select": config.eval.select, "step": step,
          "epoch": step // steps_per_epoch - 1 if step else None}


def selection_title(selected: dict) -> str:
  if selected["select"] == "best":
    return (f"Best on the test split (step {selected['step']}, epoch {selected['epoch']}; "
            "chosen on the test split, as the references do, which inflates the number)")
  return f"Trained (step {selected['step']})"


def restore_best(workdir: str, state, best: dict | None):
  """The state of the best evaluation during training (`config.eval.select = "best"`)."""
  directory = periodic_evaluation.best_directory(workdir)
  checkpointer = orbax_checkpoints.Checkpointer(directory, read_only=True)
  try:
    step = checkpointer.latest_step()
    if step is None or (best is not None and best["step"] != step):
      raise FileNotFoundError(
          f"config.eval.select='best' needs the best checkpoint in {directory}, which holds "
          f"{'none' if step is None else f'step {step}'} while the evaluations during training "
          f"name {best and best['step']}; train with config.eval.every_epochs > 0 first.")
    return checkpointer.restore(state, step)
  finally:
    checkpointer.close()


def restore_for_evaluation(config, workdir: str, state):
  """The checkpoint `config.eval.checkpoint` names, else the best one of `workdir` (select
  "best") or its newest one."""
  if config.eval.checkpoint:
    directory, step = orbax_checkpoints.resolve(config.eval.checkpoint)
  elif config.eval.select == "best":
    return restore_best(workdir, state, None)
  else:
    directory, step = os.path.join(workdir, orbax_checkpoints.CHECKPOINTS_FOLDER), None
  # Read-only: the workdir may be training meanwhile (only committed steps are listed).
  checkpointer = orbax_checkpoints.Checkpointer(directory, read_only=True)
  try:
    if step is None and checkpointer.latest_step() is None:
      raise FileNotFoundError(f"--mode=eval needs a checkpoint, and {directory} holds none; "
                              "train first, point --workdir at a trained run, or set "
                              "config.eval.checkpoint.")
    state = checkpointer.restore(state, step)
  finally:
    checkpointer.close()
  logging.info("Evaluating step %d from %s", int(jax.device_get(state.step)), directory)
  return state


def resolve_augment_on(config):
  """`config` with `data.augment_on` "auto" replaced by what it means on this platform.

  The workdir then records where the views were computed, so that a resume on another
  platform cannot silently switch to other augmentation draws.
  """
  from vireid_jax.data import device_augment   # TensorFlow-free
  resolved = device_augment.resolve_augment_on(config.data)
  if config.data.get("augment_on", "host") == resolved:
    return config
  config = config.copy_and_resolve_references()
  config.data.augment_on = resolved
  return config


def jit_train_step(method, mesh, prepare_batch=None):
  """The method's step, jitted over the mesh: state replicated, batch split by rows.

  Returns `step_fn(state, batch, step=None)`. `step` is the 0-based index of the step about to
  run (a host int): a method whose `step_variant(step)` names a variant (AlignGAN's phase) gets
  it as `train_step`'s static third argument, so each variant is a program of its own,
  compiled when first reached. `step_fn.lower(state, batch, step=None)` lowers that program.

  `prepare_batch` (a pure jnp function of the batch, e.g. `device_augment.DeviceAugmentation`)
  runs inside the same program before the method's step: the views are computed on the device
  and fused into the step.
  """
  shardings = dict(in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
                   out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
                   donate_argnums=0)
  train_step = method.train_step
  if prepare_batch is not None:
    def train_step(state, batch, *variant):
      return method.train_step(state, prepare_batch(batch), *variant)
  plain = jax.jit(train_step, **shardings)
  with_variant = []     # made at the first variant: only such a train_step takes a third arg

  def program(step):
    variant = None if step is None else method.step_variant(step)
    if variant is None:
      return plain, ()
    if not with_variant:
      with_variant.append(jax.jit(train_step, static_argnums=2, **shardings))
    return with_variant[0], (variant,)

  def step_fn(state, batch, step=None):
    jitted, variant = program(step)
    return jitted(state, batch, *variant)

  def lower(state, batch, step=None):
    jitted, variant = program(step)
    return jitted.lower(state, batch, *variant)

  step_fn.lower = lower
  return step_fn


def bind_features(jitted_features, mesh):
  """state → features_fn(images [B, H, W, 3] float32, modality) for `evaluation.evaluate`."""
  def for_state(state):
    def features_fn(images, modality):
      if jax.process_count() > 1:
        # Every process passes the same batch; each places the rows of its own devices.
        images = parallel.replicated_batch(np.asarray(images), mesh)
      return jitted_features(state, images, modality)
    return features_fn
  return for_state


def jit_features(method, mesh):
  return jax.jit(method.features, static_argnums=2,
                 in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh)),
                 out_shardings=parallel.replicated(mesh))


def train(config, workdir, method, state, steps_per_epoch, checkpointer, mesh, *,
          make_dataset, context, after_epoch=None, prepare_batch=None):
  """Runs the remaining steps of `config.train.num_epochs` epochs.

  `prepare_batch`: what the step runs on each batch before the method's step
  (`pipeline.device_augmentation`; None: the batches are the method's).

  Saves after every epoch (and every `config.train.checkpoint_every_steps`), only once the
  losses up to that step are known to be finite; then calls `after_epoch(state, epoch, step,
  writer)` (evaluation during training), also once for a resumed run that stopped between an
  epoch's checkpoint and its `after_epoch`.
  """
  total_steps = config.train.num_epochs * steps_per_epoch
  step = int(jax.device_get(state.step))
  train_step = jit_train_step(method, mesh, prepare_batch)
  count = count_images if prepare_batch is None else prepare_batch.count_images
  writer = summary.Writer(os.path.join(workdir, "tensorboard"))
  log_every = max(1, config.train.log_every_steps)
  checkpoint_every = config.train.checkpoint_every_steps
  guard = FiniteLossGuard()
  progress_metric = method.progress_metric
  after_epoch = after_epoch or (lambda *args: None)
  if step and step % steps_per_epoch == 0:
    after_epoch(state, step // steps_per_epoch - 1, step, writer)
  images_per_step = None
  with tqdm.tqdm(total=total_steps, initial=step, desc="train", unit="step",
                 dynamic_ncols=True, disable=jax.process_index() != 0) as progress:
    while step < total_steps:
      epoch, start_batch = divmod(step, steps_per_epoch)
      if start_batch == 0:
        # Runs once per epoch, before its first step: a run resumed mid-epoch restores the
        # state the hook produced from the checkpoint instead of running it again.
        state = parallel.replicate(method.begin_epoch(state, epoch, context), mesh)
      # Read again at every start, a resume included: the input side depends on the state.
      inputs = jax.device_get(method.epoch_inputs(state))
      dataset = make_dataset(epoch=epoch, start_batch=start_batch, epoch_inputs=inputs)
      epoch_start = time.time()
      for batch in dataset.take(steps_per_epoch - start_batch).as_numpy_iterator():
        if images_per_step is None:
          images_per_step = count(batch) * jax.process_count()
        # The pipeline yields only this process's rows of the global batch.
        state, metrics = train_step(state, parallel.global_batch(batch, mesh), step)
        step += 1
        failpoints.hit("train_step")
        progress.update(1)
        # Checking the previous step's losses keeps one step in flight on the device.
        guard.check_previous()
        guard.push(step, metrics)
        at_epoch_end = step % steps_per_epoch == 0
        if step % log_every == 0 or at_epoch_end:
          metrics = guard.check_previous()
          writer.scalars(step, {f"train/{name}": value for name, value in metrics.items()})
          rate = progress.format_dict.get("rate")
          progress.set_postfix({"epoch": epoch,
                                progress_metric: progress_value(metrics, progress_metric),
                                "images/s": f"{rate * images_per_step:.0f}" if rate else "?"})
        if at_epoch_end or (checkpoint_every > 0 and step % checkpoint_every == 0):
          guard.check_previous()
          checkpointer.save(state)
      writer.scalars(step, {"train/epoch_seconds": time.time() - epoch_start})
      if step % steps_per_epoch == 0:
        after_epoch(state, epoch, step, writer)
  writer.close()
  return state


def count_images(batch: dict) -> int:
  """Images in a batch dict: the rows of its [B, H, W, C] arrays (every view counts)."""
  return sum(len(value) for value in batch.values() if np.ndim(value) == 4)


def progress_value(metrics: dict, name: str) -> str:
  """The progress bar's value of metric `name`, or an error naming the metrics there are."""
  if name not in metrics:
    raise KeyError(f"The method's progress_metric {name!r} is not among its metrics "
                   f"({', '.join(sorted(metrics))}); set progress_metric to one of them.")
  return f"{metrics[name]:.3f}"


class FiniteLossGuard:
  """Stops training at the first non-finite loss, naming the step and every loss term."""

  def __init__(self):
    self._pending = None
    self._last = {}

  def push(self, step: int, metrics) -> None:
    self._pending = (step, metrics)

  def check_previous(self) -> dict:
    """Checks the pushed step's metrics (waiting for it) and returns them as floats."""
    if self._pending is not None:
      step, metrics = self._pending
      self._pending = None
      self._last = check_finite(jax.device_get(metrics), step)
    return self._last


def check_finite(metrics: dict, step: int) -> dict:
  """Raises FloatingPointError on a non-finite metric, naming the step and every loss term."""
  metrics = {name: float(value) for name, value in metrics.items()}
  if not all(np.isfinite(value) for value in metrics.values()):
    terms = ", ".join(f"{name}={value}" for name, value in metrics.items())
    raise FloatingPointError(f"Non-finite loss at step {step}: {terms}. Training stopped; the "
                             "last good checkpoint is kept. Lower the learning rate or check "
                             "the data.")
  return metrics
