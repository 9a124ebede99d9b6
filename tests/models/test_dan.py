"""DAN's networks (spec dan.md §2, §4.1; issue 17 items 2, 3, 9): the release's checkpoint
through `checkpoints.load_pytorch`, its key map, and the domain discriminator, against the
PyTorch transcription in tests/models/torch_dan_reference.py."""

import numpy as np
import pytest
from flax import nnx
import jax
import jax.numpy as jnp

torch = pytest.importorskip("torch")

from configs import dan as dan_configs  # noqa: E402  (after the skip)
from configs import default  # noqa: E402
from tests.models import torch_dan_reference as dan_reference  # noqa: E402
from tests.models import torch_reference as reference  # noqa: E402
from tests.models.torch_reference import relative_error  # noqa: E402
from vireid_jax import checkpoints, inference  # noqa: E402
from vireid_jax.models.agw import AGW  # noqa: E402
from vireid_jax.models.dan import DomainDiscriminator, build_dan_network  # noqa: E402


def save_like_dan_train_py(net, path):
  """DAN's train.py: `torch.save({'net': state_dict, 'cmc', 'mAP', 'mINP', 'epoch'})`."""
  torch.save({"net": net.state_dict(), "cmc": np.linspace(0.2, 1.0, 20),
              "mAP": np.float64(0.3), "mINP": np.float64(0.2), "epoch": 15}, path)


def images(seed, batch, height, width):
  array = np.random.default_rng(seed).normal(size=(batch, height, width, 3)).astype(np.float32)
  return array, torch.from_numpy(array.transpose(0, 3, 1, 2).copy())


def narrow_config():
  config = dan_configs.get_config("sysu")
  config.model.width = 4
  return config


def test_release_checkpoint_gives_the_reference_features_of_both_modalities(tmp_path,
                                                                             optimized_xla):
  """Acceptance (a): ResNet-50 at 288 x 144, every BatchNorm randomised (BNNeck β = 0)."""
  torch.manual_seed(0)
  net = reference.randomize_batchnorms(dan_reference.DanEmbedNet(206), seed=3).eval()
  path = tmp_path / "regdb_dan_best.t"
  save_like_dan_train_py(net, path)
  model = checkpoints.load_pytorch(str(path), dan_configs.get_config("sysu"))
  assert isinstance(model, AGW) and model.num_classes == 206 and model.feature_dim == 2048
  ours, theirs = images(0, 2, 288, 144)
  for modal, modality in ((1, "visible"), (2, "infrared")):
    features = inference.extract_features(model, ours, modality)
    with torch.no_grad():
      _, pool = net(theirs, theirs, modal)
      bn = net.bn_feature(theirs, theirs, modal)
    assert relative_error(features["pool"], pool.numpy()) <= 1e-4, modality
    assert relative_error(features["bn"], bn.numpy()) <= 1e-4, modality
  # The stems differ, so the comparison told the modalities apart.
  assert relative_error(features["pool"],
                        net(theirs, theirs, 1)[1].detach().numpy()) > 1e-2


def test_the_key_map_reads_the_used_modules_and_skips_the_gvb_leftovers(tmp_path):
  torch.manual_seed(1)
  net = reference.randomize_batchnorms(dan_reference.DanEmbedNet(5, width=4), seed=4)
  path = tmp_path / "dan.t"
  save_like_dan_train_py(net, path)
  model = checkpoints.load_pytorch(str(path), narrow_config())
  exported = checkpoints.to_pytorch_state_dict(model)
  theirs = net.state_dict()
  skipped = {key for key in theirs
             if key.startswith(("visible_module.visible.layer", "thermal_module.thermal.layer",
                                "reduction.", "bridge.", "bottleneck2.", "classifier2."))
             or key.endswith("num_batches_tracked")}
  assert set(exported) == set(theirs) - skipped
  assert any(key.startswith("share_resnet.backone.3.") for key in exported)
  for key, value in exported.items():
    np.testing.assert_array_equal(value, theirs[key].numpy(), err_msg=key)
  # No β in the BNNeck: nothing to train or decay.
  assert "bias" not in nnx.state(model.bottleneck, nnx.Param)


