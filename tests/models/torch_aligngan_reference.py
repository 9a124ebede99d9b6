"""AlignGAN's reference networks, losses and checkpoint files in plain PyTorch, transcribed from
`wangguanan/AlignGAN` at b37686245e1f (spec aligngan.md §2, §3, §5).

Imported by the AlignGAN tests only, after ``pytest.importorskip("torch")``; pytest does not
collect it (no ``test_`` prefix). Nothing here comes from our JAX code: this is the independent
side of the comparison. Every module has the authors' attribute names, so the state dicts have
the authors' keys:

* :class:`Generator` (``core/model.py`` Generator): ``model.{0..20}``; the residual blocks are
  ``model.9`` … ``model.12`` with ``model.{j}.model.{0,1,3,4}``; every InstanceNorm has
  ``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``.
* :class:`Discriminator`: ``model.{0,2,5,8,11}`` convs (with bias), ``conv_src`` (no bias);
  its InstanceNorms have no state.
* :class:`ConditionalDiscriminator`: ``image_convs.{0,2,5}``, ``feature_convs.0``,
  ``dis_convs.{0,3}``, ``conv_src``.
* :class:`Encoder`: ``resnet_conv.{0,1,4,5,6,7}.…`` (conv1, bn1, layer1…layer4 of a
  torchvision ResNet; 2 and 3 are the ReLU and max-pool).
* :class:`Embeder`: ``classifier{i}.bottle.{0,1}``, ``classifier{i}.classifier.0``,
  ``embedder{i}``.

The widths, depths and the conditional discriminator's feature channels / resize target are
arguments (the reference's values are the defaults) so that tests can build small networks.
:func:`save_model` writes the eight files of ``Base.save_model`` (``core/base.py``).
"""

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from tests.models.torch_reference import TorchvisionResNet

# ``core/base.py`` ``Base._init_model``: the order of ``model_list``, i.e. the index ``k`` of the
# checkpoint file ``model-{k}_{step}.pkl``.
MODEL_LIST = ('G_rgb2ir', 'G_ir2rgb', 'D_rgb', 'D_ir', 'D_rgb_warmup', 'D_ir_warmup', 'encoder',
              'embeder')

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------- networks


def weights_init_normal(m):
  """``core/model.py`` ``weights_init_normal``, applied to G and D by ``Base._init_model``:
  every class whose name contains 'Conv' (ConvTranspose2d too) gets weights ~ N(0, 0.02); the
  biases keep PyTorch's default. (The BatchNorm2d branch never fires: G and D have none.)"""
  classname = m.__class__.__name__
  if classname.find('Conv') != -1:
    nn.init.normal_(m.weight.data, 0.0, 0.02)
  elif classname.find('BatchNorm2d') != -1:
    nn.init.normal_(m.weight.data, 1.0, 0.02)
    nn.init.constant_(m.bias.data, 0.0)


def _instance_norm_with_running_stats(channels):
  return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)


class ResidualBlock(nn.Module):
  """``core/model.py`` ResidualBlock: x + (conv3×3 → IN → ReLU → conv3×3 → IN)(x), no biases,
  no activation after the sum."""

  def __init__(self, in_channels, out_channels):
    super().__init__()
    self.model = nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
        _instance_norm_with_running_stats(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
        _instance_norm_with_running_stats(out_channels),
    )

  def forward(self, x):
    return self.model(x) + x


