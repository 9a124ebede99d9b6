"""The PyTorch side of the AlignGAN comparisons (`torch_aligngan_reference.py`) against the
authors' `core/model.py`, `core/base.py`, `core/test.py` and `tools/loss2.py` (spec aligngan.md).

The key check builds, at full size, the authors' classes written out with their literal sizes
(`Generator(64, 4)`, `Discriminator(128, 64, 4)`, `ConditionalDiscriminator(64)`, the ResNet-50
`Encoder`, `Embeder(1, 395)`) and compares state-dict keys, shapes and layer settings with the
parameterised transcription; the other tests use small networks and NumPy by hand.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip('torch')
from torch import nn  # noqa: E402

from tests.models import torch_aligngan_reference as ref  # noqa: E402
from tests.models.torch_reference import TorchvisionResNet  # noqa: E402


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
  """The networks here are tiny: with several intra-op threads on a busy machine, thread
  hand-offs cost ten times the arithmetic (milliseconds per small BatchNorm)."""
  previous = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(previous)


# ------------------------------------------------------- the authors' classes, sizes written out


def _in(channels):
  return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)


def _lrelu():
  return nn.LeakyReLU(0.2, inplace=True)


class _Holder(nn.Module):
  def __init__(self, **children):
    super().__init__()
    for name, child in children.items():
      setattr(self, name, child)


def _authors_generator():
  """`Generator(64, 4)`."""
  def residual():
    return _Holder(model=nn.Sequential(
        nn.Conv2d(256, 256, 3, 1, 1, bias=False), _in(256), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, 1, 1, bias=False), _in(256)))
  return _Holder(model=nn.Sequential(
      nn.Conv2d(3, 64, 7, 1, 3, bias=False), _in(64), nn.ReLU(inplace=True),
      nn.Conv2d(64, 128, 4, 2, 1, bias=False), _in(128), nn.ReLU(inplace=True),
      nn.Conv2d(128, 256, 4, 2, 1, bias=False), _in(256), nn.ReLU(inplace=True),
      residual(), residual(), residual(), residual(),
      nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), _in(128), nn.ReLU(inplace=True),
      nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), _in(64), nn.ReLU(inplace=True),
      nn.Conv2d(64, 3, 7, 1, 3, bias=False), nn.Tanh()))


def _authors_discriminator():
  """`Discriminator(128, 64, 4)`."""
  return _Holder(
      model=nn.Sequential(
          nn.Conv2d(3, 64, 4, 2, 1), _lrelu(),
          nn.Conv2d(64, 128, 4, 2, 1), nn.InstanceNorm2d(128), _lrelu(),
          nn.Conv2d(128, 256, 4, 2, 1), nn.InstanceNorm2d(256), _lrelu(),
          nn.Conv2d(256, 512, 4, 2, 1), nn.InstanceNorm2d(512), _lrelu(),
          nn.Conv2d(512, 1024, 4, 2, 1), nn.InstanceNorm2d(1024), _lrelu()),
      conv_src=nn.Conv2d(1024, 1, 3, 1, 1, bias=False))


def _authors_conditional_discriminator():
  """`ConditionalDiscriminator(64)`."""
  return _Holder(
      image_convs=nn.Sequential(
          nn.Conv2d(3, 64, 4, 2, 1), _lrelu(),
          nn.Conv2d(64, 128, 4, 2, 1), nn.InstanceNorm2d(128), _lrelu(),
          nn.Conv2d(128, 256, 4, 2, 1), nn.InstanceNorm2d(256), _lrelu()),
      feature_convs=nn.Sequential(nn.Conv2d(2048, 64, 1, 1, 0), _lrelu()),
      dis_convs=nn.Sequential(
          nn.Conv2d(320, 512, 4, 2, 1), nn.InstanceNorm2d(512), _lrelu(),
          nn.Conv2d(512, 1024, 4, 2, 1), nn.InstanceNorm2d(1024), _lrelu()),
      conv_src=nn.Conv2d(1024, 1, 3, 1, 1, bias=False))


def _authors_encoder():
  """`Encoder()`: torchvision's resnet50 (no weights), last stride 1, `resnet_conv`."""
  try:
    import torchvision  # pylint: disable=import-outside-toplevel
    resnet = torchvision.models.resnet50()
  except ImportError:   # not a dependency; the transcription of torchvision's layout
    resnet = TorchvisionResNet(50, 1000, 64, last_stride=2)
  resnet.layer4[0].downsample[0].stride = (1, 1)
  resnet.layer4[0].conv2.stride = (1, 1)
  return _Holder(resnet_conv=nn.Sequential(
      resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
      resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4))