def test_an_agw_checkpoint_is_refused_listing_the_keys(tmp_path):
  net = reference.EmbedNet(5, width=4, non_local=False, with_fc=False)
  path = tmp_path / "agw.t"
  save_like_dan_train_py(net, path)
  with pytest.raises(ValueError) as error:
    checkpoints.load_pytorch(str(path), narrow_config())
  message = str(error.value)
  assert "share_resnet.backone.0.0.conv1.weight" in message      # missing
  assert "base_resnet.base.layer1.0.conv1.weight" in message     # unexpected


def test_the_network_must_be_dans():
  config = narrow_config()
  config.model.pooling = "gem"
  with pytest.raises(ValueError, match=r"config\.model\.pooling='gem'"):
    build_dan_network(config.model, 5, rngs=nnx.Rngs(0))
  config = default.get_config()
  config.model.pooling = "max"
  with pytest.raises(ValueError, match=r"config\.model\.non_local=True"):
    build_dan_network(config.model, 5, rngs=nnx.Rngs(0))


def test_the_max_pooled_training_forward_equals_the_reference_with_per_call_statistics():
  """Training mode, one call per domain as DAN's step makes them: pooled features and the
  BNNeck equal the reference's, and the running statistics update once per call."""
  torch.manual_seed(2)
  net = reference.randomize_batchnorms(dan_reference.DanEmbedNet(5, width=4), seed=5).train()
  model = checkpoints.load_pytorch(net.state_dict(), narrow_config())
  model.train()
  for seed in (0, 1):   # source, then target
    visible, torch_visible = images(2 * seed, 3, 64, 32)
    infrared, torch_infrared = images(2 * seed + 1, 3, 64, 32)
    outputs = model(visible=visible, infrared=infrared)
    bn, _, _ = net(torch_visible, torch_infrared)
    pooled = net.pooled  # noqa: F841  (the call above updated the statistics once)
    assert relative_error(outputs.bn, bn.detach().numpy()) <= 1e-3
  theirs = net.state_dict()
  ours = checkpoints.to_pytorch_state_dict(model)
  for key in ("bottleneck.running_mean", "share_resnet.backone.0.0.bn1.running_var",
              "visible_module.visible.bn1.running_mean"):
    assert relative_error(ours[key][None], theirs[key].numpy()[None]) <= 1e-4, key


def test_the_discriminator_is_advers_net():
  torch.manual_seed(3)
  theirs = dan_reference.AdversNet(64, 32).eval()
  ours = DomainDiscriminator(64, hidden=32, dropout=0.5, rngs=nnx.Rngs(0))
  for mine, layer in ((ours.hidden1, theirs.ad_layer1), (ours.hidden2, theirs.ad_layer2),
                      (ours.score, theirs.ad_layer3)):
    mine.kernel.set_value(jnp.asarray(layer.weight.detach().numpy().T))
    mine.bias.set_value(jnp.asarray(layer.bias.detach().numpy()))
  rows = np.random.default_rng(0).normal(size=(6, 64)).astype(np.float32)
  expected = theirs(torch.from_numpy(rows)).detach().numpy()[:, 0]
  np.testing.assert_allclose(ours(jnp.asarray(rows)), expected, rtol=1e-5, atol=1e-6)
  # Training: inverted dropout on both hidden layers, from the key alone.
  key = jax.random.key(0)
  dropped = ours(jnp.asarray(rows), dropout_key=key)
  np.testing.assert_array_equal(dropped, ours(jnp.asarray(rows), dropout_key=key))
  assert not np.allclose(dropped, expected, atol=1e-3)


def test_the_discriminator_starts_as_init_weights_does():
  discriminator = DomainDiscriminator(2048, rngs=nnx.Rngs(0))
  for layer, fan_in in ((discriminator.hidden1, 2048), (discriminator.hidden2, 1024),
                        (discriminator.score, 1024)):
    assert not np.any(np.asarray(layer.bias[...]))
    kernel = np.asarray(layer.kernel[...])
    # kaiming_normal_: N(0, 2 / fan_in), not truncated.
    np.testing.assert_allclose(kernel.std(), np.sqrt(2 / fan_in), rtol=0.05 if kernel.size > 1e4
                               else 0.1)
    if kernel.size > 1e5:
      assert np.abs(kernel).max() > 3.5 * np.sqrt(2 / fan_in)
  assert discriminator.hidden1.kernel.shape == (2048, 1024)