class Generator(nn.Module):
  """``core/model.py`` Generator(conv_dim, layer_num), built as ``Generator(64, 4)`` in
  ``core/base.py``: conv7×7 → 2 × (conv4×4 s2) → ``layer_num`` residual blocks →
  2 × (transposed conv4×4 s2) → conv7×7 → tanh, zero padding, no biases, every IN affine with
  running statistics. Output size = input size for inputs divisible by 4."""

  def __init__(self, conv_dim=64, layer_num=4):
    super().__init__()
    layers = [
        nn.Conv2d(3, conv_dim, kernel_size=7, stride=1, padding=3, bias=False),
        _instance_norm_with_running_stats(conv_dim),
        nn.ReLU(inplace=True),
    ]
    current_dims = conv_dim
    for _ in range(2):
      layers += [
          nn.Conv2d(current_dims, current_dims * 2, kernel_size=4, stride=2, padding=1,
                    bias=False),
          _instance_norm_with_running_stats(current_dims * 2),
          nn.ReLU(inplace=True),
      ]
      current_dims *= 2
    for _ in range(layer_num):
      layers.append(ResidualBlock(current_dims, current_dims))
    for _ in range(2):
      layers += [
          nn.ConvTranspose2d(current_dims, current_dims // 2, kernel_size=4, stride=2, padding=1,
                             bias=False),
          _instance_norm_with_running_stats(current_dims // 2),
          nn.ReLU(inplace=True),
      ]
      current_dims //= 2
    layers += [nn.Conv2d(current_dims, 3, kernel_size=7, stride=1, padding=3, bias=False),
               nn.Tanh()]
    self.model = nn.Sequential(*layers)

  def forward(self, x):
    return self.model(x)


class Discriminator(nn.Module):
  """``core/model.py`` Discriminator(image_size, conv_dim, layer_num) (PatchGAN; ``image_size``
  is unused, as in the reference), built as ``Discriminator(128, 64, 4)``: conv4×4 s2 (bias) →
  LReLU 0.2 → ``layer_num`` × (conv4×4 s2 (bias) → IN (no affine, no running stats) → LReLU) →
  ``conv_src`` 3×3 s1 p1 → 1 channel, no bias. 128×128 → 4×4 patch scores."""

  def __init__(self, image_size=128, conv_dim=64, layer_num=4):
    super().__init__()
    del image_size  # unused by the reference too
    layers = [nn.Conv2d(3, conv_dim, kernel_size=4, stride=2, padding=1),
              nn.LeakyReLU(0.2, inplace=True)]
    current_dim = conv_dim
    for _ in range(layer_num):
      layers += [nn.Conv2d(current_dim, current_dim * 2, kernel_size=4, stride=2, padding=1),
                 nn.InstanceNorm2d(current_dim * 2),
                 nn.LeakyReLU(0.2, inplace=True)]
      current_dim *= 2
    self.model = nn.Sequential(*layers)
    self.conv_src = nn.Conv2d(current_dim, 1, kernel_size=3, stride=1, padding=1, bias=False)

  def forward(self, x):
    return self.conv_src(self.model(x))


class ConditionalDiscriminator(nn.Module):
  """``core/model.py`` ConditionalDiscriminator(conv_dim), built as
  ``ConditionalDiscriminator(64)``: D_ir(image, feature map).

  The reference hard-codes ``feature_channels`` = 2048 (the 1×1 conv's input channels) and
  ``feature_size`` = [16, 16] (the bilinear resize target of the feature branch, the image
  branch's grid for 128×128 images); both are arguments here, with those defaults. For small
  models: ``feature_channels`` = the encoder's output channels, ``feature_size`` = image size / 8.
  """

  def __init__(self, conv_dim=64, feature_channels=2048, feature_size=(16, 16)):
    super().__init__()
    if isinstance(feature_size, int):
      feature_size = (feature_size, feature_size)
    self.feature_size = [int(feature_size[0]), int(feature_size[1])]
    image_convs = [nn.Conv2d(3, conv_dim, kernel_size=4, stride=2, padding=1),
                   nn.LeakyReLU(0.2, inplace=True)]
    current_dim = conv_dim
    for _ in range(2):
      image_convs += [nn.Conv2d(current_dim, current_dim * 2, kernel_size=4, stride=2, padding=1),
                      nn.InstanceNorm2d(current_dim * 2),
                      nn.LeakyReLU(0.2, inplace=True)]
      current_dim *= 2
    self.image_convs = nn.Sequential(*image_convs)
    self.feature_convs = nn.Sequential(
        nn.Conv2d(feature_channels, conv_dim, kernel_size=1, stride=1, padding=0),
        nn.LeakyReLU(0.2, inplace=True))
    dis_convs = [nn.Conv2d(current_dim + conv_dim, current_dim * 2, kernel_size=4, stride=2,
                           padding=1),
                 nn.InstanceNorm2d(current_dim * 2),
                 nn.LeakyReLU(0.2, inplace=True)]
    current_dim *= 2
    dis_convs += [nn.Conv2d(current_dim, current_dim * 2, kernel_size=4, stride=2, padding=1),
                  nn.InstanceNorm2d(current_dim * 2),
                  nn.LeakyReLU(0.2, inplace=True)]
    current_dim *= 2
    self.dis_convs = nn.Sequential(*dis_convs)
    self.conv_src = nn.Conv2d(current_dim, 1, kernel_size=3, stride=1, padding=1, bias=False)

  def forward(self, images, features):
    images = self.image_convs(images)
    features = self.feature_convs(features)
    # The reference: F.interpolate(features, [16, 16], mode='bilinear'); align_corners unset
    # = False (half-pixel centres), no antialiasing.
    features = F.interpolate(features, self.feature_size, mode='bilinear', align_corners=False)
    x = torch.cat([images, features], dim=1)
    return self.conv_src(self.dis_convs(x))


def weights_init_kaiming(m):
  """``core/model.py`` ``weights_init_kaiming`` (used by BottleClassifier's ``bottle``)."""
  classname = m.__class__.__name__
  if classname.find('Conv') != -1:
    nn.init.kaiming_normal_(m.weight.data, a=0, mode='fan_in')
  elif classname.find('Linear') != -1:
    nn.init.kaiming_normal_(m.weight.data, a=0, mode='fan_out')
    nn.init.constant_(m.bias.data, 0.0)
  elif classname.find('BatchNorm1d') != -1:
    nn.init.normal_(m.weight.data, 1.0, 0.02)
    nn.init.constant_(m.bias.data, 0.0)


def weights_init_classifier(m):
  """``core/model.py`` ``weights_init_classifier``."""
  if m.__class__.__name__.find('Linear') != -1:
    nn.init.normal_(m.weight.data, std=0.001)
    nn.init.constant_(m.bias.data, 0.0)


class BottleClassifier(nn.Module):
  """``core/model.py`` BottleClassifier: ``bottle`` = Linear → BatchNorm1d [→ LeakyReLU(0.1)]
  [→ Dropout(0.5)], ``classifier`` = Sequential(Linear). The Embeder builds it with
  relu=True, dropout=False, bottle_dim=256."""

  def __init__(self, in_dim, out_dim, relu=True, dropout=True, bottle_dim=512):
    super().__init__()
    bottle = [nn.Linear(in_dim, bottle_dim), nn.BatchNorm1d(bottle_dim)]
    if relu:
      bottle += [nn.LeakyReLU(0.1)]
    if dropout:
      bottle += [nn.Dropout(p=0.5)]
    self.bottle = nn.Sequential(*bottle)
    self.bottle.apply(weights_init_kaiming)
    self.classifier = nn.Sequential(nn.Linear(bottle_dim, out_dim))
    self.classifier.apply(weights_init_classifier)

  def forward(self, x):
    return self.classifier(self.bottle(x))


class Encoder(nn.Module):
  """``core/model.py`` Encoder: a torchvision ResNet (the reference: ``resnet50(pretrained=True)``;
  here :class:`TorchvisionResNet` of the given depth and stem width, weights left at their
  initialisation) with last stride 1, and ``resnet_conv`` = Sequential(conv1, bn1, relu,
  maxpool, layer1, …, layer4); no pooling, no fc. 384×192 → 24×12.

  The reference sets ``layer4[0].downsample[0].stride`` and ``layer4[0].conv2.stride`` to 1
  (a Bottleneck's 3×3 conv carries the stride). For BasicBlock depths (18, 34; not used by the
  reference, where the same two lines would leave conv1 strided) ``conv1`` is set to 1 instead.
  """

  def __init__(self, depth=50, width=64):
    super().__init__()
    resnet = TorchvisionResNet(depth, 1000, width, last_stride=2, with_fc=False)
    first = resnet.layer4[0]
    first.downsample[0].stride = (1, 1)
    if hasattr(first, 'conv3'):   # Bottleneck
      first.conv2.stride = (1, 1)
    else:                          # BasicBlock (extension for small test models)
      first.conv1.stride = (1, 1)
    self.out_channels = resnet.out_channels
    self.resnet_conv = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
                                     resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)

  def forward(self, x):
    return self.resnet_conv(x)


