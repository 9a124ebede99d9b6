"""A toy domain-adaptation method written against the method contract only.

It trains on the labelled source stream and an unlabelled target stream
(`config.data.target`, sampler "domain_adaptation"). Before every epoch `begin_epoch`
computes the target's features (the loop's batched extractor) and assigns each target image a
pseudo-label: the nearest of `config.toy.num_clusters` directions drawn from the seed and
the epoch, so the labels change every epoch. They live in the state (checkpoints carry them)
and reach the sampler through `epoch_inputs`. The step adds a pseudo-label cross-entropy on
the target rows, keeps a memory [num_target, 8] of target embeddings, indexed by the rows'
positions in the target split, and counts target rows whose batch label is not the state's
pseudo-label (0 when the labels reach the sampler) and how often `begin_epoch` ran per epoch
(once, a mid-epoch resume included).
"""

from __future__ import annotations

from typing import Any

from flax import struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vireid_jax.data.splits import INFRARED
from vireid_jax.data.splits import VISIBLE
from vireid_jax.methods import base


@struct.dataclass
class DaState:
  step: jax.Array
  params: Any
  opt_state: Any
  pseudo_labels: jax.Array     # [num_target] int32, -1 before the first epoch
  label_history: jax.Array     # [num_epochs, num_target] int32: labels of each epoch
  memory: jax.Array            # [num_target, 8] float32
  # Target rows whose batch label differed from the state's pseudo-label: stays 0 when the
  # labels of `epoch_inputs` reach the sampler.
  label_mismatches: jax.Array  # scalar int32
  hook_calls: jax.Array        # [num_epochs] int32: begin_epoch calls per epoch
  tx: optax.GradientTransformation = struct.field(pytree_node=False)


def embed(params, images):
  return jnp.mean(images, axis=(1, 2)) @ params["embed"]


def cross_entropy(logits, labels):
  valid = labels >= 0
  per_row = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
  return jnp.sum(jnp.where(valid, per_row, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


class ToyDomainAdaptation(base.Method):
  uses_target = True

  def create_state(self, data_info: base.DataInfo) -> DaState:
    keys = jax.random.split(jax.random.key(self.config.seed), 3)
    num_clusters = self.config.toy.num_clusters
    params = {"embed": 0.1 * jax.random.normal(keys[0], (3, 8)),
              "classify": 0.1 * jax.random.normal(keys[1], (8, data_info.num_classes)),
              "target_classify": 0.1 * jax.random.normal(keys[2], (8, num_clusters))}
    tx = optax.sgd(0.1)
    num_target = data_info.num_target
    return DaState(step=base.initial_step(), params=params, opt_state=tx.init(params),
                   pseudo_labels=jnp.full((num_target,), -1, jnp.int32),
                   label_history=jnp.full((self.config.train.num_epochs, num_target), -1,
                                          jnp.int32),
                   memory=jnp.zeros((num_target, 8), jnp.float32),
                   label_mismatches=jnp.zeros((), jnp.int32),
                   hook_calls=jnp.zeros((self.config.train.num_epochs,), jnp.int32), tx=tx)

  def begin_epoch(self, state: DaState, epoch: int, context) -> DaState:
    target = context.target
    features = np.zeros((len(target), 8), np.float32)
    for code, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
      rows = np.flatnonzero(target.modalities == code)
      features[rows] = np.asarray(context.features(state, target.images[rows], name)["bn"])
    directions = np.random.default_rng([self.config.seed, epoch]).normal(
        size=(8, self.config.toy.num_clusters))
    labels = np.argmax(features @ directions, axis=1).astype(np.int32)
    return state.replace(pseudo_labels=jnp.asarray(labels),
                         label_history=state.label_history.at[epoch].set(labels),
                         hook_calls=state.hook_calls.at[epoch].add(1))

  def epoch_inputs(self, state: DaState) -> dict:
    return {"target_labels": state.pseudo_labels}

  def train_step(self, state: DaState, batch: dict):
    images = jnp.concatenate([batch["visible"], batch["infrared"]])
    labels = jnp.concatenate([batch["visible_labels"], batch["infrared_labels"]])
    target_images = jnp.concatenate([batch["target_visible"], batch["target_infrared"]])
    target_labels = jnp.concatenate([batch["target_visible_labels"],
                                     batch["target_infrared_labels"]])
    target_rows = jnp.concatenate([batch["target_visible_indices"],
                                   batch["target_infrared_indices"]])

    def loss_fn(params):
      source_loss = cross_entropy(embed(params, images) @ params["classify"], labels)
      target_embedding = embed(params, target_images)
      target_loss = cross_entropy(target_embedding @ params["target_classify"], target_labels)
      return source_loss + target_loss, (source_loss, target_loss, target_embedding)

    (loss, (source_loss, target_loss, target_embedding)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    memory = state.memory.at[target_rows].set(jax.lax.stop_gradient(target_embedding))
    mismatches = jnp.sum(target_labels != state.pseudo_labels[target_rows])
    state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                          opt_state=opt_state, memory=memory,
                          label_mismatches=state.label_mismatches + mismatches)
    return state, {"loss": loss, "source_loss": source_loss, "target_loss": target_loss,
                   "labelled_target_rows": jnp.mean(target_labels >= 0)}

  def features(self, state: DaState, images, modality: str) -> dict:
    del modality
    embedding = embed(state.params, images)
    normalised = embedding / jnp.linalg.norm(embedding, axis=-1, keepdims=True)
    return {"pool": normalised, "bn": normalised}


METHOD = ToyDomainAdaptation
