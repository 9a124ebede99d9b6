"""Optimiser and learning-rate schedule of the AGW family (spec §6).

SGD (momentum 0.9, Nesterov) with L2 weight decay added to the gradient, two learning-rate
groups (the BNNeck + classifier "head" at the base rate, everything else at a tenth of it),
and a per-EPOCH schedule: linear warm-up over the first epochs, then step decays.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax.numpy as jnp
import optax


def epoch_learning_rate(epoch, *, base_lr: float, warmup_epochs: int,
                        milestones: Sequence[int], decay: float):
  """The reference's learning rate at a 0-based epoch (`train.py:218-233`).

  With base 0.1, warm-up 10 and milestones (20, 50): 0.01, 0.02, ..., 0.10 over epochs 0–9
  (warm-up changes once per epoch, not per step), 0.1 until 19, 0.01 until 49, then 0.001.
  Works on Python ints and on traced arrays.
  """
  epoch = jnp.asarray(epoch)
  lr = jnp.asarray(base_lr, jnp.float32)
  for milestone in milestones:
    lr = jnp.where(epoch >= milestone, lr * decay, lr)
  if warmup_epochs > 0:
    warmup_lr = base_lr * (epoch + 1) / warmup_epochs
    lr = jnp.where(epoch < warmup_epochs, warmup_lr, lr)
  return lr


def step_schedule(optim_config, steps_per_epoch: int, scale: float = 1.0) -> optax.Schedule:
  """Optax schedule (of the update count) that holds `epoch_learning_rate` for whole epochs."""
  def schedule(count):
    epoch = count // steps_per_epoch
    return scale * epoch_learning_rate(
        epoch, base_lr=optim_config.base_lr, warmup_epochs=optim_config.warmup_epochs,
        milestones=tuple(optim_config.milestones), decay=optim_config.decay)
  return schedule


def sgd_with_decay(learning_rate: optax.Schedule, optim_config) -> optax.GradientTransformation:
  """PyTorch SGD semantics: g + wd·p, then Nesterov momentum, then the learning rate.

  PyTorch's first step sets the momentum buffer to the gradient, which equals Optax's
  zero-initialised trace after one update.
  """
  return optax.chain(
      optax.add_decayed_weights(optim_config.weight_decay),
      optax.sgd(learning_rate, momentum=optim_config.momentum,
                nesterov=optim_config.nesterov),
  )


def two_group_sgd(optim_config, steps_per_epoch: int,
                  param_labels: Callable) -> optax.GradientTransformation:
  """SGD with the head at the base rate and the backbone at `backbone_lr_scale` times it.

  Args:
    optim_config: `config.optim`.
    steps_per_epoch: updates per epoch, to turn the update count into the epoch.
    param_labels: params pytree -> same structure of "head" | "backbone" (the model's, e.g.
      `vireid_jax.models.agw.agw_param_labels`).
  """
  return optax.multi_transform(
      {
          "head": sgd_with_decay(step_schedule(optim_config, steps_per_epoch), optim_config),
          "backbone": sgd_with_decay(
              step_schedule(optim_config, steps_per_epoch, optim_config.backbone_lr_scale),
              optim_config),
      },
      param_labels,
  )