class Embeder(nn.Module):
  """``core/model.py`` Embeder(part_num, class_num), built as ``Embeder(1, class_num)``;
  ``in_dim`` (2048 hard-coded in the reference) is the encoder's output channels.

  ``forward(features)`` returns ``(features_c, features_e, logits_list, embedding_list)`` as the
  reference: ``features_c`` = squeeze(Dropout(0.5)(avg-pool)), ``features_e`` =
  squeeze(avg-pool); logits from ``features_c`` through ``classifier{i}``, embeddings from
  ``features_e`` through ``embedder{i}`` (Linear in_dim → 256). ``torch.squeeze`` also drops
  the batch dimension of a batch of one, as in the reference. ``bottle_dim`` and
  ``embedding_dim`` (256 and 256 in the reference) are arguments for small models."""

  def __init__(self, part_num=1, class_num=395, in_dim=2048, bottle_dim=256, embedding_dim=256):
    super().__init__()
    self.part_num = part_num
    self.class_num = class_num
    avgpool = nn.AdaptiveAvgPool2d((self.part_num, 1))
    dropout = nn.Dropout(p=0.5)
    self.pool_c = nn.Sequential(avgpool, dropout)
    self.pool_e = nn.Sequential(avgpool)
    for i in range(part_num):
      setattr(self, 'classifier' + str(i),
              BottleClassifier(in_dim, self.class_num, relu=True, dropout=False,
                               bottle_dim=bottle_dim))
      setattr(self, 'embedder' + str(i), nn.Linear(in_dim, embedding_dim))

  def forward(self, features):
    features_c = torch.squeeze(self.pool_c(features))
    features_e = torch.squeeze(self.pool_e(features))
    logits_list = []
    for i in range(self.part_num):
      features_i = features_c if self.part_num == 1 else torch.squeeze(features_c[:, :, i])
      logits_list.append(getattr(self, 'classifier' + str(i))(features_i))
    embedding_list = []
    for i in range(self.part_num):
      features_i = features_e if self.part_num == 1 else torch.squeeze(features_e[:, :, i])
      embedding_list.append(getattr(self, 'embedder' + str(i))(features_i))
    return features_c, features_e, logits_list, embedding_list


