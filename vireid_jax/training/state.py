"""The train state: everything a step reads and writes, as one pytree.

Models are Flax NNX modules; for the jitted step we split them into a static graph definition
and array states (parameters, BatchNorm statistics), so the step is a pure function over this
state and can be sharded and checkpointed like any pytree.
"""

from __future__ import annotations

from typing import Any

from flax import nnx
from flax import struct
import jax
import jax.numpy as jnp
import optax


@struct.dataclass
class TrainState:
  """Attributes:
    step: scalar int32, number of updates applied.
    params: nnx.State of the trained parameters (nnx.Param).
    batch_stats: nnx.State of the BatchNorm running statistics (nnx.BatchStat).
    opt_state: the optimiser state over `params`.
    graphdef: the model's static structure (not a pytree leaf).
    tx: the optimiser (not a pytree leaf).
  """

  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  graphdef: Any = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)

  @classmethod
  def create(cls, model: nnx.Module, tx: optax.GradientTransformation) -> "TrainState":
    graphdef, params, batch_stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    if jax.tree_util.tree_leaves(rest):
      raise ValueError(f"Model holds state that is neither a parameter nor a BatchNorm "
                       f"statistic; the train state would drop it: {rest}")
    return cls(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
               opt_state=tx.init(params), graphdef=graphdef, tx=tx)

  def model(self, *, training: bool, params=None, batch_stats=None) -> nnx.Module:
    """The NNX model over this state's arrays (or the given ones), in either mode."""
    model = nnx.merge(self.graphdef, self.params if params is None else params,
                      self.batch_stats if batch_stats is None else batch_stats)
    if training:
      model.train()
    else:
      model.eval()
    return model

  def apply_gradients(self, grads, batch_stats) -> "TrainState":
    """One optimiser update; `batch_stats` are the statistics the forward pass produced."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                        batch_stats=batch_stats, opt_state=opt_state)

  def checkpoint_items(self) -> dict:
    """The arrays a checkpoint holds (graph and optimiser are rebuilt from the config)."""
    return {"step": self.step, "params": self.params, "batch_stats": self.batch_stats,
            "opt_state": self.opt_state}

  def replace_checkpoint_items(self, items: dict) -> "TrainState":
    return self.replace(**items)
