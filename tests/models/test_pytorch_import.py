"""PyTorch weights into our models: same weights, same features (issue 4).

The PyTorch side is built here from the spec (``torch_reference.py``), given random weights
and random BatchNorm statistics, saved the way the references save it, imported, and both
sides are run on the same images. Skipped where torch is not installed (CI installs the
CPU wheel through the ``test`` extra).
"""

import copy
import zipfile

import jax
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip('torch')

from configs import default  # noqa: E402  (after the skip)
from tests.models import torch_reference as reference  # noqa: E402
from tests.models.torch_reference import relative_error  # noqa: E402
from vireid_jax import checkpoints, inference  # noqa: E402
from vireid_jax.models import AGW  # noqa: E402



# One compiled forward per model and mode: compiling dominates the run time.
forward = nnx.jit(lambda model, *images: model(*images))


def _images(seed, batch=3, height=64, width=32):
  """NHWC float32 images for us and the same images NCHW for PyTorch."""
  images = np.random.default_rng(seed).normal(size=(batch, height, width, 3)).astype(np.float32)
  return images, torch.from_numpy(images.transpose(0, 3, 1, 2).copy())



def _agw_config(**model_fields):
  config = default.get_config()
  for name, value in model_fields.items():
    setattr(config.model, name, value)
  return config


def _save_like_agw_train_py(net, path):
  """``train.py``'s checkpoint: the state dict under 'net', NumPy metrics beside it."""
  torch.save(
      {
          'net': net.state_dict(),
          'cmc': np.linspace(0.5, 1.0, 20),
          'mAP': np.float64(0.47),
          'mINP': np.float64(0.35),
          'epoch': 40,
      },
      path,
  )


def _assert_running_statistics_equal(model, net):
  ours = checkpoints.to_pytorch_state_dict(model)
  theirs = net.state_dict()
  keys = [key for key in theirs if key.endswith(('running_mean', 'running_var'))]
  used = [key for key in keys if key in ours]
  # Every BatchNorm of the model, and only the reference's unused copies left out.
  assert len(used) == len([key for key in ours if key.endswith(('running_mean', 'running_var'))])
  for key in used:
    assert relative_error(ours[key], theirs[key].numpy()) <= 1e-4, key


# ------------------------------------------------------------------------- full-width AGW


@pytest.fixture(scope='module')
def full_agw(tmp_path_factory):
  """The reference AGW (ResNet-50, width 64, non-local, GeM; 395 classes), random weights,
  saved as train.py saves it and imported with the default config."""
  torch.manual_seed(0)
  net = reference.randomize_batchnorms(reference.EmbedNet(395), seed=1).eval()
  path = tmp_path_factory.mktemp('agw') / 'sysu_agw_p4_n8_lr_0.1_seed_0_best.t'
  _save_like_agw_train_py(net, path)
  return net, checkpoints.load_pytorch(path, default.get_config()), path


def test_full_agw_imports_every_used_weight_exactly(full_agw):
  net, model, _ = full_agw
  assert model.num_classes == 395 and model.feature_dim == 2048
  theirs = net.state_dict()
  exported = checkpoints.to_pytorch_state_dict(model)
  # The model's keys are the reference's, less exactly the unused modules of its three
  # whole ResNets and the BatchNorm counters.
  unused = {
      key for key in theirs
      if key.startswith(('visible_module.visible.layer', 'thermal_module.thermal.layer',
                         'visible_module.visible.fc.', 'thermal_module.thermal.fc.',
                         'base_resnet.base.conv1.', 'base_resnet.base.bn1.',
                         'base_resnet.base.fc.'))
      or key.endswith('num_batches_tracked')
  }
  assert set(exported) == set(theirs) - unused
  for key, value in exported.items():
    np.testing.assert_array_equal(value, theirs[key].numpy(), err_msg=key)


def test_full_agw_eval_features_match_pytorch_for_both_modalities(full_agw):
  net, model, _ = full_agw
  images, torch_images = _images(0)
  for modal, modality in ((1, 'visible'), (2, 'infrared')):
    with torch.no_grad():
      pool, bn = net(torch_images, torch_images, modal)
    features = inference.extract_features(model, images, modality)
    assert relative_error(features['pool'], pool.numpy()) <= 1e-4, modality
    assert relative_error(features['bn'], bn.numpy()) <= 1e-4, modality
  # The two stems differ, so the comparison above did tell the modalities apart.
  assert relative_error(inference.extract_features(model, images, 'visible')['bn'],
                         bn.numpy()) > 1e-2


