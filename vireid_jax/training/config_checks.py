"""Every config field with a closed set of values or a range, checked before any work.

A bad value (an unknown sampler, a negative learning rate, a batch the devices cannot split)
would otherwise surface after the data build, at the first step or only at the evaluation at
the end of a training. `check(config, devices=...)`, called by `training.loop.run` before the
workdir is touched, compares every field of `RULES` that the config has (a method's own
section, e.g. `config.dan`, only when present) and raises one `ConfigValueError` listing each
bad field with its value and what is allowed.

The allowed values come from the registries and constants of the modules that use them
(`data.sampling.SAMPLERS`, `training.optim.OPTIMIZERS`, `evaluation.protocols`, ...), so a
method that registers a sampler makes it valid here too. What depends on the method's network
(MMN's stripes, DJANet's attention grid: whether it can reduce the image size) is checked by
the method's constructor, which `main.py` runs before the loop: the method's own check.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Collection
from typing import Any


class ConfigValueError(ValueError):
  """Config fields with values outside what they allow; the message names each one."""


def _data_registry(name: str) -> Callable[[], Collection]:
  # The data package imports TensorFlow: only when a check runs (as the loop's run does).
  def values():
    from vireid_jax.data import files
    from vireid_jax.data import sampling
    from vireid_jax.data import views
    return {"samplers": sampling.SAMPLERS, "target_samplers": sampling.TARGET_SAMPLERS,
            "augmentations": views.AUGMENTATIONS,
            "erasing": ("none", *views.ERASING_VARIANTS),
            "resize_filters": files.RESIZE_FILTERS}[name]
  return values


def _constant(module: str, name: str) -> Callable[[], Collection]:
  def values():
    import importlib
    return getattr(importlib.import_module(module), name)
  return values


def _fixed(*values) -> Callable[[], Collection]:
  return lambda: values


@dataclasses.dataclass(frozen=True)
class Rule:
  """What one field allows: one of `choices`, each element of a sequence one of `choices`
  (`each`), or a number within [`minimum`, `maximum`] (`above`: strictly above `minimum`;
  `integer`: whole numbers only)."""

  field: str
  choices: Callable[[], Collection] | None = None
  each: bool = False
  minimum: float | None = None
  maximum: float | None = None
  above: bool = False
  integer: bool = False
  also: tuple = ()                    # values allowed besides the range (-1: "automatic")

  def allowed(self) -> str:
    if self.choices is not None:
      values = ", ".join(repr(value) for value in sorted(self.choices(), key=str))
      return (f"a sequence of one or more of {values}" if self.each else f"one of {values}")
    kind = "an integer" if self.integer else "a number"
    bounds = []
    if self.minimum is not None:
      bounds.append(f"{'>' if self.above else '>='} {self.minimum:g}")
    if self.maximum is not None:
      bounds.append(f"<= {self.maximum:g}")
    extra = "".join(f" or {value!r}" for value in self.also)
    return f"{kind} {' and '.join(bounds)}{extra}".strip()

  def accepts(self, value: Any) -> bool:
    if self.choices is not None:
      allowed = self.choices()
      if self.each:
        return (isinstance(value, (list, tuple)) and len(value) > 0
                and all(isinstance(item, str) and item in allowed for item in value))
      return isinstance(value, (str, int)) and not isinstance(value, bool) and value in allowed
    if value in self.also and not isinstance(value, bool):
      return True
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
      return False
    if self.integer and int(value) != value:
      return False
    if self.minimum is not None and (value <= self.minimum if self.above
                                     else value < self.minimum):
      return False
    return self.maximum is None or value <= self.maximum


def _choice(field, values, **kwargs):
  return Rule(field, choices=values, **kwargs)


def _count(field, minimum=1, **kwargs):
  return Rule(field, minimum=minimum, integer=True, **kwargs)


_PROTOCOLS = "vireid_jax.evaluation.protocols"

RULES: tuple[Rule, ...] = (
    # Data.
    _choice("data.dataset", _constant("vireid_jax.evaluation.evaluator", "DATASETS")),
    Rule("data.trial", minimum=1, maximum=10, integer=True),
    _choice("data.resize_filter", _data_registry("resize_filters")),
    _count("data.image_height"),
    _count("data.image_width"),
    _count("data.pad", minimum=0),
    _count("data.ids_per_batch"),
    _count("data.images_per_id"),
    _count("data.eval_batch_size"),
    _choice("data.sampler", _data_registry("samplers")),
    _count("data.gan_ids_per_batch"),
    _count("data.gan_images_per_id"),
    _count("data.batches_per_epoch"),
    _choice("data.augmentation", _data_registry("augmentations")),
    _choice("data.random_erasing", _data_registry("erasing")),
    _choice("data.augment_on", _constant("vireid_jax.data.device_augment", "AUGMENT_ON")),
    _choice("data.target.dataset", lambda: ("",) + tuple(
        _constant("vireid_jax.evaluation.evaluator", "DATASETS")())),
    Rule("data.target.trial", minimum=1, maximum=10, integer=True),
    _choice("data.target.domain", lambda: ("",) + tuple(
        _constant("vireid_jax.data.target_domains", "SYNTHETIC_DOMAINS")())),
    _choice("data.target.train_split", _constant("vireid_jax.data.datasets",
                                                 "TARGET_TRAIN_SPLITS")),
    _choice("data.target.identity_split", _constant("vireid_jax.data.datasets",
                                                    "IDENTITY_SPLITS")),
    _choice("data.target_sampler", _data_registry("target_samplers")),
    # Model.
    _choice("model.depth", _constant("vireid_jax.models.resnet", "RESNET_CONFIGS")),
    _count("model.width"),
    _choice("model.last_stride", _fixed(1, 2)),
    _choice("model.non_local_inner", _fixed("reference", "half")),
    _choice("model.pooling", _constant("vireid_jax.models.agw", "POOLING")),
    _choice("model.dtype", _fixed("float32", "bfloat16")),
    # Loss.
    Rule("loss.identity_weight", minimum=0),
    Rule("loss.triplet_weight", minimum=0),
    Rule("loss.triplet_margin", minimum=0),
    # Optimiser.
    _choice("optim.name", _constant("vireid_jax.training.optim", "OPTIMIZERS")),
    Rule("optim.base_lr", minimum=0, above=True),
    Rule("optim.backbone_lr_scale", minimum=0),
    Rule("optim.momentum", minimum=0, maximum=1),
    Rule("optim.beta1", minimum=0, maximum=1),
    Rule("optim.beta2", minimum=0, maximum=1),
    Rule("optim.eps", minimum=0, above=True),
    Rule("optim.weight_decay", minimum=0),
    _count("optim.warmup_epochs", minimum=0),
    _choice("optim.warmup_style", _constant("vireid_jax.training.optim", "WARMUP_STYLES")),
    Rule("optim.warmup_factor", minimum=0, maximum=1),
    Rule("optim.decay", minimum=0, maximum=1, above=True),
    # Training.
    _count("train.num_epochs", minimum=0),
    _count("train.steps_per_epoch", also=(-1,)),
    _count("train.log_every_steps"),
    _count("train.checkpoints_to_keep"),
    _count("train.checkpoint_every_steps", minimum=0),
    _choice("train.matmul_precision", _constant("vireid_jax.training.loop",
                                                "MATMUL_PRECISIONS")),
    # Evaluation.
    _choice("eval.mode", lambda: tuple(_constant(_PROTOCOLS, "SYSU_GALLERY_CAMERAS")())),
    _choice("eval.gallery_shots", _constant(_PROTOCOLS, "SYSU_GALLERY_SHOTS")),
    _choice("eval.gallery_scheme", _constant(_PROTOCOLS, "SYSU_GALLERY_SCHEMES")),
    _choice("eval.regdb_directions", _constant(_PROTOCOLS, "REGDB_DIRECTIONS"), each=True),
    _choice("eval.regdb_cmc", _constant("vireid_jax.evaluation.metrics", "CMC_KINDS")),
    _choice("eval.llcm_directions", _constant(_PROTOCOLS, "LLCM_DIRECTIONS"), each=True),
    _count("eval.num_trials"),
    _count("eval.max_rank"),
    _choice("eval.distance", _constant("vireid_jax.evaluation.distances", "DISTANCES")),
    _choice("eval.rerank", _constant("vireid_jax.evaluation.evaluator", "RERANKING")),
    _count("eval.k_reciprocal.k1"),
    _count("eval.k_reciprocal.k2"),
    Rule("eval.k_reciprocal.lambda_value", minimum=0, maximum=1),
    _count("eval.query_block_size"),
    _count("eval.ranking_queries", minimum=0),
    _count("eval.ranking_top_k"),
    _count("eval.every_epochs", minimum=0),
    _choice("eval.select", _constant("vireid_jax.training.periodic_evaluation", "SELECTIONS")),
) + tuple(
    rule for dataset in ("sysu", "regdb", "llcm") for rule in (
        _count(f"eval.mser.{dataset}.k1"),
        _count(f"eval.mser.{dataset}.k2"),
        Rule(f"eval.mser.{dataset}.lambda_value", minimum=0, maximum=1)))


_MISSING = object()


def lookup(config, field: str) -> Any:
  """The value of dotted `field` in `config`, or `_MISSING` when the config lacks it."""
  value = config
  for key in field.split("."):
    try:
      value = value[key]
    except (KeyError, TypeError, AttributeError):
      return _MISSING
  return value


def problems(config, *, devices: int | None = None) -> list[str]:
  """One line per bad field: "config.<field>=<value>: expected <what is allowed>"."""
  found = []
  for rule in RULES:
    value = lookup(config, rule.field)
    if value is not _MISSING and not rule.accepts(value):
      found.append(f"config.{rule.field}={value!r}: expected {rule.allowed()}")
  ids, per_id = lookup(config, "data.ids_per_batch"), lookup(config, "data.images_per_id")
  if (devices and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                      for v in (ids, per_id)) and (ids * per_id) % devices):
    # The mesh splits each modality's P x K rows evenly over the devices. The issue asked
    # for ids_per_batch alone to divide; P x K is what the split needs (4 x 2 on 8 devices
    # is a valid batch the 8-device tests use).
    found.append(f"config.data.ids_per_batch={ids!r}: expected ids_per_batch x "
                 f"config.data.images_per_id ({ids} x {per_id} = {ids * per_id} rows per "
                 f"modality) to be a multiple of the {devices} devices that split the batch")
  milestones = lookup(config, "optim.milestones")
  if milestones is not _MISSING and not (
      isinstance(milestones, (list, tuple))
      and all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in milestones)
      and list(milestones) == sorted(milestones)):
    found.append(f"config.optim.milestones={milestones!r}: expected increasing epochs (integers "
                 ">= 0)")
  return found


def check(config, *, devices: int | None = None) -> None:
  """Raises ConfigValueError listing every bad field (see `problems`).

  Args:
    config: the experiment config.
    devices: the devices a training batch is split over (None: not checked).
  """
  found = problems(config, devices=devices)
  if found:
    raise ConfigValueError("Config values outside what they allow (nothing was run):\n  "
                           + "\n  ".join(found))