def build_networks(class_num=395, *, generator_dim=64, residual_blocks=4, discriminator_dim=64,
                   discriminator_layers=4, depth=50, width=64, feature_size=(16, 16),
                   bottle_dim=256, embedding_dim=256, init=True):
  """The eight networks of ``Base._init_model`` (``core/base.py``: ``Generator(64, 4)``,
  ``Discriminator(128, 64, 4)``, ``ConditionalDiscriminator(64)``, ``Encoder()``,
  ``Embeder(1, class_num)``), keyed as :data:`MODEL_LIST` and in its order; the defaults are
  the reference's sizes. The conditional discriminator takes the encoder's output channels.
  ``init``: apply ``weights_init_normal`` to G and D as the reference does (the encoder is not
  ImageNet-initialised here)."""
  encoder = Encoder(depth, width)

  def d():
    return Discriminator(128, discriminator_dim, discriminator_layers)

  networks = {
      'G_rgb2ir': Generator(generator_dim, residual_blocks),
      'G_ir2rgb': Generator(generator_dim, residual_blocks),
      'D_rgb': d(),
      'D_ir': ConditionalDiscriminator(discriminator_dim, encoder.out_channels, feature_size),
      'D_rgb_warmup': d(),
      'D_ir_warmup': d(),
      'encoder': encoder,
      'embeder': Embeder(1, class_num, encoder.out_channels, bottle_dim, embedding_dim),
  }
  if init:
    for name in MODEL_LIST[:6]:
      networks[name].apply(weights_init_normal)
  return networks