def test_full_agw_training_forward_and_running_statistics_match_pytorch(full_agw):
  net, model, _ = full_agw
  net, model = copy.deepcopy(net).train(), nnx.clone(model)
  model.train()
  visible, torch_visible = _images(1, batch=2)
  infrared, torch_infrared = _images(2, batch=2)
  outputs = forward(model, visible, infrared)
  pooled, logits = outputs.pooled, outputs.logits
  torch_pooled, torch_logits = net(torch_visible, torch_infrared)
  assert relative_error(pooled, torch_pooled.detach().numpy()) <= 1e-4
  # The BNNeck normalises over only these 4 samples, which amplifies the float32 rounding
  # differences of `pooled` about fourfold (both sides' logits equal a float64 recomputation
  # from their own `pooled` to 1e-6): a looser bound here.
  assert relative_error(logits, torch_logits.detach().numpy()) <= 1e-3
  # PyTorch: momentum 0.1 and the unbiased batch variance, in all 64 BatchNorms used.
  _assert_running_statistics_equal(model, net)


def test_caj_config_loads_the_authors_checkpoint_and_its_loss_equals_train_ext(
    full_agw, optimized_xla):
  """CAJ's train_ext.py saves AGW's checkpoint; its step's losses on an [A | B | IR] batch."""
  from configs import caj as caj_configs
  from tests.losses import torch_caj_reference
  from vireid_jax.methods import caj
  net, _, path = full_agw
  model = checkpoints.load_pytorch(path, caj_configs.get_config('sysu'))
  assert isinstance(model, AGW)
  images, torch_images = _images(5, batch=2, height=288, width=144)
  for modal, modality in ((1, 'visible'), (2, 'infrared')):
    with torch.no_grad():
      pool, bn = net(torch_images, torch_images, modal)
    features = inference.extract_features(model, images, modality)
    assert relative_error(features['pool'], pool.numpy()) <= 1e-4, modality
    assert relative_error(features['bn'], bn.numpy()) <= 1e-4, modality

  # One step of train_ext.py in training mode: x1 = [A; B] through the visible stem, x2 = IR.
  net = copy.deepcopy(net).train()
  model.train()
  # The training-mode BatchNorms (the BNNeck's above all) amplify float32 rounding by about
  # |x| / |x − batch mean|: eight slots of images that differ in brightness and contrast.
  def distinct_images(seed):
    rng = np.random.default_rng(seed)
    images = (rng.normal(size=(8, 64, 32, 3)) * rng.uniform(0.3, 2.0, size=(8, 1, 1, 1))
              + rng.uniform(-1.5, 1.5, size=(8, 1, 1, 3))).astype(np.float32)
    return images, torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
  view_a, torch_a = distinct_images(6)
  view_b, torch_b = distinct_images(7)
  infrared, torch_infrared = distinct_images(8)
  label_vis, label_ir = np.repeat(np.arange(4), 2), np.repeat([1, 0, 3, 2], 2)
  feat, out0 = net(torch.cat((torch_a, torch_b), 0), torch_infrared)
  labels = torch.from_numpy(np.concatenate([label_vis, label_vis, label_ir]))
  loss_id = torch.nn.CrossEntropyLoss()(out0, labels)
  n = out0.shape[0] // 3
  loss_kl = torch_caj_reference.KLDivLoss()(out0.narrow(0, 0, n), out0.narrow(0, 2 * n, n))
  loss_tri = torch_caj_reference.TripletLossADP(1, 1, 1)(feat, labels)
  config = caj_configs.get_config('sysu')
  config.loss.kl_weight = 0.5     # the term must be exact when it is used
  batch = {'visible': view_a, 'visible_augmented': view_b, 'infrared': infrared,
           'visible_labels': label_vis.astype(np.int32),
           'infrared_labels': label_ir.astype(np.int32)}
  # Jitted: compiling the step's forward once costs a fraction of running it op by op.
  total, metrics = nnx.jit(lambda model, batch: caj.loss_fn(model, batch, config.loss))(
      model, batch)
  expected = {'identity_loss': loss_id, 'triplet_loss': loss_tri, 'kl_loss': loss_kl,
              'loss': loss_id + loss_tri + 0.5 * loss_kl}
  # The logits of the two networks agree to ~1.6e-4 after 50 training-mode BatchNorms in
  # float32; the KL of these near-uniform softened distributions is quadratic in the logit
  # differences and doubles that (it equals the transcription to 1e-5 on given logits:
  # tests/losses/test_caj_losses.py).
  tolerances = {'kl_loss': 5e-4}
  for name, value in expected.items():
    np.testing.assert_allclose(float(metrics[name]), value.item(),
                               rtol=tolerances.get(name, 1e-4), err_msg=name)
  np.testing.assert_allclose(float(total), expected['loss'].item(), rtol=1e-4)


