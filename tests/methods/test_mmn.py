"""MMN's method file (spec mmn.md §4, §6): the fixed DCL head, the update, the config
(8 devices: tests/training/test_parallel_mmn_djanet.py; the authors' checkpoint and one step of
their train.py: tests/models/test_mmn.py)."""

import jax
import numpy as np
import pytest

from configs import mmn as mmn_configs
from vireid_jax import methods
from vireid_jax.methods import mmn
from vireid_jax.methods.base import DataInfo

INFO = DataInfo(num_classes=4, num_visible=8, num_infrared=8, steps_per_epoch=10)


def tiny_config():
  config = mmn_configs.get_config("synthetic")
  config.model.width = 8
  return config


def batch(seed=0):
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(4), 2).astype(np.int32)
  return {"visible": rng.normal(size=(8, 64, 32, 3)).astype(np.float32),
          "infrared": rng.normal(size=(8, 64, 32, 3)).astype(np.float32),
          "visible_labels": labels, "infrared_labels": labels}


def test_a_step_trains_the_network_and_leaves_the_dcl_head_as_it_was():
  method = mmn.MMNMethod(tiny_config())
  state = method.create_state(INFO)
  new_state, metrics = jax.jit(method.train_step)(state, batch())
  assert int(new_state.step) == 1
  assert set(metrics) == {"loss", "identity_loss", "triplet_loss", "dcl_loss", "accuracy"}
  assert all(np.isfinite(float(value)) for value in metrics.values())
  assert float(metrics["dcl_loss"]) > 0
  # The head is not in the optimiser (no update, no weight decay) and comes from the seed.
  for before, after in zip(jax.tree.leaves(state.projection),
                           jax.tree.leaves(new_state.projection)):
    np.testing.assert_array_equal(before, after)
  assert "projection" not in str(jax.tree_util.tree_structure(state.net.opt_state))
  again = mmn.MMNMethod(tiny_config()).create_state(INFO)
  for first, second in zip(jax.tree.leaves(state.projection), jax.tree.leaves(again.projection)):
    np.testing.assert_array_equal(first, second)
  assert state.projection["linear1"]["kernel"].shape == (64, 256)   # width 8: D = 64
  # The network itself moved, the MMG included.
  assert not np.array_equal(new_state.net.params["decoder"]["kernel"][...],
                            state.net.params["decoder"]["kernel"][...])


def test_features_name_every_evaluation_feature():
  method = mmn.MMNMethod(tiny_config())
  state = method.create_state(INFO)
  features = method.features(state, batch()["visible"][:3], "visible")
  assert set(features) == {"pool", "bn", "pool_middle", "bn_middle", "bn_sum"}
  assert features["bn"].shape == (3, 4 * 64)
  np.testing.assert_allclose(np.linalg.norm(features["bn"], axis=1), 1.0, rtol=1e-5)
  with pytest.raises(ValueError, match="thermal"):
    method.features(state, batch()["visible"][:3], "thermal")


def test_reference_settings():
  config = mmn_configs.get_config("sysu")
  assert isinstance(methods.resolve(config), mmn.MMNMethod)
  assert (config.data.image_height, config.data.image_width, config.data.pad) == (384, 192, 10)
  assert (config.data.ids_per_batch, config.data.images_per_id) == (4, 4)
  assert config.data.random_erasing == "llcm" and config.data.augmentation == "agw"
  assert not config.model.non_local and config.model.pooling == "avg"
  assert (config.model.num_stripes, config.model.mmg_init) == (4, 0.333)
  assert (config.loss.triplet_margin, config.loss.dcl_weight, config.loss.dcl_dim,
          config.loss.dcl_groups) == (0.3, 0.2, 256, 2)
  assert config.train.num_epochs == 81 and not config.eval.flip
  assert tuple(config.eval.features) == ("pool", "bn", "bn_sum")
  assert config.model.pretrained.endswith("resnet50-19c8e357.pth")
  synthetic = mmn_configs.get_config("synthetic")
  assert (synthetic.data.image_height, synthetic.data.image_width) == (128, 64)
  with pytest.raises(ValueError, match="sysu, regdb, llcm, synthetic"):
    mmn_configs.get_config("cuhk")