# ------------------------------------------------------------------------ adapter, features


def process_images_4_encoder(images, size=(384, 192)):
  """``core/base.py`` ``Base.process_images_4_encoder``: [-1, 1] images (NCHW) → bilinear
  resize to ``size`` (``F.interpolate(mode='bilinear')``, align_corners=False) → (x+1)/2 →
  ImageNet mean/std. Differentiable."""
  images = F.interpolate(images, list(size), mode='bilinear', align_corners=False)
  images = (images + 1.0) / 2.0
  batch, _, height, width = images.shape
  mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype).view([1, 3, 1, 1]).repeat(
      [batch, 1, height, width])
  std = torch.tensor(IMAGENET_STD, dtype=images.dtype).view([1, 3, 1, 1]).repeat(
      [batch, 1, height, width])
  return (images - mean) / std


def fliplr(images):
  """``tools/transforms2.py`` ``fliplr``: reverse the last (width) axis of NCHW images."""
  inv_idx = torch.arange(images.size(3) - 1, -1, -1).long()
  return images.index_select(3, inv_idx)


def test_features(networks, images, modality, size=(384, 192)):
  """``core/test.py`` ``compute_and_save_features`` for one batch of NCHW [-1, 1] images:
  [N, C] unit features.

  Every network of ``networks`` is put in eval mode and left there (``base.set_eval()``; G's
  InstanceNorms then use their running statistics). RGB images (``modality='rgb'``) go through
  ``networks['G_rgb2ir']`` first; IR images (``'ir'``) are used as they are. Then, for x and
  its horizontal flip (flipped *after* the translation), two separate encoder calls through the
  adapter; the feature is the Embeder's ``features_c`` (its first output: the dropout-pooled
  vector, = the plain average pool in eval mode); v = f(x) + f(flip(x)); v / ‖v‖₂ (no epsilon).
  A batch of one is squeezed by the reference's Embeder; pass N ≥ 2.
  """
  if modality not in ('rgb', 'ir'):
    raise ValueError(f"modality must be 'rgb' or 'ir', got {modality!r}")
  for network in networks.values():
    network.eval()
  encoder, embeder = networks['encoder'], networks['embeder']

  def compute_features(x):
    x_f = fliplr(x)
    features = encoder(process_images_4_encoder(x, size))
    features_f = encoder(process_images_4_encoder(x_f, size))
    features, _, _, _ = embeder(features)
    features_f, _, _, _ = embeder(features_f)
    features = features + features_f
    if embeder.part_num == 1:
      features = torch.unsqueeze(features, -1)
    return features

  with torch.no_grad():
    if modality == 'rgb':
      images = networks['G_rgb2ir'](images).data
    features = compute_features(images)
    # normalize_and_resize_feature
    norm = torch.norm(features, dim=1, keepdim=True)
    features = features / norm.repeat([1, features.size(1), 1])
    return features.view(features.size(0), -1)


# Named as the reference's step; not a test when a test module imports it.
test_features.__test__ = False


# ------------------------------------------------------------------------------- checkpoints