# ------------------------------------------------------------------- full-width ResNet-50


def test_full_resnet50_matches_torchvision_in_eval_and_training(tmp_path):
  torch.manual_seed(0)
  net = reference.randomize_batchnorms(reference.TorchvisionResNet(50), seed=2).eval()
  path = tmp_path / 'resnet50.pth'
  torch.save(net.state_dict(), path)  # torchvision's files are bare state dicts
  model = checkpoints.load_torchvision_resnet(path)
  images, torch_images = _images(3, height=64, width=64)

  model.eval()
  with torch.no_grad():
    expected = net(torch_images).numpy()
  assert relative_error(forward(model, images), expected) <= 1e-4

  model.train()
  net.train()
  logits = forward(model, images)
  assert relative_error(logits, net(torch_images).detach().numpy()) <= 1e-4
  _assert_running_statistics_equal(model, net)


@pytest.mark.parametrize('depth', [18, 34, 50, 101, 152])
def test_every_depth_round_trips_a_torchvision_state_dict(depth):
  torch.manual_seed(depth)
  net = reference.randomize_batchnorms(reference.TorchvisionResNet(depth, 10, width=4), depth)
  net.eval()
  state_dict = net.state_dict()
  model = checkpoints.load_torchvision_resnet(state_dict)

  exported = checkpoints.to_pytorch_state_dict(model)
  assert set(exported) == {key for key in state_dict if not key.endswith('num_batches_tracked')}
  for key, value in exported.items():
    np.testing.assert_array_equal(value, state_dict[key].numpy(), err_msg=key)
  # PyTorch accepts the export as it is (it fills in the BatchNorm counters itself).
  copy.deepcopy(net).load_state_dict({k: torch.from_numpy(v) for k, v in exported.items()},
                                     strict=False)

  images, torch_images = _images(depth, batch=2, height=32, width=32)
  model.eval()
  with torch.no_grad():
    expected = net(torch_images).numpy()
  assert relative_error(forward(model, images), expected) <= 1e-4


# --------------------------------------------------------------- ImageNet initialisation


def test_init_backbone_from_torchvision_fills_both_stems_and_the_shared_stages(tmp_path):
  torch.manual_seed(0)
  imagenet = reference.randomize_batchnorms(
      reference.TorchvisionResNet(18, 1000, width=8, last_stride=1), seed=3
  ).eval()
  path = tmp_path / 'resnet18-imagenet.pth'
  torch.save(imagenet.state_dict(), path)

  model = AGW(5, depth=18, width=8, rngs=nnx.Rngs(0))
  before = nnx.clone(model)
  assert checkpoints.init_backbone_from_torchvision(model, str(path)) is model

  expected_kernel = imagenet.conv1.weight.detach().numpy().transpose(2, 3, 1, 0)
  for stem in (model.visible_stem, model.infrared_stem):
    np.testing.assert_array_equal(stem.conv1.kernel[...], expected_kernel)
    np.testing.assert_array_equal(stem.bn1.var[...], imagenet.bn1.running_var.numpy())
  # Non-local blocks and the head keep their initialisation.
  for module in ('classifier', 'bottleneck'):
    jax.tree.map(np.testing.assert_array_equal, nnx.state(getattr(before, module)),
                 nnx.state(getattr(model, module)))
  jax.tree.map(np.testing.assert_array_equal, nnx.state(before.stages.inserted),
               nnx.state(model.stages.inserted))

  # Stem and stages compute torchvision's layer4 map (the non-local blocks are the
  # identity at init), for each stem.
  images, torch_images = _images(4, batch=2, height=64, width=32)
  with torch.no_grad():
    expected = imagenet.stages(imagenet.stem(torch_images)).numpy().transpose(0, 2, 3, 1)
  view = nnx.view(model, use_running_average=True)
  for stem in ('visible_stem', 'infrared_stem'):
    feature_map = nnx.jit(lambda m, x, s=stem: m.stages(getattr(m, s)(x)))(view, images)
    assert relative_error(np.reshape(feature_map, (2, -1)), expected.reshape(2, -1)) <= 1e-5


