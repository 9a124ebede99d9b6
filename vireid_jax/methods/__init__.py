"""One module per published system, each built from the shared models, losses and ops.

A method module supplies:
  create_state(config, num_classes, steps_per_epoch) -> TrainState
  train_step(state, batch, loss_config) -> (state, metrics)   # pure, jittable
  features(state, images, modality) -> {"pool": [B, D], "bn": [B, D]}
"""

import importlib

_METHODS = ("agw",)


def get(name: str):
  """The method module called `name` (config.method)."""
  if name not in _METHODS:
    raise ValueError(f"Unknown config.method={name!r}; available: {', '.join(_METHODS)}.")
  return importlib.import_module(f"vireid_jax.methods.{name}")
