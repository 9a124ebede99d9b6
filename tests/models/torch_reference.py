"""The reference networks in plain PyTorch, written from the baseline spec §4.

Imported by the PyTorch-import tests only, after ``pytest.importorskip("torch")``;
pytest does not collect it (no ``test_`` prefix). Nothing here comes from our
JAX code: these modules are the independent side of the comparison.

* :class:`TorchvisionResNet`: torchvision's ResNet v1.5 (stride on the 3×3
  conv of a Bottleneck), with a configurable stem width and layer4 stride so
  that tests can use narrow models. Its ``state_dict()`` has torchvision's
  keys: ``conv1``, ``bn1``, ``layer{1-4}.{j}.…`` (``downsample.0/1``), ``fc``.
* :class:`EmbedNet`: the AGW reference's ``embed_net``. Its
  ``visible_module.visible``, ``thermal_module.thermal`` and
  ``base_resnet.base`` each hold a whole ResNet, of which only the stems
  (visible, thermal) and layer1–4 (base) run; ``NL_{1-4}`` are ModuleLists of
  non-local blocks whose ``g`` and ``W`` are Sequentials (``g.0``, ``W.0``,
  ``W.1``); ``bottleneck`` is a BatchNorm1d whose bias never trains;
  ``classifier`` a bias-free Linear.
"""

import numpy as np
import torch
from torch import nn

BLOCKS_PER_STAGE = {
    18: ('basic', (2, 2, 2, 2)),
    34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)),
    101: ('bottleneck', (3, 4, 23, 3)),
    152: ('bottleneck', (3, 8, 36, 3)),
}


def conv(in_channels, out_channels, kernel_size, stride=1):
  return nn.Conv2d(
      in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False
  )


class BasicBlock(nn.Module):
  expansion = 1

  def __init__(self, in_channels, planes, stride):
    super().__init__()
    self.conv1 = conv(in_channels, planes, 3, stride)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = conv(planes, planes, 3)
    self.bn2 = nn.BatchNorm2d(planes)
    self.relu = nn.ReLU()
    self.downsample = None
    if stride != 1 or in_channels != planes:
      self.downsample = nn.Sequential(conv(in_channels, planes, 1, stride), nn.BatchNorm2d(planes))

  def forward(self, x):
    shortcut = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    return self.relu(self.bn2(self.conv2(out)) + shortcut)


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, in_channels, planes, stride):
    super().__init__()
    out_channels = planes * self.expansion
    self.conv1 = conv(in_channels, planes, 1)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = conv(planes, planes, 3, stride)  # v1.5: the stride is here
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = conv(planes, out_channels, 1)
    self.bn3 = nn.BatchNorm2d(out_channels)
    self.relu = nn.ReLU()
    self.downsample = None
    if stride != 1 or in_channels != out_channels:
      self.downsample = nn.Sequential(
          conv(in_channels, out_channels, 1, stride), nn.BatchNorm2d(out_channels)
      )

  def forward(self, x):
    shortcut = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    return self.relu(self.bn3(self.conv3(out)) + shortcut)


class TorchvisionResNet(nn.Module):
  """torchvision ``resnet{depth}`` with ``width`` stem channels and a layer4 stride."""

  def __init__(self, depth=50, num_classes=1000, width=64, last_stride=2, with_fc=True):
    super().__init__()
    kind, blocks_per_stage = BLOCKS_PER_STAGE[depth]
    block = Bottleneck if kind == 'bottleneck' else BasicBlock
    self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.relu = nn.ReLU()
    self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    in_channels = width
    for stage, (num_blocks, stride) in enumerate(zip(blocks_per_stage, (1, 2, 2, last_stride))):
      planes = width * 2**stage
      blocks = []
      for j in range(num_blocks):
        blocks.append(block(in_channels, planes, stride if j == 0 else 1))
        in_channels = planes * block.expansion
      setattr(self, f'layer{stage + 1}', nn.Sequential(*blocks))
    self.out_channels = in_channels
    # The AGW reference's own resnet.py has no fc; torchvision's has one.
    self.fc = nn.Linear(in_channels, num_classes) if with_fc else None

  def stem(self, x):
    return self.maxpool(self.relu(self.bn1(self.conv1(x))))

  def stages(self, x):
    return self.layer4(self.layer3(self.layer2(self.layer1(x))))

  def forward(self, x):
    pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(self.stages(self.stem(x)), 1), 1)
    return self.fc(pooled)


class NonLocal(nn.Module):
  """Spec §4.3: θ φᵀ / N with an explicit [B, N, N] affinity, no softmax."""

  def __init__(self, channels, inner_channels):
    super().__init__()
    self.inner_channels = inner_channels
    self.g = nn.Sequential(nn.Conv2d(channels, inner_channels, 1))
    self.W = nn.Sequential(nn.Conv2d(inner_channels, channels, 1), nn.BatchNorm2d(channels))
    nn.init.zeros_(self.W[1].weight)
    nn.init.zeros_(self.W[1].bias)
    self.theta = nn.Conv2d(channels, inner_channels, 1)
    self.phi = nn.Conv2d(channels, inner_channels, 1)

  def forward(self, x):
    batch, _, height, width = x.shape
    g = self.g(x).reshape(batch, self.inner_channels, -1).permute(0, 2, 1)  # [B, N, c']
    theta = self.theta(x).reshape(batch, self.inner_channels, -1).permute(0, 2, 1)
    phi = self.phi(x).reshape(batch, self.inner_channels, -1)  # [B, c', N]
    affinity = torch.matmul(theta, phi)
    affinity = affinity / affinity.shape[-1]
    y = torch.matmul(affinity, g).permute(0, 2, 1)
    y = y.reshape(batch, self.inner_channels, height, width)
    return self.W(y) + x