def test_config_pretrained_initialises_the_train_state_backbone(tmp_path):
  from configs import synthetic
  from vireid_jax.methods import agw as agw_method
  from vireid_jax.methods.base import DataInfo
  info = DataInfo(num_classes=5, num_visible=10, num_infrared=10, steps_per_epoch=10)

  imagenet = reference.TorchvisionResNet(18, 1000, width=8, last_stride=1).eval()
  path = tmp_path / 'resnet18-imagenet.pth'
  torch.save(imagenet.state_dict(), path)
  config = synthetic.get_config()
  config.model.width = 8
  config.model.pretrained = str(path)
  state = agw_method.AGWMethod(config).create_state(info)
  expected_kernel = imagenet.layer4[1].conv2.weight.detach().numpy().transpose(2, 3, 1, 0)
  np.testing.assert_array_equal(
      state.net.params['stages']['layers'][3][1]['conv2']['kernel'][...], expected_kernel)
  config.model.pretrained = 'none'
  random_state = agw_method.AGWMethod(config).create_state(info)
  assert not np.array_equal(
      random_state.net.params['stages']['layers'][3][1]['conv2']['kernel'][...], expected_kernel)


def test_init_backbone_rejects_a_resnet_of_another_width_listing_shapes():
  imagenet = reference.TorchvisionResNet(18, 1000, width=4)
  model = AGW(5, depth=18, width=8, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError) as error:
    checkpoints.init_backbone_from_torchvision(model, imagenet.state_dict())
  message = str(error.value)
  assert 'conv1.weight  file [4, 3, 7, 7], model [8, 3, 7, 7]' in message
  assert 'layer4.1.bn2.running_var  file [32], model [64]' in message


# --------------------------------------------------------------------- skipped and bad keys


@pytest.fixture(scope='module')
def narrow_agw_state_dict():
  """Reference AGW at ResNet-50 depth and width 4: the real key set, cheap to import."""
  torch.manual_seed(0)
  net = reference.randomize_batchnorms(reference.EmbedNet(7, width=4), seed=4)
  return {key: value.numpy() for key, value in net.state_dict().items()}


NARROW_CONFIG = _agw_config(width=4)


def test_only_the_unused_whole_resnet_modules_are_skipped(narrow_agw_state_dict):
  state_dict = dict(narrow_agw_state_dict)
  model = checkpoints.load_pytorch(state_dict, NARROW_CONFIG)
  # The base's layer1 is used, the visible copy's is not.
  key = 'layer1.0.conv1.weight'
  np.testing.assert_array_equal(
      model.stages.layers[0][0].conv1.kernel[...],
      state_dict['base_resnet.base.' + key].transpose(2, 3, 1, 0),
  )
  assert not np.array_equal(state_dict['base_resnet.base.' + key],
                            state_dict['visible_module.visible.' + key])

  # The reference's own resnet.py has no fc; a DataParallel save prefixes 'module.'.
  without_fc = {k: v for k, v in state_dict.items() if '.fc.' not in k}
  assert len(without_fc) == len(state_dict) - 6
  checkpoints.load_pytorch({'module.' + k: v for k, v in without_fc.items()}, NARROW_CONFIG)

  # Anything else under the same prefixes is not skipped.
  extras = ('visible_module.visible.conv2.weight', 'base_resnet.base.layer5.0.conv1.weight',
            'thermal_module.bn1.weight')
  with pytest.raises(ValueError) as error:
    checkpoints.load_pytorch(
        {**state_dict, **{key: np.zeros(3, np.float32) for key in extras}}, NARROW_CONFIG
    )
  message = str(error.value)
  assert 'unexpected (3,' in message and 'missing' not in message
  for key in extras:
    assert f'\n  {key}  file [3]' in message


def test_import_copies_the_arrays_of_an_in_memory_state_dict(narrow_agw_state_dict):
  # JAX on CPU wraps aligned NumPy buffers without copying: without a copy at import, a
  # PyTorch model updating its statistics in place would change the imported model.
  torch.manual_seed(0)
  net = reference.EmbedNet(7, width=4)
  model = checkpoints.load_pytorch(net.state_dict(), NARROW_CONFIG)
  imported = np.array(model.visible_stem.bn1.mean[...])
  net.train()
  net(*(_images(5, batch=2)[1],) * 2)
  assert not np.allclose(net.visible_module.visible.bn1.running_mean.numpy(), imported)
  np.testing.assert_array_equal(model.visible_stem.bn1.mean[...], imported)
  exported = checkpoints.to_pytorch_state_dict(model)
  exported['visible_module.visible.bn1.running_mean'] += 1.0  # a copy, writable
  np.testing.assert_array_equal(model.visible_stem.bn1.mean[...], imported)


