"""A toy GAN written against the method contract only: two networks, two optimisers, one step.

Generator G: a 1x1 convolution that turns visible images into fake infrared ones (plus
noise drawn from the config seed and the step), and a re-id head (per-channel mean →
linear embedding → BatchNorm → linear classifier) on infrared and fake infrared images.
Discriminator D: a 1x1 convolution and a linear score on the channel means (LSGAN).

One `train_step` updates both, simultaneously, with their own optimisers (SGD with AGW's
schedule for G, Adam for D): `vireid_jax.ops.adversarial_scores` evaluates D on the fakes
once and routes D's loss into D and G's adversarial loss into G. Metrics have the method's
own names (no "loss"); the progress bar shows `generator_loss`.
"""

from __future__ import annotations

from flax import nnx
from flax import struct
import jax
import jax.numpy as jnp
import optax

from vireid_jax import ops
from vireid_jax.methods import base
from vireid_jax.training import optim


class Generator(nnx.Module):

  def __init__(self, num_classes: int, *, rngs: nnx.Rngs):
    self.translate = nnx.Conv(3, 3, (1, 1), rngs=rngs)
    self.embed = nnx.Linear(3, 8, rngs=rngs)
    self.neck = nnx.BatchNorm(8, rngs=rngs)
    self.classify = nnx.Linear(8, num_classes, use_bias=False, rngs=rngs)

  def fake_infrared(self, visible, noise):
    return self.translate(visible) + noise

  def embedding(self, images):
    return self.neck(self.embed(jnp.mean(images, axis=(1, 2))))


class Discriminator(nnx.Module):

  def __init__(self, *, rngs: nnx.Rngs):
    self.conv = nnx.Conv(3, 4, (1, 1), rngs=rngs)
    self.score = nnx.Linear(4, 1, rngs=rngs)

  def __call__(self, images):
    return self.score(jnp.mean(jax.nn.relu(self.conv(images)), axis=(1, 2)))


@struct.dataclass
class GanState:
  step: jax.Array
  generator: base.Net
  discriminator: base.Net


class ToyGan(base.Method):
  progress_metric = "generator_loss"

  def create_state(self, data_info: base.DataInfo) -> GanState:
    rngs = nnx.Rngs(self.config.seed)
    generator = Generator(data_info.num_classes, rngs=rngs)
    discriminator = Discriminator(rngs=rngs)
    # G's head (neck + classifier) at the base rate, its translator at a tenth of it.
    generator_tx = optim.build(self.config.optim, data_info.steps_per_epoch, (
        optim.ParamGroup("head", r"^(neck|classify)\.", 1.0),
        optim.ParamGroup("rest", None, 0.1)))
    return GanState(step=base.initial_step(),
                    generator=base.Net.create(generator, generator_tx),
                    discriminator=base.Net.create(discriminator, optax.adam(1e-3)))

  def train_step(self, state: GanState, batch: dict):
    noise_key = jax.random.fold_in(jax.random.key(self.config.seed), state.step)
    noise = 0.01 * jax.random.normal(noise_key, batch["visible"].shape)
    discriminator_graph = state.discriminator.graphdef

    def discriminate(params, images):
      return nnx.merge(discriminator_graph, params)(images)

    def losses(generator_params, discriminator_params):
      generator = state.generator.model(training=True, params=generator_params)
      fake = generator.fake_infrared(batch["visible"], noise)
      scores_for_d, scores_for_g = ops.adversarial_scores(discriminate, discriminator_params,
                                                          fake)
      discriminator_loss = 0.5 * (
          ops.lsgan_loss(discriminate(discriminator_params, batch["infrared"]), 1.0) +
          ops.lsgan_loss(scores_for_d, 0.0))
      logits = generator.classify(generator.embedding(
          jnp.concatenate([fake, batch["infrared"]])))
      labels = jnp.concatenate([batch["visible_labels"], batch["infrared_labels"]])
      identity_loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
      generator_loss = ops.lsgan_loss(scores_for_g, 1.0) + identity_loss
      metrics = {"generator_loss": generator_loss, "discriminator_loss": discriminator_loss,
                 "identity_loss": identity_loss}
      return generator_loss + discriminator_loss, (metrics, nnx.state(generator, nnx.BatchStat))

    (generator_grads, discriminator_grads), (metrics, batch_stats) = jax.grad(
        losses, argnums=(0, 1), has_aux=True)(state.generator.params,
                                              state.discriminator.params)
    return state.replace(
        step=state.step + 1,
        generator=state.generator.apply_gradients(generator_grads, batch_stats),
        discriminator=state.discriminator.apply_gradients(discriminator_grads)), metrics

  def features(self, state: GanState, images, modality: str) -> dict:
    generator = state.generator.model(training=False)
    if modality == "visible":
      images = generator.fake_infrared(images, 0.0)
    embedding = generator.embedding(images)
    normalised = embedding / jnp.linalg.norm(embedding, axis=-1, keepdims=True)
    return {"pool": normalised, "bn": normalised}


METHOD = ToyGan
