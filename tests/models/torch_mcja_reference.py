"""The MCJA reference network in plain PyTorch, transcribed from its `models/mcja.py` and
`models/modules/mda.py` (spec mcja.md §2–3).

Imported by the MCJA tests only, after ``pytest.importorskip("torch")``. Nothing here comes
from our JAX code: this is the independent side of the comparison. The backbone is
torchvision's ResNet layout (``tests.models.torch_reference.TorchvisionResNet``, with ``fc``
as the reference's own resnet.py has); the state dict has the reference's keys:
``backbone.*``, ``MDA_{1-4}.{k}.{sc_conv,ca_conv,ca_bn,norm_bn}.*``, ``bn_neck.*``,
``classifier.weight``. ``randomize_batchnorms(net, seed, bnneck="bn_neck")`` gives every
BatchNorm (each MDA's zero-init output BatchNorm included) non-trivial values.
"""

import torch
from torch import nn

from tests.models.torch_reference import TorchvisionResNet
from tests.models.torch_reference import randomize_batchnorms


class MDA(nn.Module):
  """`models/modules/mda.py`, line for line (NCHW)."""

  def __init__(self, in_channels, inter_ratio=2, m_num=2):
    super().__init__()
    self.in_channels, self.inter_ratio, self.m_num = in_channels, inter_ratio, m_num
    self.planes = in_channels // inter_ratio      # unused, as in the reference
    self.sc_conv = nn.Conv2d(in_channels, m_num, kernel_size=1)
    self.softmax = nn.Softmax(dim=-1)
    self.ca_conv = nn.Conv1d(in_channels, in_channels, kernel_size=m_num, groups=in_channels,
                             bias=False)
    self.ca_bn = nn.BatchNorm1d(in_channels)
    self.norm_bn = nn.BatchNorm2d(in_channels)
    nn.init.constant_(self.norm_bn.weight, 0.0)
    nn.init.constant_(self.norm_bn.bias, 0.0)

  def forward(self, x):
    batch, channel, height, width = x.size()
    input_x = x.view(batch, channel, height * width).unsqueeze(1)
    context_mask = self.sc_conv(x).view(batch, self.m_num, height * width)
    context_mask = self.softmax(context_mask).unsqueeze(-1)
    context = torch.matmul(input_x, context_mask).squeeze(-1).permute(0, 2, 1)
    g = torch.sigmoid(self.ca_bn(self.ca_conv(context)))
    return self.norm_bn(x * g.view(batch, channel, 1, 1).expand_as(x)) + x


class MCJA(nn.Module):
  """`models/mcja.py`: ResNet-50 (last stride 2) with MDAs after the last [0, 2, 3, 0]
  blocks, GeM p = 3, BNNeck with a frozen zero bias, bias-free classifier.

  ``forward`` returns ``(gem, bn_neck(gem))``: in evaluation mode the reference returns the
  second; ``gem`` is what it feeds the BNNeck. ``width`` narrows the ResNet for cheap tests
  (the reference is 64).
  """

  def __init__(self, num_classes, mda_ratio=2, mda_m=2, width=64, mda_layers=(0, 2, 3, 0)):
    super().__init__()
    self.backbone = TorchvisionResNet(50, width=width, last_stride=2)
    self.base_dim = self.backbone.out_channels
    self.bn_neck = nn.BatchNorm1d(self.base_dim)
    nn.init.constant_(self.bn_neck.bias, 0)
    self.bn_neck.bias.requires_grad_(False)
    self.classifier = nn.Linear(self.base_dim, num_classes, bias=False)
    layers = [3, 4, 6, 3]
    channels = [width * 4 * 2**stage for stage in range(4)]
    for stage in range(4):
      count = mda_layers[stage]
      setattr(self, f'MDA_{stage + 1}', nn.ModuleList(
          [MDA(channels[stage], inter_ratio=mda_ratio, m_num=mda_m) for _ in range(count)]))
      setattr(self, f'MDA_{stage + 1}_idx', sorted(layers[stage] - (i + 1) for i in range(count))
              or [-1])

  def forward(self, inputs):
    feats = self.backbone.maxpool(self.backbone.relu(self.backbone.bn1(self.backbone.conv1(
        inputs))))
    for stage in range(1, 5):
      layer = getattr(self.backbone, f'layer{stage}')
      adapters, positions = getattr(self, f'MDA_{stage}'), getattr(self, f'MDA_{stage}_idx')
      counter = 0
      for i in range(len(layer)):
        feats = layer[i](feats)
        if i == positions[counter]:
          feats = adapters[counter](feats)
          counter += 1
    b, c, h, w = feats.shape
    embeddings = (torch.mean(feats.view(b, c, -1) ** 3.0, dim=-1) + 1e-12) ** (1 / 3.0)
    return embeddings, self.bn_neck(embeddings)