def test_bad_keys_are_each_listed_with_both_shapes(narrow_agw_state_dict):
  state_dict = dict(narrow_agw_state_dict)
  del state_dict['base_resnet.base.layer3.5.bn3.running_mean']
  del state_dict['NL_3.2.phi.bias']
  state_dict['NL_5.0.theta.weight'] = np.zeros((1, 2, 1, 1), np.float32)
  state_dict['visible_module.visible.conv1.weight'] = np.zeros((4, 1, 7, 7), np.float32)
  with pytest.raises(ValueError) as error:
    checkpoints.load_pytorch(state_dict, NARROW_CONFIG)
  message = str(error.value)
  assert message.startswith('the given state dict does not fit AGW(num_classes=7')
  assert ' missing (2, in the model but not in the file):' in message
  assert 'base_resnet.base.layer3.5.bn3.running_mean  model [64]' in message
  assert 'NL_3.2.phi.bias  model [1]' in message
  assert ' unexpected (1, in the file but not in the model):' in message
  assert 'NL_5.0.theta.weight  file [1, 2, 1, 1]' in message
  assert ' mis-shaped (1, PyTorch layout):' in message
  assert 'visible_module.visible.conv1.weight  file [4, 1, 7, 7], model [4, 3, 7, 7]' in message
  assert 'config.model' in message


def test_non_local_width_mismatch_names_each_block_and_the_config_field():
  torch.manual_seed(0)
  half = reference.EmbedNet(7, width=4, inner='half').state_dict()
  with pytest.raises(ValueError) as error:
    checkpoints.load_pytorch(half, NARROW_CONFIG)  # config: 'reference' (width 1)
  message = str(error.value)
  # Layer2 blocks have 4·2·4 = 32 channels: θ is [16, 32, 1, 1] with C/2, [1, 32, 1, 1] here.
  assert 'NL_2.0.theta.weight  file [16, 32, 1, 1], model [1, 32, 1, 1]' in message
  assert 'NL_3.2.W.0.weight  file [64, 32, 1, 1], model [64, 1, 1, 1]' in message
  assert 'mis-shaped (35,' in message  # 5 blocks × (θ, φ, g weights and biases, W.0 weight)
  assert "non_local_inner" in message
  model = checkpoints.load_pytorch(half, _agw_config(width=4, non_local_inner='half'))
  assert model.stages.inserted[2][0].inner_channels == 32


def test_frozen_bnneck_bias_must_be_zero(narrow_agw_state_dict):
  state_dict = dict(narrow_agw_state_dict)
  state_dict['bottleneck.bias'] = np.full(state_dict['bottleneck.bias'].shape, 0.5, np.float32)
  with pytest.raises(ValueError, match=r'"bottleneck\.bias".*non-zero'):
    checkpoints.load_pytorch(state_dict, NARROW_CONFIG)


def test_file_errors_name_the_file(tmp_path):
  missing = tmp_path / 'nowhere.t'
  with pytest.raises(FileNotFoundError, match='nowhere.t'):
    checkpoints.load_pytorch(missing, NARROW_CONFIG)

  metrics_only = tmp_path / 'metrics.t'
  torch.save({'epoch': 3, 'cmc': np.ones(20)}, metrics_only)
  with pytest.raises(ValueError, match=r"metrics\.t.*not tensors: \['epoch'\]"):
    checkpoints.load_pytorch(metrics_only, NARROW_CONFIG)

  imagenet = tmp_path / 'resnet18.pth'
  torch.save(reference.TorchvisionResNet(18, 10, width=4).state_dict(), imagenet)
  with pytest.raises(ValueError, match=r'resnet18\.pth.*classifier\.weight.*init_backbone'):
    checkpoints.load_pytorch(imagenet, NARROW_CONFIG)


def test_checkpoint_pickled_with_numpy_1_module_names_loads(tmp_path):
  """Released checkpoints predate NumPy 2: their metrics pickle as ``numpy.core.…``."""
  path = tmp_path / 'numpy2.t'
  _save_like_agw_train_py(reference.EmbedNet(7, width=4), path)
  old_path = tmp_path / 'numpy1.t'
  with zipfile.ZipFile(path) as source, zipfile.ZipFile(old_path, 'w') as target:
    for item in source.infolist():
      data = source.read(item.filename)
      if item.filename.endswith('data.pkl'):
        assert b'numpy._core.multiarray' in data
        data = data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
      target.writestr(item, data)
  model = checkpoints.load_pytorch(old_path, NARROW_CONFIG)
  assert model.num_classes == 7
