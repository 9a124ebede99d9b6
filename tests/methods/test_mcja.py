"""MCJA's method file (spec mcja.md §3–§8): the objective on the post-BNNeck embedding, the
update, the schedule and the config (8 devices: tests/training/test_parallel.py)."""


import jax
import numpy as np
import pytest

from configs import mcja as mcja_configs
from vireid_jax import losses
from vireid_jax import methods
from vireid_jax import pytree_paths
from vireid_jax.methods import mcja
from vireid_jax.methods.base import DataInfo
from vireid_jax.training import optim

INFO = DataInfo(num_classes=4, num_visible=8, num_infrared=8, steps_per_epoch=10)


def tiny_config():
  config = mcja_configs.get_config("synthetic")
  config.model.width = 8
  return config


def batch(seed=0):
  """Two images of each of 4 identities per modality, mixed as the "mcja" sampler mixes."""
  rng = np.random.default_rng(seed)
  return {"images": rng.normal(size=(16, 64, 32, 3)).astype(np.float32),
          "labels": np.repeat(np.arange(4), 4).astype(np.int32),
          "modalities": np.tile([0, 1], 8).astype(np.int32)}


def test_config_names_the_method_and_resolves():
  method = methods.resolve(mcja_configs.get_config("sysu"))
  assert isinstance(method, mcja.MCJAMethod)


def test_both_losses_see_the_post_bnneck_embedding():
  config = tiny_config()
  method = mcja.MCJAMethod(config)
  state = method.create_state(INFO)
  model = state.net.model(training=True)
  inputs = batch()
  total, metrics = mcja.loss_fn(model, inputs, config.loss)
  outputs = state.net.model(training=True)(inputs["images"])
  identity = losses.cross_entropy(outputs.logits, inputs["labels"])
  retrieval = losses.cross_modality_retrieval(outputs.bn, inputs["labels"],
                                              inputs["modalities"])
  np.testing.assert_allclose(metrics["identity_loss"], identity, rtol=1e-6)
  np.testing.assert_allclose(metrics["retrieval_loss"], retrieval, rtol=1e-6)
  np.testing.assert_allclose(total, identity + retrieval, rtol=1e-6)
  # Not the pre-BN GeM vector.
  on_pooled = losses.cross_modality_retrieval(outputs.pooled, inputs["labels"],
                                              inputs["modalities"])
  assert abs(float(on_pooled) - float(retrieval)) > 1e-3
  assert set(metrics) == {"loss", "identity_loss", "retrieval_loss", "accuracy"}


def test_one_step_updates_every_parameter_and_counts_once():
  method = mcja.MCJAMethod(tiny_config())
  state = method.create_state(INFO)
  new_state, metrics = jax.jit(method.train_step)(state, batch())
  assert int(new_state.step) == 1 and np.isfinite(float(metrics["loss"]))
  before = jax.tree_util.tree_flatten_with_path(state.net.params)[0]
  after = jax.tree.leaves(new_state.net.params)
  unchanged = [pytree_paths.path_string(path) for (path, old), new in zip(before, after)
               if np.array_equal(np.asarray(old), np.asarray(new))]
  # Adam moves every parameter with a gradient, and the coupled decay every non-zero one. At
  # init the MDA's output BatchNorm has γ = 0, so nothing before it in the MDA has a
  # gradient; its gate BatchNorm's β is also 0, so only that β stays where it was.
  assert unchanged and all(path.endswith("characteristics_norm.bias") for path in unchanged), \
      unchanged


def test_bfloat16_compute_keeps_float32_parameters_statistics_and_losses():
  config = tiny_config()
  config.model.dtype = "bfloat16"
  method = mcja.MCJAMethod(config)
  state = method.create_state(INFO)
  new_state, metrics = jax.jit(method.train_step)(state, batch())
  assert {str(x.dtype) for x in jax.tree.leaves(new_state.net.params)} == {"float32"}
  assert {str(x.dtype) for x in jax.tree.leaves(new_state.net.batch_stats)} == {"float32"}
  assert all(value.dtype == np.float32 for value in metrics.values())
  # The same step in float32 gives nearly the same losses: only the convolutions changed.
  _, float32_metrics = jax.jit(mcja.MCJAMethod(tiny_config()).train_step)(
      mcja.MCJAMethod(tiny_config()).create_state(INFO), batch())
  np.testing.assert_allclose(metrics["retrieval_loss"], float32_metrics["retrieval_loss"],
                             rtol=2e-2)


def test_features_are_the_same_for_both_modality_strings_and_others_are_refused():
  method = mcja.MCJAMethod(tiny_config())
  state = method.create_state(INFO)
  images = batch()["images"][:3]
  visible = method.features(state, images, "visible")
  infrared = method.features(state, images, "infrared")
  for name in ("pool", "bn"):
    np.testing.assert_array_equal(visible[name], infrared[name])
    np.testing.assert_allclose(np.linalg.norm(visible[name], axis=1), 1.0, rtol=1e-5)
  with pytest.raises(ValueError, match="thermal"):
    method.features(state, images, "thermal")


def test_a_two_stream_sampler_is_refused_naming_the_key():
  config = tiny_config()
  config.data.sampler = "agw"
  with pytest.raises(ValueError, match="config.data.sampler"):
    mcja.MCJAMethod(config)


def test_an_unknown_dataset_names_the_four_choices():
  with pytest.raises(ValueError) as error:
    mcja_configs.get_config("sysu-mm01")
  assert all(name in str(error.value) for name in ("sysu", "regdb", "llcm", "synthetic"))


def test_reference_settings_per_dataset():
  sysu, regdb, llcm = (mcja_configs.get_config(name) for name in ("sysu", "regdb", "llcm"))
  assert (sysu.data.ids_per_batch, sysu.data.images_per_id) == (8, 16)
  assert (regdb.data.ids_per_batch, regdb.data.images_per_id) == (4, 32)
  assert (sysu.model.mda_m, regdb.model.mda_m, llcm.model.mda_m) == (2, 12, 2)
  assert sysu.eval.gallery_scheme == "official" and sysu.eval.rerank == "mser"
  assert sysu.seed == 8 and sysu.optim.name == "adam" and sysu.model.last_stride == 2
  assert (sysu.data.image_height, sysu.data.image_width) == (384, 192)


def test_learning_rate_is_the_reference_schedule():
  steps = 7
  sysu = optim.step_schedule(mcja_configs.get_config("sysu").optim, steps)
  for epoch, expected in ((0, 3.5e-4), (79, 3.5e-4), (80, 3.5e-5), (119, 3.5e-5),
                          (120, 3.5e-6), (139, 3.5e-6)):
    for count in (epoch * steps, epoch * steps + steps - 1):
      np.testing.assert_allclose(float(sysu(count)), expected, rtol=1e-6)
  regdb = optim.step_schedule(mcja_configs.get_config("regdb").optim, steps)
  for epoch in (0, 150, 299):
    np.testing.assert_allclose(float(regdb(epoch * steps)), 3.5e-4, rtol=1e-6)
