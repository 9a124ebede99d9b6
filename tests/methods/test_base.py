"""The method contract: resolving `config.method`, the checks that name what is missing, `Net`
and `DataInfo`."""

import numpy as np
import optax
import pytest
from flax import nnx
import jax.numpy as jnp

from configs import default
from vireid_jax import methods
from vireid_jax.data.splits import SplitArrays
from vireid_jax.data.splits import Splits
from vireid_jax.methods import base
from vireid_jax.methods import agw


def config_for(method: str):
  config = default.get_config()
  config.method = method
  return config


class Complete(base.Method):

  def create_state(self, data_info):
    return {"step": base.initial_step()}

  def train_step(self, state, batch):
    return state, {}

  def features(self, state, images, modality):
    return {}


class WithoutStep(base.Method):

  def create_state(self, data_info):
    return {}

  def features(self, state, images, modality):
    return {}


METHOD = Complete


def test_a_package_method_resolves_by_name_built_with_the_config():
  config = config_for("agw")
  method = methods.resolve(config)
  assert isinstance(method, agw.AGWMethod) and method.config is config
  assert not method.uses_target and method.progress_metric == "loss"
  assert "agw" in methods.available() and "base" not in methods.available()


def test_a_user_method_resolves_by_module_path_or_class():
  assert type(methods.resolve(config_for(__name__))) is Complete
  with pytest.raises(base.MethodError, match=r"WithoutStep .* does not define train_step"):
    methods.resolve(config_for(f"{__name__}:WithoutStep"))


def test_unknown_methods_and_modules_are_named():
  with pytest.raises(ValueError, match=r"config.method='agvw'.*available: .*agw"):
    methods.resolve(config_for("agvw"))
  with pytest.raises(ValueError, match=r"no module 'my_project.nothing'"):
    methods.resolve(config_for("my_project.nothing"))
  with pytest.raises(ValueError, match=r"has no 'Missing'"):
    methods.resolve(config_for(f"{__name__}:Missing"))
  with pytest.raises(base.MethodError, match="not a subclass"):
    methods.resolve(config_for(f"{__name__}:config_for"))


def test_a_misspelt_hook_is_an_error_at_class_definition():
  with pytest.raises(base.MethodError, match=r"begin_epcoh looks like a misspelling .*'begin_epoch'"):
    class Misspelt(Complete):  # pylint: disable=unused-variable
      def begin_epcoh(self, state, epoch, context):
        return state
  # Helper names that merely resemble the contract are fine.
  class WithHelpers(Complete):  # pylint: disable=unused-variable
    def feature_maps(self):
      return None


def test_default_hooks_keep_the_state_and_ask_for_no_inputs():
  method = Complete(config_for("x"))
  state = {"step": 3}
  assert method.begin_epoch(state, 0, None) is state
  assert method.epoch_inputs(state) == {}


def test_net_update_touches_parameters_and_optimiser_but_has_no_step():
  model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
  net = base.Net.create(model, optax.sgd(0.5))
  assert not hasattr(net, "step")
  grads = nnx.State({"kernel": nnx.Param(jnp.ones((2, 1))), "bias": nnx.Param(jnp.ones((1,)))})
  updated = net.apply_gradients(grads)
  np.testing.assert_allclose(updated.params["kernel"][...], net.params["kernel"][...] - 0.5)
  np.testing.assert_allclose(updated.model(training=False).bias[...], [-0.5])
  # No BatchNorm: no statistics, and none invented by an update.
  assert not updated.batch_stats


def test_data_info_counts_each_modality_and_the_target():
  def split(modalities, labels):
    n = len(modalities)
    return SplitArrays(images=np.zeros((n, 2, 2, 3), np.uint8), labels=np.asarray(labels),
                       person_ids=np.arange(n), cameras=np.ones(n, np.int32),
                       modalities=np.asarray(modalities), relative_paths=np.array(["a"] * n))
  train = split([0, 0, 1, 1, 1], [0, 1, 0, 1, 4])
  target = split([0, 1, 1], [2, 2, 2]).unlabelled()
  np.testing.assert_array_equal(target.labels, [-1, -1, -1])
  info = base.DataInfo.from_splits(Splits(train, train, target, "sysu"), steps_per_epoch=7)
  assert (info.num_classes, info.num_visible, info.num_infrared) == (5, 2, 3)
  assert (info.num_target_visible, info.num_target_infrared, info.num_target) == (1, 2, 3)
  assert info.steps_per_epoch == 7
  assert base.DataInfo.from_splits(Splits(train, train, None, "sysu"), 1).num_target == 0