def _authors_embeder():
  """`Embeder(1, 395)`: BottleClassifier(2048, 395, relu=True, dropout=False, bottle_dim=256)."""
  avgpool = nn.AdaptiveAvgPool2d((1, 1))
  return _Holder(
      pool_c=nn.Sequential(avgpool, nn.Dropout(p=0.5)),
      pool_e=nn.Sequential(avgpool),
      classifier0=_Holder(
          bottle=nn.Sequential(nn.Linear(2048, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.1)),
          classifier=nn.Sequential(nn.Linear(256, 395))),
      embedder0=nn.Linear(2048, 256))


def _shapes(net):
  return [(key, tuple(value.shape)) for key, value in net.state_dict().items()]


def _layers(net):
  """Every layer's type and settings, by name (containers are named differently)."""
  return [(name, type(module).__name__, module.extra_repr())
          for name, module in net.named_modules() if name and not list(module.children())]


def _full_size_networks():
  ours = ref.build_networks(395, init=False)
  authors = {
      'G_rgb2ir': _authors_generator(), 'G_ir2rgb': _authors_generator(),
      'D_rgb': _authors_discriminator(), 'D_ir': _authors_conditional_discriminator(),
      'D_rgb_warmup': _authors_discriminator(), 'D_ir_warmup': _authors_discriminator(),
      'encoder': _authors_encoder(), 'embeder': _authors_embeder(),
  }
  return ours, authors


def test_state_dict_keys_shapes_and_layers_are_the_authors(monkeypatch):
  # Shapes only: meta tensors, no memory. normal_ on meta tensors would import torch._dynamo
  # (seconds); nothing here reads values.
  for name in ('normal_', 'kaiming_normal_'):
    monkeypatch.setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
  with torch.device('meta'):
    ours, authors = _full_size_networks()
  assert list(ours) == list(ref.MODEL_LIST)
  for name in ref.MODEL_LIST:
    assert _shapes(ours[name]) == _shapes(authors[name]), name
    if name != 'encoder':   # torchvision's ReLU is inplace, ours not: keys and shapes only
      assert _layers(ours[name]) == _layers(authors[name]), name
  state = {name: dict(_shapes(net)) for name, net in ours.items()}
  assert state['G_rgb2ir']['model.9.model.0.weight'] == (256, 256, 3, 3)
  assert 'model.12.model.4.num_batches_tracked' in state['G_rgb2ir']
  assert state['G_rgb2ir']['model.13.weight'] == (256, 128, 4, 4)      # transposed conv
  assert state['G_rgb2ir']['model.19.weight'] == (3, 64, 7, 7)
  assert state['D_rgb']['model.11.bias'] == (1024,)
  assert state['D_rgb']['conv_src.weight'] == (1, 1024, 3, 3)
  assert state['D_ir']['feature_convs.0.weight'] == (64, 2048, 1, 1)
  assert state['D_ir']['dis_convs.0.weight'] == (512, 320, 4, 4)
  assert state['D_ir']['dis_convs.3.weight'] == (1024, 512, 4, 4)
  assert state['encoder']['resnet_conv.0.weight'] == (64, 3, 7, 7)
  assert state['encoder']['resnet_conv.7.0.downsample.0.weight'] == (2048, 1024, 1, 1)
  assert state['embeder']['classifier0.bottle.0.weight'] == (256, 2048)
  assert 'classifier0.bottle.1.running_var' in state['embeder']
  assert state['embeder']['classifier0.classifier.0.weight'] == (395, 256)
  assert state['embeder']['embedder0.weight'] == (256, 2048)
  last = ours['encoder'].resnet_conv[7][0]
  assert last.conv2.stride == (1, 1) and last.downsample[0].stride == (1, 1)


