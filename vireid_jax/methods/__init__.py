"""One module per published system, each built from the shared models, losses and ops.

The training loop is written against this interface only. A method module supplies:

  create_state(config, num_classes, steps_per_epoch) -> state
      Its whole state as one pytree: model(s), optimiser state(s) and a scalar `step`, plus
      `checkpoint_items()` / `replace_checkpoint_items(items)` (what a checkpoint holds). A
      pure function of the config: the same seed gives the same state.
  train_step(state, batch, config) -> (state, metrics)
      Pure and jittable; the loop jits it over the device mesh with the state replicated and
      the batch split by rows. One step may hold several updates (a GAN's discriminator and
      generator). Random numbers come from the config seed folded with `state.step`, so a
      resumed run draws the same ones. `metrics` is a flat dict of scalars; a non-finite value
      stops training.
  features(state, images, modality) -> {"pool": [B, D], "bn": [B, D]}
      Evaluation features of normalised images [B, H, W, 3] of one modality ("visible" or
      "infrared").
  before_epoch(state, *, epoch, context) -> state            (optional)
      Runs on the host before an epoch's first step (e.g. re-clustering pseudo-labels);
      `context` is a `vireid_jax.training.loop.EpochContext` (config, train split, mesh and a
      feature extractor). Whatever it changes must live in the state, so checkpoints carry it.

`config.method` names a module here, or a fully qualified module path for a user's own method.
"""

import importlib

_METHODS = ("agw",)


def get(name: str):
  """The method module called `name` (config.method)."""
  if "." in name:
    return importlib.import_module(name)
  if name not in _METHODS:
    raise ValueError(f"Unknown config.method={name!r}; available: {', '.join(_METHODS)}, or a "
                     "fully qualified module path of your own method.")
  return importlib.import_module(f"vireid_jax.methods.{name}")
