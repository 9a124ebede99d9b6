"""A tiny method written against the method contract only, to test the loop on its own.

Model: per-channel mean of the image → linear embedding (8) → linear classifier, as plain
arrays with one SGD optimiser (no NNX model: the contract asks for a pytree state with a
`step`, nothing more). Its `begin_epoch` records a feature computed through the loop's
extractor. With `config.toy.nan_at_step = n`, the loss of step n is NaN. (The once-per-epoch
count of the hook across a resume is tested with `toy_domain_adaptation.py`.)
"""

from __future__ import annotations

from typing import Any

from flax import struct
import jax
import jax.numpy as jnp
import optax

from vireid_jax.methods import base


@struct.dataclass
class ToyState:
  step: jax.Array
  params: Any
  opt_state: Any
  hook_calls: jax.Array      # [num_epochs] int32
  hook_feature: jax.Array    # [num_epochs] float32
  tx: optax.GradientTransformation = struct.field(pytree_node=False)


def embed(params, images):
  return jnp.mean(images, axis=(1, 2)) @ params["embed"]


class ToyMethod(base.Method):

  def create_state(self, data_info: base.DataInfo) -> ToyState:
    embed_key, classify_key = jax.random.split(jax.random.key(self.config.seed))
    params = {"embed": 0.1 * jax.random.normal(embed_key, (3, 8)),
              "classify": 0.1 * jax.random.normal(classify_key, (8, data_info.num_classes))}
    tx = optax.sgd(0.1)
    num_epochs = self.config.train.num_epochs
    return ToyState(step=base.initial_step(), params=params, opt_state=tx.init(params),
                    hook_calls=jnp.zeros((num_epochs,), jnp.int32),
                    hook_feature=jnp.zeros((num_epochs,), jnp.float32), tx=tx)

  def train_step(self, state: ToyState, batch: dict):
    images = jnp.concatenate([batch["visible"], batch["infrared"]])
    labels = jnp.concatenate([batch["visible_labels"], batch["infrared_labels"]])

    def loss_fn(params):
      logits = embed(params, images) @ params["classify"]
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    loss = jnp.where(state.step + 1 == self.config.toy.nan_at_step, jnp.nan, loss)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                          opt_state=opt_state)
    return state, {"loss": loss, "cross_entropy": loss}

  def features(self, state: ToyState, images, modality: str) -> dict:
    del modality
    embedding = embed(state.params, images)
    normalised = embedding / jnp.linalg.norm(embedding, axis=-1, keepdims=True)
    return {"pool": normalised, "bn": normalised}

  def begin_epoch(self, state: ToyState, epoch: int, context) -> ToyState:
    feature = context.features(state, context.train.images[:4], "visible")["bn"]
    return state.replace(hook_calls=state.hook_calls.at[epoch].add(1),
                         hook_feature=state.hook_feature.at[epoch].set(float(feature.sum())))


METHOD = ToyMethod