class _DataParallelKeys(nn.Module):
  """What ``nn.DataParallel(net).state_dict()`` holds: the net's entries under ``module.`` (and
  the same ``_metadata``), without DataParallel's device handling (which would move ``net`` to
  the GPU on a one-GPU machine)."""

  def __init__(self, module):
    super().__init__()
    self.module = module


def save_model(networks, folder, index, legacy_format=False):
  """``core/base.py`` ``Base.save_model(save_epoch=index)``: for k, name in enumerate
  :data:`MODEL_LIST`, ``torch.save(DataParallel(net).state_dict(), folder/model-{k}_{index}.pkl)``
  (every key prefixed ``module.``). The reference's clean-up of older files is left out.

  ``legacy_format=True`` writes PyTorch's pre-1.6 (non-zip) format, as the reference's PyTorch
  1.1 did (e.g. the released step-250 checkpoint); the default is the current torch's format.
  Returns the eight paths in order.
  """
  paths = []
  for ii, name in enumerate(MODEL_LIST):
    path = os.path.join(folder, 'model-{}_{}.pkl'.format(ii, index))
    torch.save(_DataParallelKeys(networks[name]).state_dict(), path,
               _use_new_zipfile_serialization=not legacy_format)
    paths.append(path)
  return paths


# ----------------------------------------------------------------------------- randomize


def randomize(module, seed):
  """Random values for every parameter and statistic, so that a comparison checks all of them.

  Conv / transposed conv / Linear: weights ~ N(0, 1/fan_in) (fan_in of a transposed conv:
  C_in·k·k / stride², the taps that reach one output), biases ~ N(0, 0.1²). Every BatchNorm
  and InstanceNorm with state: γ ~ U(0.5, 1.5), β ~ N(0, 0.1²), running mean ~ N(0, 0.1²),
  running var ~ U(0.5, 1.5), num_batches_tracked a random positive integer."""
  generator = torch.Generator().manual_seed(seed)

  def normal(tensor, std):
    tensor.copy_(std * torch.randn(tensor.shape, generator=generator))

  def uniform(tensor, low, high):
    tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=generator))

  norms = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)
  with torch.no_grad():
    for child in module.modules():
      if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = child.weight
        if isinstance(child, nn.Linear):
          fan_in = child.in_features
        elif isinstance(child, nn.ConvTranspose2d):
          fan_in = weight.shape[0] * weight.shape[2] * weight.shape[3] / math.prod(child.stride)
        else:
          fan_in = weight[0].numel()
        normal(weight, 1.0 / math.sqrt(fan_in))
        if child.bias is not None:
          normal(child.bias, 0.1)
      elif isinstance(child, norms):
        if child.affine:
          uniform(child.weight, 0.5, 1.5)
          normal(child.bias, 0.1)
        if child.track_running_stats:
          normal(child.running_mean, 0.1)
          uniform(child.running_var, 0.5, 1.5)
          child.num_batches_tracked.fill_(
              int(torch.randint(1, 10000, (), generator=generator)))
  return module


# ------------------------------------------------------------------------------------ losses


def cosine(inputs_1, inputs_2):
  """``tools/metric.py`` ``cosine``: [m, n] cosine similarities, no epsilon."""
  bs1, bs2 = inputs_1.size()[0], inputs_2.size()[0]
  frac_up = torch.matmul(inputs_1, inputs_2.transpose(0, 1))
  frac_down = (torch.sqrt(torch.sum(torch.pow(inputs_1, 2), 1))).view(bs1, 1).repeat(1, bs2) * \
              (torch.sqrt(torch.sum(torch.pow(inputs_2, 2), 1))).view(1, bs2).repeat(bs1, 1)
  return frac_up / frac_down


