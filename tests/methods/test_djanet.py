"""DJANet's method file (spec djanet.md §5–6): the four-view label layout, the losses and their
weights, the optimiser's groups, decay and rate table, the config, bad input (the network:
tests/models/test_djanet.py; 8 devices: tests/training/test_parallel_mmn_djanet.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import djanet as djanet_configs
from vireid_jax import losses
from vireid_jax import methods
from vireid_jax.methods import djanet
from vireid_jax.methods.base import DataInfo
from vireid_jax.models.djanet import DJANetOutputs
from vireid_jax.training import optim

INFO = DataInfo(num_classes=4, num_visible=8, num_infrared=8, steps_per_epoch=10)


def tiny_config(**loss):
  config = djanet_configs.get_config("synthetic")
  config.model.update(width=8, mamba_d_state=4)
  config.optim.backbone_lr_scale = 0.1      # the reference's (the demo's is 1)
  config.loss.update(loss)
  return config


def batch(seed=0):
  rng = np.random.default_rng(seed)
  images = lambda: rng.normal(size=(4, 96, 48, 3)).astype(np.float32)
  return {"visible": images(), "visible_augmented": images(), "infrared": images(),
          "infrared_augmented": images(),
          "visible_labels": np.array([0, 0, 1, 1], np.int32),
          "infrared_labels": np.array([2, 3, 2, 3], np.int32)}


@pytest.fixture(scope="module")
def state():
  return djanet.DJANetMethod(tiny_config()).create_state(INFO)


def test_the_loss_is_ce_plus_hard_triplet_over_four_views(state):
  inputs = batch()
  model = state.net.model(training=True)
  # Jitted (a third of the op-by-op time); each call on a clone, as BatchNorm updates state.
  loss = lambda loss_config: nnx.jit(lambda model, inputs: djanet.loss_fn(model, inputs,
                                                                          loss_config))
  total, metrics = loss(tiny_config().loss)(nnx.clone(model), inputs)
  outputs = nnx.jit(lambda model, views: model(**views))(
      nnx.clone(model), {view: inputs[view] for view in djanet.VIEWS})
  # Labels [y_v | y_v | y_i | y_i] (the infrared labels differ from the visible ones).
  labels = np.array([0, 0, 1, 1] * 2 + [2, 3, 2, 3] * 2)
  np.testing.assert_allclose(metrics["identity_loss"],
                             losses.cross_entropy(outputs.logits, labels), rtol=1e-5)
  triplet = losses.hard_mining_triplet(outputs.pooled, labels, margin=0.7)
  np.testing.assert_allclose(metrics["triplet_loss"], triplet, rtol=1e-5)
  # Margin 0.7, not AGW's 0.3, on the pre-BN features of all 16 views.
  assert abs(float(triplet) - float(losses.hard_mining_triplet(outputs.pooled, labels,
                                                               margin=0.3))) > 0.1
  assert float(metrics["complementary_loss"]) == 0.0
  np.testing.assert_allclose(total, metrics["identity_loss"] + metrics["triplet_loss"],
                             rtol=1e-6)
  assert set(metrics) == {"loss", "identity_loss", "triplet_loss", "complementary_loss",
                          "accuracy"}
  weighted, _ = loss(tiny_config(identity_weight=0.5, triplet_weight=2.0).loss)(
      nnx.clone(model), inputs)
  np.testing.assert_allclose(weighted, 0.5 * metrics["identity_loss"]
                             + 2.0 * metrics["triplet_loss"], rtol=1e-5)


def test_weight_decay_reaches_a_log_and_d_and_the_groups_take_their_rates(state):
  config, net = tiny_config(), state.net
  zeros = jax.tree.map(jnp.zeros_like, net.params)
  updates, _ = net.tx.update(zeros, net.opt_state, net.params)
  # Epoch 0: 0.1 x the rate. First Nesterov step with a zero gradient: the decayed gradient
  # d = 5e-4 · p fills the momentum buffer, the step is −lr · (d + 0.9 · d).
  head_lr = 1.9 * 0.1 * config.optim.base_lr
  backbone_lr = 0.1 * head_lr
  mamba = net.params["fusions"][1]["mamba"]["mamba"]
  mamba_updates = updates["fusions"][1]["mamba"]["mamba"]
  for name in ("A_log", "D"):
    np.testing.assert_allclose(mamba_updates[name][...], -backbone_lr * 5e-4 * mamba[name][...],
                               rtol=1e-5)
  np.testing.assert_allclose(updates["bottleneck"]["scale"][...],
                             -head_lr * 5e-4 * net.params["bottleneck"]["scale"][...], rtol=1e-5)


def test_the_rate_table_is_the_reference_s():
  config = djanet_configs.get_config("sysu").optim
  multiplier = {epoch: float(optim.epoch_learning_rate(
      epoch, base_lr=1.0, warmup_epochs=config.warmup_epochs, milestones=config.milestones,
      decay=config.decay, warmup_style=config.warmup_style,
      warmup_factor=config.warmup_factor)) for epoch in range(150)}
  expected = {0: 0.1, 1: 0.19, 9: 0.91, 10: 1.0, 24: 1.0, 25: 0.1, 49: 0.1, 50: 0.01,
              75: 1e-3, 100: 1e-4, 125: 1e-5, 149: 1e-5}
  for epoch, value in expected.items():
    assert multiplier[epoch] == pytest.approx(value, rel=1e-5), epoch
  # Both groups follow it: the head at base_lr 0.1, the rest at 0.1 x that.
  assert (config.base_lr, config.backbone_lr_scale) == (0.1, 0.1)
  schedule = optim.step_schedule(config, steps_per_epoch=3)
  assert float(schedule(9 * 3)) == pytest.approx(0.091, rel=1e-5)
  assert float(schedule(9 * 3 - 1)) == pytest.approx(0.082, rel=1e-5)
  with pytest.raises(ValueError, match="warmup_style='cosine'"):
    optim.epoch_learning_rate(0, base_lr=1.0, warmup_epochs=1, milestones=(), decay=0.1,
                              warmup_style="cosine")


def test_the_config_is_the_reference_s():
  config = djanet_configs.get_config("sysu")
  assert methods.resolve(config).__class__ is djanet.DJANetMethod
  assert (config.data.root, config.data.tfds_dir) == ("data/SYSU-MM01_ir2vis", "data/tfds_ir2vis")
  assert (config.data.ids_per_batch, config.data.images_per_id) == (24, 4)
  assert (config.data.image_height, config.data.image_width, config.data.pad) == (384, 192, 10)
  assert (config.data.sampler, config.data.augmentation) == ("djanet", "djanet")
  assert config.model.non_local_inner == "half" and config.loss.triplet_margin == 0.7
  assert config.train.num_epochs == 150 and config.eval.every_epochs == 1
  assert djanet_configs.get_config("regdb").eval.regdb_directions[0] == "thermal_to_visible"
  llcm = djanet_configs.get_config("llcm")
  assert llcm.eval.llcm_directions == ("ir_to_vis", "vis_to_ir")
  assert "pool_bn_weighted" in llcm.eval.features
  synthetic = djanet_configs.get_config("synthetic")
  assert synthetic.data.synthetic.ir_to_visible == "colour_transfer"
  assert synthetic.data.root != djanet_configs.get_config("sysu").data.root


def test_fused_llcm_features_give_the_reference_s_fused_scores():
  rng = np.random.default_rng(7)
  pooled, bn = (jnp.asarray(rng.normal(size=(5, 12)), jnp.float32) for _ in range(2))
  features = DJANetOutputs(pooled=pooled, bn=bn, logits=jnp.zeros((5, 3)),
                           layer4=jnp.zeros((5, 2, 1, 12))).features()
  pool, bn = np.asarray(features["pool"]), np.asarray(features["bn"])
  np.testing.assert_allclose(np.linalg.norm(pool, axis=-1), 1.0, rtol=1e-6)
  for name, expected in (("pool_bn_sum", (pool @ pool.T + bn @ bn.T) / 2),
                         ("pool_bn_weighted", 0.1 * pool @ pool.T + 0.9 * bn @ bn.T)):
    fused = np.asarray(features[name])
    np.testing.assert_allclose(fused @ fused.T, expected, rtol=1e-5, atol=1e-6)


def test_bad_input_is_named():
  config = tiny_config()
  config.data.augmentation = "caj"
  with pytest.raises(ValueError, match='augmentation=\'caj\'.*"djanet"'):
    djanet.DJANetMethod(config)
  inputs = batch()
  del inputs["infrared_augmented"]
  with pytest.raises(ValueError, match=r"lacks \['infrared_augmented'\].*augmentation"):
    djanet.loss_fn(None, inputs, tiny_config().loss)
