"""CAJ's method file (spec baseline_data_eval.md §3.3.4, §5.5–5.7, §6): one visible-stem call
for views A and B, the label layout, the KL term and its zero weight, the config
(8 devices: tests/training/test_parallel.py; the authors' checkpoint:
tests/models/test_pytorch_import.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import caj as caj_configs
from vireid_jax import losses
from vireid_jax import methods
from vireid_jax.methods import caj
from vireid_jax.methods.base import DataInfo

INFO = DataInfo(num_classes=4, num_visible=8, num_infrared=8, steps_per_epoch=10)


def tiny_config(**loss):
  config = caj_configs.get_config("synthetic")
  config.model.width = 8
  config.loss.update(loss)
  return config


def batch(seed=0):
  rng = np.random.default_rng(seed)
  images = lambda: rng.normal(size=(8, 32, 16, 3)).astype(np.float32)
  return {"visible": images(), "visible_augmented": images(), "infrared": images(),
          "visible_labels": np.repeat(np.arange(4), 2).astype(np.int32),
          "infrared_labels": np.repeat([1, 2, 3, 0], 2).astype(np.int32)}


@pytest.fixture(scope="module")
def model():
  return caj.CAJMethod(tiny_config()).create_state(INFO).net.model(training=True)


def test_the_loss_is_ce_plus_adp_over_a_b_ir_with_one_visible_stem_call(model):
  inputs = batch()
  config = tiny_config()
  total, metrics = caj.loss_fn(nnx.clone(model), inputs, config.loss)
  outputs = nnx.clone(model)(
      visible=jnp.concatenate([inputs["visible"], inputs["visible_augmented"]]),
      infrared=inputs["infrared"])
  # Labels [l_vis | l_vis | l_ir], in that order (the infrared labels differ from the visible).
  labels = np.concatenate([inputs["visible_labels"], inputs["visible_labels"],
                           inputs["infrared_labels"]])
  np.testing.assert_allclose(metrics["identity_loss"],
                             losses.cross_entropy(outputs.logits, labels), rtol=1e-6)
  np.testing.assert_allclose(metrics["triplet_loss"],
                             losses.adaptive_weighted_triplet(outputs.pooled, labels),
                             rtol=1e-6)
  np.testing.assert_allclose(metrics["kl_loss"], losses.softened_kl_divergence(
      outputs.logits[:8], outputs.logits[16:]), rtol=1e-6)
  # The reference's --kl 0: the KL term is logged and adds nothing.
  assert float(metrics["kl_loss"]) > 0
  np.testing.assert_allclose(total, metrics["identity_loss"] + metrics["triplet_loss"],
                             rtol=1e-6)
  # A and B through two separate visible-stem calls: the stem's BatchNorm sees other
  # statistics, and the loss changes.
  separate = nnx.clone(model)
  stem_a = separate.visible_stem(jnp.asarray(inputs["visible"]))
  stem_b = separate.visible_stem(jnp.asarray(inputs["visible_augmented"]))
  stem_ir = separate.infrared_stem(jnp.asarray(inputs["infrared"]))
  pooled = separate.gem(separate.stages(jnp.concatenate([stem_a, stem_b, stem_ir])))
  logits = separate.classifier(separate.bottleneck(pooled))
  split_total = losses.cross_entropy(logits, labels) + losses.adaptive_weighted_triplet(
      pooled, labels)
  assert abs(float(split_total) - float(total)) > 1e-4


def test_a_kl_weight_adds_the_weighted_term(model):
  inputs = batch()
  base_total, base_metrics = caj.loss_fn(nnx.clone(model), inputs, tiny_config().loss)
  total, metrics = caj.loss_fn(nnx.clone(model), inputs, tiny_config(kl_weight=0.5).loss)
  np.testing.assert_allclose(total, base_total + 0.5 * base_metrics["kl_loss"], rtol=1e-6)
  assert set(metrics) == {"loss", "identity_loss", "triplet_loss", "kl_loss", "accuracy"}


def test_one_step_trains_and_counts_once():
  method = caj.CAJMethod(tiny_config())
  state = method.create_state(INFO)
  new_state, metrics = jax.jit(method.train_step)(state, batch())
  assert int(new_state.step) == 1 and np.isfinite(float(metrics["loss"]))
  assert not np.array_equal(new_state.net.params["classifier"]["kernel"][...],
                            state.net.params["classifier"]["kernel"][...])


def test_without_the_caj_views_the_error_names_the_augmentation(model):
  inputs = batch()
  del inputs["visible_augmented"]
  with pytest.raises(ValueError, match='config.data.augmentation = "caj"'):
    caj.loss_fn(model, inputs, tiny_config().loss)
  config = tiny_config()
  config.data.augmentation = "agw"
  with pytest.raises(ValueError, match="config.data.augmentation"):
    caj.CAJMethod(config)


def test_reference_settings():
  config = caj_configs.get_config("sysu")
  assert isinstance(methods.resolve(config), caj.CAJMethod)
  assert config.data.augmentation == "caj" and config.train.num_epochs == 100
  assert config.eval.flip and config.eval.main_feature == "bn"
  assert (config.data.ids_per_batch, config.data.images_per_id, config.data.pad) == (8, 4, 10)
  assert (config.data.image_height, config.data.image_width) == (288, 144)
  loss = config.loss
  assert (loss.adp_alpha, loss.adp_gamma, loss.adp_square) == (1.0, 1.0, True)
  assert (loss.kl_weight, loss.kl_temperature) == (0.0, 3.0)
  assert config.model.pretrained.endswith("resnet50-19c8e357.pth")
  assert caj_configs.get_config("regdb").data.dataset == "regdb"
  with pytest.raises(ValueError, match="sysu, regdb, llcm, synthetic"):
    caj_configs.get_config("market")