class TripletLoss:
  """``tools/loss2.py`` TripletLoss(margin, soft_bh, 'cosine') (RankingLoss's helpers inlined):
  ``loss(emb1, emb2, emb3, label1, label2, label3)`` with anchors emb1, positive candidates emb2
  and negative candidates emb3. Hardest positive = the ``soft_bh[0]``-th smallest similarity
  among same-label candidates of emb2 (others pushed up by 9999999); hardest negative = the
  ``soft_bh[1]``-th largest among different-label candidates of emb3 (same-label ones pushed
  down by 9999999); MarginRankingLoss(hard_n, hard_p, y=−1) = mean max(0, s⁻ − s⁺ + margin).
  The reference uses soft_bh = [0, 0] (``main.py``) and only the 'cosine' metric."""

  def __init__(self, margin=1.0, soft_bh=(0, 0), metric='cosine'):
    if metric != 'cosine':
      raise ValueError("the reference's TripletLoss only computes the 'cosine' metric")
    self.margin = margin
    self.margin_loss = nn.MarginRankingLoss(margin=margin)
    self.soft_bh = soft_bh
    self.metric = metric

  @staticmethod
  def _label2similarity(label1, label2):
    m, n = len(label1), len(label2)
    l1 = label1.view(m, 1).expand([m, n])
    l2 = label2.view(n, 1).expand([n, m]).t()
    return l1 == l2

  def _batch_hard(self, mat_distance, mat_similarity):
    # more_similar == 'larger' (cosine similarity)
    sorted_mat_distance, _ = torch.sort(mat_distance + (9999999.) * (1 - mat_similarity), dim=1,
                                        descending=False)
    hard_p = sorted_mat_distance[:, self.soft_bh[0]]
    sorted_mat_distance, _ = torch.sort(mat_distance + (-9999999.) * (mat_similarity), dim=1,
                                        descending=True)
    hard_n = sorted_mat_distance[:, self.soft_bh[1]]
    return hard_p, hard_n

  def __call__(self, emb1, emb2, emb3, label1, label2, label3):
    mat_dist = cosine(emb1, emb2)
    mat_sim = self._label2similarity(label1, label2)
    hard_p, _ = self._batch_hard(mat_dist, mat_sim.float())
    mat_dist = cosine(emb1, emb3)
    mat_sim = self._label2similarity(label1, label3)
    _, hard_n = self._batch_hard(mat_dist, mat_sim.float())
    margin_label = -torch.ones_like(hard_p)
    return self.margin_loss(hard_n, hard_p, margin_label)


def triplet_loss(anchors, positives, negatives, anchor_labels, positive_labels, negative_labels,
                 margin=1.0):
  """``Base.compute_triplet_loss`` with part_num = 1: TripletLoss(margin, [0, 0], 'cosine')."""
  return TripletLoss(margin, (0, 0), 'cosine')(anchors, positives, negatives, anchor_labels,
                                               positive_labels, negative_labels)


def classification_loss(logits_list, pids):
  """``Base.compute_classification_loss`` (the loss only): the part-average of softmax
  cross-entropies (mean over the batch)."""
  part_num = len(logits_list)
  return sum(1.0 / float(part_num) * F.cross_entropy(logits, pids) for logits in logits_list)


def mse(scores, target):
  """``criterion_gan_mse`` (nn.MSELoss, mean) against a constant tensor of ``target`` (1 real,
  0 fake) shaped as ``scores`` (``base.ones`` / ``base.zeros`` are [p_gan·k_gan, 1, 4, 4]; the
  feature step uses ``ones_like``)."""
  return F.mse_loss(scores, torch.full_like(scores, float(target)))


def d_ir_loss(real, wrong_image_real_feature, real_image_fake_feature, fake_image_real_feature,
              fake_image_fake_feature):
  """``core/train.py`` "discriminator ir" from the five D_ir score tensors, in the reference's
  order: D_ir(i, M_i) → 1; fakes → 0: D_ir(wrong_pair(i), M_i), D_ir(i, M_f), D_ir(f_i, M_i),
  D_ir(f_i, M_f). Returns ½[real + ¼ Σ fakes]."""
  fake = (mse(wrong_image_real_feature, 0) + mse(real_image_fake_feature, 0)
          + mse(fake_image_real_feature, 0) + mse(fake_image_fake_feature, 0)) / 4.0
  return (mse(real, 1) + fake) / 2.0


