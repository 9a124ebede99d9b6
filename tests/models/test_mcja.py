"""MCJA's network (spec mcja.md §2–3) and the import of the authors' checkpoints.

The PyTorch side is the transcription in ``torch_mcja_reference.py``: random weights, every
BatchNorm randomised (each MDA's zero-init output BatchNorm included), saved as the reference's
engine saves it (a bare state dict) and imported with ``configs/mcja.py:sysu``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import mcja as mcja_configs
from vireid_jax import checkpoints, inference
from vireid_jax.models import MDA, MCJA, build_mcja
from vireid_jax.models.layers import BatchNorm

torch = pytest.importorskip("torch")
from tests.models import torch_mcja_reference as reference  # noqa: E402
from tests.models.torch_reference import relative_error  # noqa: E402



def _normalised(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def tiny_config():
  """configs/mcja.py:synthetic with a width-8 ResNet-18."""
  config = mcja_configs.get_config("synthetic")
  config.model.width = 8
  return config


def tiny_model_config(**overrides):
  model = tiny_config().model
  model.update(overrides)
  return model


# ---------------------------------------------------------------- the authors' checkpoint


@pytest.fixture(scope="module")
def authors_checkpoint(tmp_path_factory):
  """The reference MCJA (ResNet-50, M = 2, 395 classes) with random weights, saved bare."""
  torch.manual_seed(0)
  net = reference.randomize_batchnorms(reference.MCJA(395, mda_m=2), seed=1,
                                     bnneck="bn_neck").eval()
  path = tmp_path_factory.mktemp("mcja") / "model_best.pth"
  torch.save(net.state_dict(), path)
  return net, path


def test_authors_checkpoint_gives_the_reference_features_for_both_modality_strings(
    authors_checkpoint):
  net, path = authors_checkpoint
  model = checkpoints.load_pytorch(str(path), mcja_configs.get_config("sysu"))
  assert isinstance(model, MCJA) and model.num_classes == 395 and model.feature_dim == 2048
  images = np.random.default_rng(0).normal(size=(2, 384, 192, 3)).astype(np.float32)
  with torch.no_grad():
    pooled, bn = net(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
  by_modality = {modality: inference.extract_features(model, images, modality)
                 for modality in ("visible", "infrared")}
  for modality, features in by_modality.items():
    assert relative_error(features["pool"], _normalised(pooled.numpy())) <= 1e-4, modality
    assert relative_error(features["bn"], _normalised(bn.numpy())) <= 1e-4, modality
  for name in ("pool", "bn"):
    np.testing.assert_array_equal(by_modality["visible"][name], by_modality["infrared"][name])
  # The MDAs were active: zeroing their output BatchNorms changes the features.
  for inserted in model.stages.inserted:
    for adapter in inserted:
      adapter.output_norm.scale[...] = jnp.zeros_like(adapter.output_norm.scale[...])
      adapter.output_norm.bias[...] = jnp.zeros_like(adapter.output_norm.bias[...])
  without = inference.extract_features(model, images, "visible")["bn"]
  assert relative_error(without, _normalised(bn.numpy())) > 1e-2


def test_export_writes_back_every_key_of_the_authors_checkpoint(authors_checkpoint):
  net, path = authors_checkpoint
  model = checkpoints.load_pytorch(str(path), mcja_configs.get_config("sysu"))
  exported = checkpoints.to_pytorch_state_dict(model)
  theirs = net.state_dict()
  skipped = {key for key in theirs
             if key.startswith("backbone.fc.") or key.endswith("num_batches_tracked")}
  assert set(exported) == set(theirs) - skipped
  assert {key.split(".")[0] for key in exported} == {"backbone", "MDA_2", "MDA_3", "bn_neck",
                                                     "classifier"}
  for key, value in exported.items():
    np.testing.assert_array_equal(value, theirs[key].numpy(), err_msg=key)


# ------------------------------------------------------------------------ import errors


def _tiny_state_dict(**model_fields):
  """A reference-keyed state dict of a narrow MCJA (ours, exported)."""
  model = build_mcja(tiny_model_config(**model_fields), 6, rngs=nnx.Rngs(0))
  return checkpoints.to_pytorch_state_dict(model)


def test_another_mda_m_lists_each_mis_shaped_key_and_names_the_field():
  twelve_masks = _tiny_state_dict(mda_m=12)
  config = tiny_config()
  with pytest.raises(ValueError) as error:
    checkpoints.load_pytorch(twelve_masks, config)
  message = str(error.value)
  assert "config.model.mda_m" in message and "mis-shaped (12" in message
  # ResNet-18: MDAs after both blocks of stages 2 and 3, each with sc_conv and ca_conv.
  for stage, index in ((2, 0), (2, 1), (3, 0), (3, 1)):
    channels = 16 if stage == 2 else 32
    assert (f"MDA_{stage}.{index}.sc_conv.weight  file [12, {channels}, 1, 1], model "
            f"[2, {channels}, 1, 1]") in message
    assert (f"MDA_{stage}.{index}.ca_conv.weight  file [{channels}, 1, 12], model "
            f"[{channels}, 1, 2]") in message


def test_an_agw_checkpoint_is_refused_listing_missing_and_unexpected_keys():
  from configs import synthetic
  from vireid_jax.models import build_agw
  agw_model = synthetic.get_config().model
  agw_model.width = 8
  agw = checkpoints.to_pytorch_state_dict(build_agw(agw_model, 6, rngs=nnx.Rngs(0)))
  config = tiny_config()
  with pytest.raises(ValueError) as error:
    checkpoints.load_pytorch(agw, config)
  message = str(error.value)
  assert "missing (" in message and "backbone.conv1.weight" in message
  assert "unexpected (" in message and "visible_module.visible.conv1.weight" in message
  assert "config.model.mda_m" in message


def test_a_non_zero_bnneck_bias_and_the_unused_head_are_handled():
  state_dict = _tiny_state_dict()
  state_dict["backbone.fc.weight"] = np.ones((1000, 128), np.float32)   # skipped
  state_dict["backbone.bn1.num_batches_tracked"] = np.array(7)
  config = tiny_config()
  model = checkpoints.load_pytorch(state_dict, config)
  assert model.num_classes == 6
  state_dict["bn_neck.bias"] = np.full(128, 0.5, np.float32)
  with pytest.raises(ValueError, match="bn_neck.bias"):
    checkpoints.load_pytorch(state_dict, config)


# ------------------------------------------------------------------------- model quirks


def test_mdas_follow_the_last_blocks_and_are_clipped_for_shallow_resnets():
  resnet50 = nnx.eval_shape(lambda: build_mcja(
      tiny_model_config(depth=50), 4, rngs=nnx.Rngs(0)))
  assert resnet50.stages.insert_after == ((), (2, 3), (3, 4, 5), ())
  resnet18 = build_mcja(tiny_model_config(), 4, rngs=nnx.Rngs(0))
  assert resnet18.stages.insert_after == ((), (0, 1), (0, 1), ())
  adapters = [m for inserted in resnet18.stages.inserted for m in inserted]
  assert all(isinstance(m, MDA) for m in adapters) and len(adapters) == 4
  assert [m.channels for m in adapters] == [16, 16, 32, 32]
  assert len({id(m) for m in adapters}) == 4          # each position its own weights


def test_last_stride_two_gives_a_12_by_6_map_at_384_by_192():
  model = nnx.eval_shape(lambda: build_mcja(mcja_configs.get_config("sysu").model, 395,
                                            rngs=nnx.Rngs(0)))
  images = jax.ShapeDtypeStruct((2, 384, 192, 3), jnp.float32)
  final = nnx.eval_shape(lambda m, x: m.stages(m.stem(x)), model, images)
  assert final.shape == (2, 12, 6, 2048)


def test_head_is_a_bias_free_bnneck_and_a_default_initialised_classifier():
  model = build_mcja(tiny_model_config(), 50, rngs=nnx.Rngs(3))
  assert isinstance(model.bottleneck, BatchNorm) and model.bottleneck.bias is None
  np.testing.assert_array_equal(model.bottleneck.scale[...], 1.0)
  assert model.classifier.bias is None
  kernel = np.asarray(model.classifier.kernel[...])
  bound = 1 / np.sqrt(model.feature_dim)
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.95 * bound


def _without_adapters(model, images):
  """The model's forward with the MDAs left out: stem, blocks, GeM, BNNeck."""
  x = model.stem(images)
  for blocks in model.stages.layers:
    for block in blocks:
      x = block(x)
  return model.bottleneck(model.gem(x))


@pytest.mark.parametrize("training", [True, False])
def test_a_new_model_is_the_network_without_mdas_and_mda_ratio_changes_nothing(training):
  images = jnp.asarray(np.random.default_rng(0).normal(size=(4, 64, 32, 3)), jnp.float32)
  outputs = []
  for ratio in (2, 16):
    model = build_mcja(tiny_model_config(mda_ratio=ratio), 5, rngs=nnx.Rngs(0))
    model.train() if training else model.eval()
    outputs.append(model(images).bn)
    # A copy, so that training-mode statistics start from the same values.
    np.testing.assert_array_equal(outputs[-1], _without_adapters(nnx.clone(model), images))
  np.testing.assert_array_equal(outputs[0], outputs[1])
