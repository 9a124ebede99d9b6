"""The method contract: what every system supplies to the one training loop.

A method is a subclass of `Method`, built with the experiment config (`Method(config)`), with

  create_state(data_info) -> state
      Its whole state as one pytree: its networks (`Net`s, each a model with its own
      optimiser), anything else it trains with (memories, pseudo-labels) and a single scalar
      `step`. A pure function of the config and `data_info` (same seed → same state). The
      checkpoint holds every array of the state; static parts (graph definitions, optimisers)
      are rebuilt from the config.
  train_step(state, batch) -> (state, metrics)
      Pure and jittable: the loop jits it over the device mesh with the state replicated and
      the batch split by rows. One step may update several networks (a GAN's discriminator and
      generator) and advances `step` exactly once. Random numbers come from the config seed
      folded with `state.step`, so a resumed run draws the same ones. `metrics` is a flat dict
      of scalars with names of the method's choosing; a non-finite value stops training.
  features(state, images, modality) -> {"pool": [B, D], "bn": [B, D], ...}
      Evaluation features of ImageNet-normalised images [B, H, W, 3] of one modality
      ("visible" or "infrared").

and optionally

  begin_epoch(state, epoch, context) -> state
      Runs on the host once per epoch, before its first step (e.g. pseudo-labels for the
      target domain). Whatever it computes must live in the state, so checkpoints carry it: a
      run resumed in the middle of an epoch restores it instead of running the hook again.
  epoch_inputs(state) -> {name: host array}
      What the input side needs for the epoch (e.g. {"target_labels": [num_target] int32}),
      called at every start of an epoch, a resume in its middle included; the configured
      sampler (`config.data.sampler`) reads it.

  step_variant(step) -> hashable | None
      For a method whose step is a different program at different steps (AlignGAN's three
      phases): the variant of the 0-based step `step` (a host int), computed from the config
      alone. The loop then calls `train_step(state, batch, variant)` with the variant as a
      static argument, so each variant compiles to a program of its own (branching inside one
      program with `lax.cond` runs several times slower on CPU). None (the default): the plain
      `train_step(state, batch)`.

and the class attributes `uses_target` (the loop feeds the unlabelled training split of
`config.data.target` as a target stream; without it a target is evaluated only: direct
transfer) and `progress_metric` (the metric the progress bar shows, default "loss").

A method whose authors release PyTorch checkpoints also names `model_type` (the NNX model
class it builds) with the static functions `load_pytorch(path_or_state_dict, model_config)`
and `to_pytorch_state_dict(model)`; `vireid_jax.checkpoints` dispatches on them. A model whose
shapes follow the input size (DJANet's attention over the layer3 positions) also sets
`load_pytorch_reads_image_size = True`: its loader then gets `image_size=(H, W)` from
`config.data` as a keyword. A method whose model is described by more than `config.model`
(AlignGAN's GAN widths in `config.aligngan`) sets `load_pytorch_takes_config = True`: its
loader gets the whole experiment config instead of `config.model`.

`config.data.sampler` and `config.data.augmentation` name the method's input recipe in the
registries of `vireid_jax.data`; the method's own config file sets them.
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar

from flax import nnx
from flax import struct
import jax
import jax.numpy as jnp
import optax

from vireid_jax.data.splits import MODALITY_NAMES
from vireid_jax.training.context import DataInfo
from vireid_jax.training.context import EpochContext

__all__ = ["DataInfo", "EpochContext", "Method", "Net", "NetState", "MethodError", "check"]

REQUIRED = ("create_state", "train_step", "features")
OPTIONAL = ("begin_epoch", "epoch_inputs", "step_variant")
ATTRIBUTES = ("uses_target", "progress_metric")
PYTORCH = ("model_type", "load_pytorch", "to_pytorch_state_dict",
           "load_pytorch_reads_image_size", "load_pytorch_takes_config")


class MethodError(TypeError):
  """A method that does not fulfil the contract; the message names what is missing or wrong."""


class Method:
  """Base class of every method; subclasses override `REQUIRED` and any of `OPTIONAL`.

  Attributes:
    config: the experiment config the method was built with.
    uses_target: whether it trains on an unlabelled target stream (`config.data.target`).
    progress_metric: the metric the progress bar shows.
  """

  uses_target: ClassVar[bool] = False
  progress_metric: ClassVar[str] = "loss"

  def __init__(self, config):
    self.config = config

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    # A misspelt hook would otherwise be a new method that nothing ever calls.
    contract = REQUIRED + OPTIONAL + ATTRIBUTES + PYTORCH
    for name in vars(cls):
      if name.startswith("_") or name in contract:
        continue
      close = difflib.get_close_matches(name, contract, n=1, cutoff=0.88)
      if close:
        raise MethodError(f"{cls.__qualname__}.{name} looks like a misspelling of the method "
                          f"contract's {close[0]!r}; rename it (or give it a name further "
                          "from the contract's).")

  def create_state(self, data_info: DataInfo) -> Any:
    raise NotImplementedError

  def train_step(self, state: Any, batch: dict) -> tuple[Any, dict]:
    raise NotImplementedError

  def features(self, state: Any, images: jax.Array, modality: str) -> dict:
    raise NotImplementedError

  def begin_epoch(self, state: Any, epoch: int, context: EpochContext) -> Any:
    del epoch, context
    return state

  def epoch_inputs(self, state: Any) -> dict:
    del state
    return {}

  def step_variant(self, step: int) -> Any:
    del step
    return None


def check(method: Any) -> Any:
  """Returns `method` if it fulfils the contract, else raises MethodError naming every gap."""
  problems = []
  if not isinstance(method, Method):
    problems.append(f"it is a {type(method).__name__}, not an instance of a "
                    "vireid_jax.methods.base.Method subclass")
  else:
    cls = type(method)
    missing = [name for name in REQUIRED if getattr(cls, name) is getattr(Method, name)]
    if missing:
      problems.append(f"it does not define {', '.join(missing)}")
    if not isinstance(method.progress_metric, str):
      problems.append(f"progress_metric is {method.progress_metric!r}, not a metric name")
  if problems:
    raise MethodError(f"Method {type(method).__qualname__} does not fulfil the method contract "
                      f"(vireid_jax/methods/base.py): {'; '.join(problems)}.")
  return method


@struct.dataclass
class Net:
  """One network with its own optimiser: its arrays, graph and transformation.

  The NNX model is split into a static graph definition and array states, so a step is a
  pure function over pytrees and the network shards and checkpoints like any pytree. A `Net`
  has no step counter: the method state owns the single `step`. Its optimiser counts its own
  updates (the learning-rate schedules read that count).

  Attributes:
    params: nnx.State of the trained parameters (nnx.Param).
    batch_stats: nnx.State of the BatchNorm running statistics (nnx.BatchStat; empty for a
      network without BatchNorm).
    opt_state: the optimiser state over `params`.
    graphdef: the model's static structure (not a pytree leaf).
    tx: the optimiser (not a pytree leaf).
  """

  params: Any
  batch_stats: Any
  opt_state: Any
  graphdef: Any = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, model: nnx.Module, tx: optax.GradientTransformation) -> "Net":
    graphdef, params, batch_stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    if jax.tree_util.tree_leaves(rest):
      raise ValueError(f"Model holds state that is neither a parameter nor a BatchNorm "
                       f"statistic; the network would drop it: {rest}")
    return cls(params=params, batch_stats=batch_stats, opt_state=tx.init(params),
               graphdef=graphdef, tx=tx)

  def model(self, *, training: bool, params=None) -> nnx.Module:
    """The NNX model over this network's arrays (or other `params`), in either mode."""
    # Fresh Variables (copy): the model may be built inside a transformation (jax.grad) from
    # arrays of an outer trace and still update its BatchNorm statistics there.
    model = nnx.merge(self.graphdef, self.params if params is None else params,
                      self.batch_stats, copy=True)
    if training:
      model.train()
    else:
      model.eval()
    return model

  def minimize(self, loss_fn, *, learning_rate=None) -> tuple["Net", Any]:
    """One optimiser update down the gradient of `loss_fn(model) -> (loss, aux)`.

    The model is in training mode; the BatchNorm statistics its forward pass computes are
    kept (`nnx.grad` differentiates the parameters only and carries the statistics out of
    the trace). `learning_rate` as in `apply_gradients`. Returns the updated network and
    `aux`.
    """
    model = self.model(training=True)
    grads, aux = nnx.grad(loss_fn, has_aux=True)(model)
    return self.apply_gradients(grads, nnx.state(model, nnx.BatchStat),
                                learning_rate=learning_rate), aux

  def apply_gradients(self, grads, batch_stats=None, *, learning_rate=None) -> "Net":
    """One optimiser update; `batch_stats` are those the forward pass produced (None: kept).

    `learning_rate` (a scalar, may be traced) multiplies the optimiser's updates: for an
    optimiser built with a unit rate whose schedule follows something other than its own
    update count (AlignGAN's rates follow the global iteration, not each player's updates).
    """
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    if learning_rate is not None:
      updates = jax.tree.map(lambda update: learning_rate * update, updates)
    return self.replace(params=optax.apply_updates(self.params, updates),
                        batch_stats=self.batch_stats if batch_stats is None else batch_stats,
                        opt_state=opt_state)


@struct.dataclass
class NetState:
  """The state of a method with one network: `step`, scalar int32 updates applied, and
  `net`, the network with its optimiser (AGW, MCJA)."""

  step: jax.Array
  net: Net


def minimize_step(state: Any, loss_fn) -> tuple[Any, dict]:
  """One update of `state.net` down `loss_fn(model) -> (loss, metrics)` and the step count: the
  whole `train_step` of a one-network method (`NetState` or any state with `step` and `net`)."""
  net, metrics = state.net.minimize(loss_fn)
  return state.replace(step=state.step + 1, net=net), metrics


def check_modality(modality: str) -> None:
  """Refuses a modality string other than "visible" / "infrared" (`features`' argument)."""
  if modality not in MODALITY_NAMES:
    raise ValueError(f"modality must be one of {MODALITY_NAMES}, got {modality!r}")


def initial_step() -> jax.Array:
  """The scalar int32 `step` every state starts from."""
  return jnp.zeros((), jnp.int32)