def test_authors_initialisation_of_the_bottle_classifier():
  head = ref.Embeder(1, 395)
  bottle, classifier = head.classifier0.bottle, head.classifier0.classifier[0]
  assert abs(bottle[0].weight.std().item() - math.sqrt(2 / 256)) < 0.01 * math.sqrt(2 / 256) * 5
  assert torch.all(bottle[0].bias == 0) and torch.all(bottle[1].bias == 0)
  assert abs(bottle[1].weight.mean().item() - 1.0) < 0.01
  assert abs(classifier.weight.std().item() - 0.001) < 0.0001
  assert torch.all(classifier.bias == 0)


# ------------------------------------------------------------------------------ shapes


def test_generator_keeps_the_image_size():
  generator = ref.randomize(ref.Generator(4, 1), 0)
  for size in (32, 128):
    out = generator(torch.randn(2, 3, size, size))
    assert out.shape == (2, 3, size, size)
    assert torch.all(out.abs() < 1)


def test_discriminator_gives_a_4x4_patch_at_128():
  scores = ref.Discriminator(128, 4, 4)(torch.randn(2, 3, 128, 128))
  assert scores.shape == (2, 1, 4, 4)


def test_conditional_discriminator_at_128_with_a_24x12x2048_map():
  scores = ref.ConditionalDiscriminator(4)(torch.randn(2, 3, 128, 128),
                                           torch.randn(2, 2048, 24, 12))
  assert scores.shape == (2, 1, 4, 4)
  small = ref.ConditionalDiscriminator(4, feature_channels=32, feature_size=64 // 8)
  assert small(torch.randn(2, 3, 64, 64), torch.randn(2, 32, 12, 6)).shape == (2, 1, 2, 2)


def test_encoder_output_grid_is_a_sixteenth_with_last_stride_1():
  encoder = ref.Encoder(50, 4).eval()
  assert encoder(torch.randn(1, 3, 384, 192)).shape == (1, 4 * 32, 24, 12)


# --------------------------------------------------------------------- instance norms by hand


def _instance_norms(net):
  return [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]


def test_instance_norm_running_statistics_after_one_training_call():
  generator = ref.randomize(ref.Generator(4, 1), 1).train()
  norms = _instance_norms(generator)
  assert len(norms) == 7 and all(m.track_running_stats and m.affine for m in norms)
  before = [(m.running_mean.clone().numpy(), m.running_var.clone().numpy(),
             int(m.num_batches_tracked)) for m in norms]
  inputs = {}
  hooks = [m.register_forward_pre_hook(
      lambda module, args: inputs.__setitem__(id(module), args[0].detach().clone().numpy()))
      for m in norms]
  with torch.no_grad():
    generator(torch.randn(3, 3, 32, 32))
  for hook in hooks:
    hook.remove()
  for m, (mean0, var0, count0) in zip(norms, before):
    x = inputs[id(m)].astype(np.float64)                       # [B, C, H, W]
    instance_mean = x.mean(axis=(2, 3)).mean(axis=0)
    instance_var = x.var(axis=(2, 3), ddof=1).mean(axis=0)       # unbiased, per instance
    np.testing.assert_allclose(m.running_mean.numpy(), 0.9 * mean0 + 0.1 * instance_mean,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.running_var.numpy(), 0.9 * var0 + 0.1 * instance_var,
                               rtol=1e-5, atol=1e-6)
    # PyTorch's InstanceNorm does not count its calls.
    assert int(m.num_batches_tracked) == count0


def test_instance_norm_in_eval_mode_uses_the_running_statistics():
  generator = ref.randomize(ref.Generator(4, 1), 2).eval()
  norm = generator.model[1]
  x = torch.randn(2, 4, 8, 8)
  expected = ((x.numpy() - norm.running_mean.numpy()[:, None, None])
              / np.sqrt(norm.running_var.numpy()[:, None, None] + 1e-5)
              * norm.weight.detach().numpy()[:, None, None]
              + norm.bias.detach().numpy()[:, None, None])
  np.testing.assert_allclose(norm(x).detach().numpy(), expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------ the adapter


def _bilinear_half_pixel(image, out_h, out_w):
  """PyTorch's bilinear resize (align_corners=False, no antialias) of one [H, W] plane."""
  def taps(n_in, n_out):
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0
  r0, r1, wr = taps(image.shape[0], out_h)
  c0, c1, wc = taps(image.shape[1], out_w)
  rows = image[r0] * (1 - wr)[:, None] + image[r1] * wr[:, None]
  return rows[:, c0] * (1 - wc) + rows[:, c1] * wc


def test_process_images_4_encoder():
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, size=(2, 3, 8, 8)).astype(np.float32)
  out = ref.process_images_4_encoder(torch.from_numpy(images), size=(24, 12)).numpy()
  mean, std = np.array(ref.IMAGENET_MEAN), np.array(ref.IMAGENET_STD)
  for b in range(2):
    for c in range(3):
      resized = _bilinear_half_pixel(images[b, c].astype(np.float64), 24, 12)
      np.testing.assert_allclose(out[b, c], ((resized + 1) / 2 - mean[c]) / std[c],
                                 rtol=1e-5, atol=1e-5)
  assert ref.process_images_4_encoder(torch.zeros(1, 3, 128, 128)).shape == (1, 3, 384, 192)


# -------------------------------------------------------------------------- test features


def _small_networks(seed):
  networks = ref.build_networks(10, generator_dim=4, residual_blocks=1, discriminator_dim=4,
                                discriminator_layers=2, depth=50, width=4, feature_size=4,
                                bottle_dim=8, embedding_dim=6)
  for offset, network in enumerate(networks.values()):
    ref.randomize(network, seed + offset)
  return networks


def test_test_features():
  networks = _small_networks(3)
  rng = np.random.default_rng(1)
  images = torch.from_numpy(rng.uniform(-1, 1, size=(3, 3, 32, 32)).astype(np.float32))
  statistics = [m.running_var.clone() for m in _instance_norms(networks['G_rgb2ir'])]
  rgb = ref.test_features(networks, images, 'rgb', size=(64, 32))
  ir = ref.test_features(networks, images, 'ir', size=(64, 32))
  assert rgb.shape == ir.shape == (3, networks['encoder'].out_channels)
  np.testing.assert_allclose(rgb.norm(dim=1).numpy(), 1.0, rtol=1e-6)
  assert all(not network.training for network in networks.values())
  for m, var in zip(_instance_norms(networks['G_rgb2ir']), statistics):
    assert torch.equal(m.running_var, var)      # eval mode: running statistics untouched
  # Flip-invariant for IR; RGB is translated (eval-mode G), then flipped.
  np.testing.assert_allclose(ref.test_features(networks, ref.fliplr(images), 'ir', (64, 32)),
                             ir, rtol=1e-5, atol=1e-6)
  with torch.no_grad():
    x = networks['G_rgb2ir'](images)
    pooled = lambda y: networks['encoder'](ref.process_images_4_encoder(y, (64, 32))).mean((2, 3))
    v = pooled(x) + pooled(x.flip(3))
  np.testing.assert_allclose(rgb.numpy(), (v / v.norm(dim=1, keepdim=True)).numpy(),
                             rtol=1e-5, atol=1e-6)
  assert not np.allclose(rgb.numpy(), ir.numpy(), atol=1e-3)


# ------------------------------------------------------------------------ files, randomize


@pytest.mark.parametrize('legacy_format', [False, True])
def test_save_model_writes_the_authors_eight_files(tmp_path, legacy_format):
  networks = _small_networks(4)
  paths = ref.save_model(networks, str(tmp_path), 7, legacy_format=legacy_format)
  assert [p.split('/')[-1] for p in paths] == [f'model-{k}_7.pkl' for k in range(8)]
  assert sorted(p.name for p in tmp_path.iterdir()) == [f'model-{k}_7.pkl' for k in range(8)]
  for path, name in zip(paths, ref.MODEL_LIST):
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    expected = nn.DataParallel(networks[name]).state_dict()   # CPU-only here: no device moves
    assert list(loaded) == list(expected) and all(k.startswith('module.') for k in loaded)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    assert dict(loaded._metadata) == dict(expected._metadata)


def test_randomize_touches_every_parameter_and_statistic():
  networks = _small_networks(5)
  for name, network in networks.items():
    for key, value in network.state_dict().items():
      if key.endswith('num_batches_tracked'):
        assert int(value) > 0, (name, key)
      elif value.numel() > 1:
        assert value.float().std() > 0, (name, key)
      if key.endswith('running_var') or key.endswith('.weight') and value.ndim == 1:
        assert not torch.allclose(value, torch.ones_like(value)), (name, key)
      if key.endswith('running_mean') or key.endswith('.bias'):
        assert not torch.allclose(value, torch.zeros_like(value)), (name, key)


# ------------------------------------------------------------------------------------ losses


def test_triplet_loss_batch_hard_cosine_with_separate_candidate_sets():
  rng = np.random.default_rng(2)
  anchors, positives, negatives = (rng.normal(size=(n, 6)) for n in (5, 7, 6))
  a_labels = np.array([0, 1, 2, 0, 1])
  p_labels = np.array([0, 0, 1, 2, 2, 1, 3])
  n_labels = np.array([1, 2, 0, 3, 3, 0])
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  s_ap, s_an = unit(anchors) @ unit(positives).T, unit(anchors) @ unit(negatives).T
  losses = []
  for k, label in enumerate(a_labels):
    hard_p = s_ap[k][p_labels == label].min()
    hard_n = s_an[k][n_labels != label].max()
    losses.append(max(0.0, hard_n - hard_p + 1.0))
  t = lambda x: torch.from_numpy(x)
  loss = ref.triplet_loss(t(anchors), t(positives), t(negatives), t(a_labels), t(p_labels),
                          t(n_labels), margin=1.0)
  np.testing.assert_allclose(loss.item(), np.mean(losses), rtol=1e-6)


def test_discriminator_and_generator_loss_weights():
  c = lambda value: torch.full((2, 1, 4, 4), float(value))
  # ½[(0−1)² + ¼((1−0)² + (2−0)² + (3−0)² + (−1−0)²)] = ½[1 + 15/4]
  np.testing.assert_allclose(ref.d_ir_loss(c(0), c(1), c(2), c(3), c(-1)).item(), 2.375)
  np.testing.assert_allclose(ref.d_rgb_loss(c(3), c(2)).item(), (4 + 4) / 2)
  rgb, ir = ref.warmup_d_losses(c(1), c(1), c(0), c(0))
  np.testing.assert_allclose([rgb.item(), ir.item()], [0.5, 0.5])
  np.testing.assert_allclose(ref.generator_adversarial_loss(c(0), c(3)).item(), (1 + 4) / 2)
  np.testing.assert_allclose(ref.feature_adversarial_loss(c(-1)).item(), 4.0)
  np.testing.assert_allclose(ref.generator_loss(1.0, 2.0, 3.0, 4.0, 5.0, 6.0),
                             1 + 20 + 15 + 0.1 * 9 + 0.1 * 6)
  np.testing.assert_allclose(ref.feature_loss(1.0, 2.0, 3.0, 4.0, 5.0), 3 + 7 + 0.5)


def test_wrong_pair_takes_the_image_four_places_later():
  images = torch.arange(16.0).view(16, 1, 1, 1).expand(16, 3, 2, 2)
  wrong = ref.wrong_pair(images, 4)
  for k in range(16):
    assert torch.equal(wrong[k], images[(k + 4) % 16])
  assert torch.equal(wrong, torch.roll(images, -4, dims=0))