def d_loss(real_scores, fake_scores):
  """An unconditional discriminator's loss, ½[MSE(D(real), 1) + MSE(D(sg(fake)), 0)]: D_rgb in
  ``core/train.py``; D_rgb_warmup and D_ir_warmup in ``core/warmup.py``."""
  return (mse(real_scores, 1) + mse(fake_scores, 0)) / 2.0


def d_rgb_loss(real_rgb_scores, fake_rgb_scores):
  """``core/train.py``: D_rgb(r) → 1, D_rgb(sg(f_r)) → 0."""
  return d_loss(real_rgb_scores, fake_rgb_scores)


def warmup_d_losses(real_rgb_scores, fake_rgb_scores, real_ir_scores, fake_ir_scores):
  """``core/warmup.py``: (D_rgb_warmup loss, D_ir_warmup loss), both unconditional."""
  return d_loss(real_rgb_scores, fake_rgb_scores), d_loss(real_ir_scores, fake_ir_scores)


def generator_adversarial_loss(d_rgb_fake_scores, d_ir_fake_scores):
  """``gan_loss`` of ``core/train.py`` (D_rgb(f_r), D_ir(f_i, sg(M_i))) and of
  ``core/warmup.py`` (D_rgb_warmup(f_r), D_ir_warmup(f_i)): ½[MSE(·, 1) + MSE(·, 1)]."""
  return (mse(d_rgb_fake_scores, 1) + mse(d_ir_fake_scores, 1)) / 2.0


def feature_adversarial_loss(d_ir_scores):
  """``core/train.py`` feature step: MSE(D_ir(i, M_f), ones_like)."""
  return mse(d_ir_scores, 1)


def cycle_loss(cycled_rgb, real_rgb, cycled_ir, real_ir):
  """½[L1(G_i2r(f_i), r) + L1(G_r2i(f_r), i)] (nn.L1Loss, mean); the identity loss has the same
  form: ½[L1(G_i2r(r), r) + L1(G_r2i(i), i)]."""
  return (F.l1_loss(cycled_rgb, real_rgb) + F.l1_loss(cycled_ir, real_ir)) / 2.0


identity_loss = cycle_loss


def generator_loss(gan, cycle, identity, tri_1, tri_2, cls, lambda_pixel_tri=0.1,
                   lambda_pixel_cls=0.1):
  """``g_loss`` of ``core/train.py`` / ``core/warmup.py``:
  gan + 10·cycle + 5·identity + λ_tri·(tri_1 + tri_2) + λ_cls·cls."""
  return (gan + 10 * cycle + 5 * identity + lambda_pixel_tri * (tri_1 + tri_2)
          + lambda_pixel_cls * cls)


def feature_loss(cls_fake, cls_real, tri_1, tri_2, gan, lambda_feature_cls=1.0,
                 lambda_feature_triplet=1.0, lambda_feature_gan=0.1):
  """``core/train.py`` feature step: λ_cls·(cls_fake + cls_real) + λ_tri·(tri_1 + tri_2)
  + λ_gan·gan, with tri_1 = L_tri(e(f_i); e(i), e(i)), tri_2 = L_tri(e(i); e(f_i), e(f_i))."""
  return (lambda_feature_cls * (cls_fake + cls_real)
          + lambda_feature_triplet * (tri_1 + tri_2) + lambda_feature_gan * gan)


def wrong_pair(ir_images, k=4):
  """``core/base.py`` ``generate_wrong_images``: cat([x[4:], x[:4]]), i.e.
  out[j] = x[(j + 4) mod B] = ``torch.roll(x, -4, 0)``; the reference hard-codes 4 (= k_gan).
  Works on any tensor (pids too: the reference shifts them the same way)."""
  return torch.cat([ir_images[k:], ir_images[:k]], dim=0)