class StemHolder(nn.Module):
  """``visible_module`` / ``thermal_module``: a whole ResNet, of which the stem runs."""

  def __init__(self, attribute, resnet):
    super().__init__()
    self.attribute = attribute
    setattr(self, attribute, resnet)

  def forward(self, x):
    return getattr(self, self.attribute).stem(x)


class BaseHolder(nn.Module):
  """``base_resnet``: a whole ResNet, of which layer1–4 run."""

  def __init__(self, resnet):
    super().__init__()
    self.base = resnet


NON_LOCAL_PER_STAGE = (0, 2, 3, 0)


class EmbedNet(nn.Module):
  """AGW ``embed_net`` (spec §4.2–4.5); ``forward(x1, x2, modal)`` as the reference."""

  def __init__(
      self, num_classes, depth=50, width=64, non_local=True, inner='reference', gem=True,
      with_fc=True,
  ):
    super().__init__()

    def resnet():
      return TorchvisionResNet(depth, 1000, width, last_stride=1, with_fc=with_fc)

    self.thermal_module = StemHolder('thermal', resnet())
    self.visible_module = StemHolder('visible', resnet())
    self.base_resnet = BaseHolder(resnet())
    self.non_local = non_local
    _, blocks_per_stage = BLOCKS_PER_STAGE[depth]
    self.non_local_after = []
    if non_local:
      for stage, count in enumerate(NON_LOCAL_PER_STAGE):
        channels = width * 2**stage * 4
        inner_channels = 1 if inner == 'reference' else channels // 2
        setattr(
            self, f'NL_{stage + 1}',
            nn.ModuleList([NonLocal(channels, inner_channels) for _ in range(count)]),
        )
        # After the last `count` blocks of the stage.
        num_blocks = blocks_per_stage[stage]
        self.non_local_after.append(list(range(num_blocks - count, num_blocks)))
    feature_dim = self.base_resnet.base.out_channels
    self.bottleneck = nn.BatchNorm1d(feature_dim)
    self.bottleneck.bias.requires_grad_(False)
    nn.init.normal_(self.bottleneck.weight, 1.0, 0.01)
    nn.init.zeros_(self.bottleneck.bias)
    self.classifier = nn.Linear(feature_dim, num_classes, bias=False)
    nn.init.normal_(self.classifier.weight, 0.0, 0.001)
    self.gem = gem

  def forward(self, x1, x2, modal=0):
    if modal == 0:
      x = torch.cat((self.visible_module(x1), self.thermal_module(x2)), 0)
    elif modal == 1:
      x = self.visible_module(x1)
    else:
      x = self.thermal_module(x2)
    base = self.base_resnet.base
    for stage in range(4):
      layer = getattr(base, f'layer{stage + 1}')
      for i, block in enumerate(layer):
        x = block(x)
        if self.non_local and i in self.non_local_after[stage]:
          x = getattr(self, f'NL_{stage + 1}')[self.non_local_after[stage].index(i)](x)
    if self.gem:
      x_pool = (torch.mean(x.flatten(2) ** 3.0, dim=-1) + 1e-12) ** (1 / 3.0)
    else:
      x_pool = x.mean(dim=(2, 3))
    feat = self.bottleneck(x_pool)
    if self.training:
      return x_pool, self.classifier(feat)
    return x_pool / x_pool.norm(dim=1, keepdim=True), feat / feat.norm(dim=1, keepdim=True)


def randomize_batchnorms(module, seed, bnneck='bottleneck'):
  """Gives every BatchNorm non-trivial γ, β and running statistics.

  Fresh BNs (γ = 1, β = 0, mean 0, var 1) would hide a swapped or misplaced
  statistic; the non-local blocks' (and MCJA's MDAs') zero γ would make them the
  identity. The BNNeck's β (the module named ``bnneck``) stays 0: the references
  never train it.
  """
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, child in module.named_modules():
      if isinstance(child, nn.modules.batchnorm._BatchNorm):
        shape = child.weight.shape
        child.weight.copy_(0.5 + torch.rand(shape, generator=generator))
        child.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
        child.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
        if name != bnneck:
          child.bias.copy_(0.1 * torch.randn(shape, generator=generator))
  return module


def relative_error(ours, theirs):
  """max over rows of ||ours − theirs|| / ||theirs|| (features [B, D]), in float64."""
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  return np.max(np.linalg.norm(ours - theirs, axis=-1) / np.linalg.norm(theirs, axis=-1))
