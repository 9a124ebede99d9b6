"""Optimisers and learning-rate schedules of the references (baseline spec §6, mcja §8).

Every reference adds its L2 weight decay to the gradient (PyTorch's coupled `weight_decay`),
chooses learning-rate groups by parameter path (AGW: the BNNeck + classifier "head" at the base
rate, everything else at a tenth of it) and changes the rate once per EPOCH: linear warm-up
over the first epochs, then step decays. `config.optim.name` picks the update rule from
`OPTIMIZERS`: "sgd" (momentum 0.9, Nesterov; AGW and its family) or "adam" (MCJA: PyTorch's
`Adam` with coupled decay, not AdamW). A method builds one optimiser per network with `build`
(or `grouped` around any Optax transformation) and `ParamGroup`s.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Sequence

from flax import nnx
import jax
import jax.numpy as jnp
import optax

from vireid_jax import pytree_paths


# config.optim.warmup_style -> the warm-up multiplier of the base rate at 0-based epoch e < W.
WARMUP_STYLES = {
    # AGW and its family (train.py:218-233): (e + 1) / W, i.e. 0.1, 0.2, ..., 1.0 for W = 10.
    "linear": lambda epoch, warmup_epochs, factor: (epoch + 1) / warmup_epochs,
    # DJANet's WarmupMultiStepLR (solver/lr_scheduler.py:48-62): factor + (1 − factor) · e / W,
    # i.e. 0.10, 0.19, ..., 0.91 for W = 10 and factor 0.1; 1 is first reached at e = W.
    "linear_from_factor": lambda epoch, warmup_epochs, factor: (
        factor + (1.0 - factor) * epoch / warmup_epochs),
}


def epoch_learning_rate(epoch, *, base_lr: float, warmup_epochs: int,
                        milestones: Sequence[int], decay: float,
                        warmup_style: str = "linear", warmup_factor: float = 0.1):
  """The reference's learning rate at a 0-based epoch.

  With base 0.1, warm-up 10 ("linear") and milestones (20, 50): 0.01, 0.02, ..., 0.10 over
  epochs 0–9 (warm-up changes once per epoch, not per step), 0.1 until 19, 0.01 until 49, then
  0.001 (AGW's `train.py:218-233`). `warmup_style` picks the warm-up from `WARMUP_STYLES`.
  Works on Python ints and on traced arrays.
  """
  if warmup_style not in WARMUP_STYLES:
    raise ValueError(f"config.optim.warmup_style={warmup_style!r}: expected one of "
                     f"{sorted(WARMUP_STYLES)}.")
  epoch = jnp.asarray(epoch)
  lr = jnp.asarray(base_lr, jnp.float32)
  for milestone in milestones:
    lr = jnp.where(epoch >= milestone, lr * decay, lr)
  if warmup_epochs > 0:
    warmup_lr = base_lr * WARMUP_STYLES[warmup_style](epoch, warmup_epochs, warmup_factor)
    lr = jnp.where(epoch < warmup_epochs, warmup_lr, lr)
  return lr


def step_schedule(optim_config, steps_per_epoch: int, scale: float = 1.0) -> optax.Schedule:
  """Optax schedule (of the update count) that holds `epoch_learning_rate` for whole epochs."""
  warmup_style = optim_config.get("warmup_style", "linear")
  if warmup_style not in WARMUP_STYLES:
    raise ValueError(f"config.optim.warmup_style={warmup_style!r}: expected one of "
                     f"{sorted(WARMUP_STYLES)}.")

  def schedule(count):
    epoch = count // steps_per_epoch
    return scale * epoch_learning_rate(
        epoch, base_lr=optim_config.base_lr, warmup_epochs=optim_config.warmup_epochs,
        milestones=tuple(optim_config.milestones), decay=optim_config.decay,
        warmup_style=warmup_style, warmup_factor=optim_config.get("warmup_factor", 0.1))
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


@dataclasses.dataclass(frozen=True)
class ParamGroup:
  """One learning-rate group of a network's parameters.

  Attributes:
    name: the group's name (its label in the optimiser state).
    match: which parameters belong to it: a regular expression searched in the parameter's
      dotted path ("bottleneck.scale", "stages.layers.0.0.conv1.kernel"), a predicate on that
      path, or None for every parameter no earlier group took. The first group that matches
      a parameter takes it.
    lr_scale: its learning rate as a multiple of the schedule's.
  """

  name: str
  match: str | Callable[[str], bool] | None
  lr_scale: float = 1.0

  def matches(self, path: str) -> bool:
    if self.match is None:
      return True
    if callable(self.match):
      return bool(self.match(path))
    return re.search(self.match, path) is not None


def group_labels(groups: Sequence[ParamGroup]) -> Callable[[Any], Any]:
  """params pytree → the same structure with each parameter's group name.

  Usable as the `param_labels` of `optax.multi_transform`, which calls it on the parameters
  at `init` and on the updates at `update`. Works on `nnx.State` (leaves are `nnx.Variable`)
  and on plain pytrees of arrays.

  Raises:
    ValueError: a parameter no group matches (add a last group with `match=None`).
  """
  def label(path, _):
    name = pytree_paths.path_string(path)
    for group in groups:
      if group.matches(name):
        return group.name
    raise ValueError(f"Parameter {name!r} is in no parameter group "
                     f"({', '.join(group.name for group in groups)}); add a last group with "
                     "match=None for everything else.")

  def labels(params):
    return jax.tree_util.tree_map_with_path(
        label, params, is_leaf=lambda leaf: isinstance(leaf, nnx.Variable))
  return labels


def grouped(make_transform: Callable[[float], optax.GradientTransformation],
            groups: Sequence[ParamGroup]) -> optax.GradientTransformation:
  """One optimiser over parameter groups: `make_transform(group.lr_scale)` for each group."""
  names = [group.name for group in groups]
  if len(set(names)) != len(names):
    raise ValueError(f"Parameter group names must differ, got {names}.")
  return optax.multi_transform({group.name: make_transform(group.lr_scale) for group in groups},
                               group_labels(groups))


def adam_with_coupled_decay(learning_rate: optax.Schedule,
                            optim_config) -> optax.GradientTransformation:
  """PyTorch `Adam(weight_decay=wd)` semantics: g + wd·p enters both moments, then the rate.

  Not AdamW: the decay is added to the gradient before `scale_by_adam`, so it is rescaled by
  the second moment like any gradient (mcja §8). Bias correction and `eps` outside the square
  root are PyTorch's and Optax's alike.
  """
  return optax.chain(
      optax.add_decayed_weights(optim_config.weight_decay),
      optax.scale_by_adam(b1=optim_config.beta1, b2=optim_config.beta2, eps=optim_config.eps),
      optax.scale_by_learning_rate(learning_rate),
  )


# config.optim.name -> (schedule, optim_config) -> the update rule of one parameter group.
OPTIMIZERS: dict[str, Callable[[optax.Schedule, Any], optax.GradientTransformation]] = {
    "sgd": sgd_with_decay,
    "adam": adam_with_coupled_decay,
}


def build(optim_config, steps_per_epoch: int,
          groups: Sequence[ParamGroup] = (ParamGroup("all", None),)
          ) -> optax.GradientTransformation:
  """The optimiser `config.optim` describes, on the per-epoch schedule, over parameter groups.

  Args:
    optim_config: the network's optimiser config (`config.optim`): name ("sgd" when absent),
      base_lr, warmup_epochs, milestones, decay, weight_decay, and the rule's own fields
      (sgd: momentum, nesterov; adam: beta1, beta2, eps).
    steps_per_epoch: this network's updates per epoch, to turn its update count into the
      epoch (each network's optimiser counts its own updates).
    groups: the learning-rate groups, e.g. AGW's head at 1x and the rest at 0.1x.

  Raises:
    ValueError: an unknown `config.optim.name` (the message names the known ones).
  """
  name = optim_config.get("name", "sgd")
  if name not in OPTIMIZERS:
    raise ValueError(f"config.optim.name={name!r}: expected one of {sorted(OPTIMIZERS)}.")
  rule = OPTIMIZERS[name]
  return grouped(
      lambda scale: rule(step_schedule(optim_config, steps_per_epoch, scale), optim_config),
      groups)
