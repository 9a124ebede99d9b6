"""AGW's method file: the triplet switch (AGW vs the reference's base method) and the precision
of the compiled step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import synthetic
from vireid_jax import losses
from vireid_jax.methods import agw
from vireid_jax.methods.base import DataInfo
from vireid_jax.training import loop
from vireid_jax.training import parallel

INFO = DataInfo(num_classes=4, num_visible=8, num_infrared=8, steps_per_epoch=10)


def tiny_config(**loss):
  config = synthetic.get_config()
  config.model.width = 8
  for key, value in loss.items():
    setattr(config.loss, key, value)
  return config


def batch():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 2).astype(np.int32)
  return {"visible": rng.normal(size=(8, 32, 16, 3)).astype(np.float32),
          "infrared": rng.normal(size=(8, 32, 16, 3)).astype(np.float32),
          "visible_labels": labels, "infrared_labels": labels}


@pytest.mark.parametrize("triplet", ["wrt", "hard"])
def test_the_triplet_term_is_the_configured_loss(triplet):
  config = tiny_config(triplet=triplet, triplet_margin=0.7)
  state = agw.AGWMethod(config).create_state(INFO)
  inputs = batch()
  model = state.net.model(training=True)
  total, metrics = agw.loss_fn(model, inputs, config.loss)
  model = state.net.model(training=True)
  outputs = model(visible=inputs["visible"], infrared=inputs["infrared"])
  labels = jnp.concatenate([inputs["visible_labels"], inputs["infrared_labels"]])
  expected = (losses.weighted_regularized_triplet(outputs.pooled, labels) if triplet == "wrt"
              else losses.hard_mining_triplet(outputs.pooled, labels, margin=0.7))
  np.testing.assert_allclose(metrics["triplet_loss"], expected, rtol=1e-5)
  np.testing.assert_allclose(total, metrics["identity_loss"] + expected, rtol=1e-5)


def test_an_unknown_triplet_loss_names_the_key():
  with pytest.raises(ValueError, match=r"config.loss.triplet='circle'"):
    agw.AGWMethod(tiny_config(triplet="circle"))


def lowered_step_text(precision):
  config = tiny_config()
  config.train.matmul_precision = precision
  method = agw.AGWMethod(config)
  mesh = parallel.make_mesh(jax.devices()[:1])
  state = parallel.replicate(method.create_state(INFO), mesh)
  with loop.matmul_precision(config):
    return loop.jit_train_step(method, mesh).lower(
        state, parallel.global_batch(batch(), mesh)).as_text()


def precisions(text, op):
  lines = [line for line in text.splitlines() if op in line]
  return len(lines), sum("HIGHEST" in line for line in lines)


def test_matmul_precision_changes_the_compiled_step():
  default, highest = lowered_step_text("default"), lowered_step_text("highest")
  convolutions, highest_convolutions = precisions(default, "stablehlo.convolution")
  assert convolutions > 100 and highest_convolutions == 0
  # Only the triplet loss's Gram matrix asks for HIGHEST by itself (losses.pairwise_euclidean).
  products, highest_products = precisions(default, "stablehlo.dot_general")
  assert 0 < highest_products < products
  # "highest": every convolution and matrix product of the step, forward and backward.
  assert precisions(highest, "stablehlo.convolution") == (convolutions, convolutions)
  assert precisions(highest, "stablehlo.dot_general") == (products, products)
  with pytest.raises(ValueError, match=r"config.train.matmul_precision='fast'"):
    config = tiny_config()
    config.train.matmul_precision = "fast"
    loop.matmul_precision(config)
