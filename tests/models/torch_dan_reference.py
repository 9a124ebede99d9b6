"""DAN's networks in plain PyTorch, transcribed from `fuxianghuang1/DAN` (bd0ce1e9) `model.py`.

Imported by the DAN tests only, after ``pytest.importorskip("torch")``; not collected (no
``test_`` prefix). Nothing here comes from our JAX code.

* :class:`DanEmbedNet`: ``embed_net``. ``visible_module.visible`` and ``thermal_module.thermal``
  hold whole ResNets of which the stems run; ``share_resnet.backone`` is the Sequential of a
  third ResNet's layer1–4; ``AdaptiveMaxPool2d`` pooling; ``bottleneck`` (β frozen),
  ``classifier``; the GVB leftovers ``bottleneck2``, ``classifier2``, ``reduction``, ``bridge``
  exist with the reference's shapes. Evaluation returns ``(l2(reduction(bottleneck(s))),
  l2(s))`` as the reference does; ``bn_feature`` gives l2(bottleneck(s)).
* :class:`AdversNet`: ``Advers_net`` without its gradient hook (the GRL is tested in
  tests/losses/test_dan_losses.py): Linear–ReLU–Dropout ×2 → Linear(→1), ``init_weights``.
"""

import torch
from torch import nn

from tests.models.torch_reference import StemHolder, TorchvisionResNet


class ShareResnet(nn.Module):
  def __init__(self, resnet):
    super().__init__()
    self.backone = nn.Sequential(resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)

  def forward(self, x):
    return self.backone(x)


class DanEmbedNet(nn.Module):
  """``embed_net(class_num)`` of DAN's model.py (no_local / gm_pool have no effect there)."""

  def __init__(self, class_num, depth=50, width=64):
    super().__init__()
    resnet = lambda: TorchvisionResNet(depth, 1000, width, last_stride=1, with_fc=False)
    self.thermal_module = StemHolder('thermal', resnet())
    self.visible_module = StemHolder('visible', resnet())
    shared = resnet()
    self.share_resnet = ShareResnet(shared)
    pool_dim = shared.out_channels
    self.maxpool = nn.AdaptiveMaxPool2d((1, 1))
    self.bottleneck = nn.BatchNorm1d(pool_dim)
    self.bottleneck.bias.requires_grad_(False)
    self.bottleneck2 = nn.BatchNorm1d(512)
    self.bottleneck2.bias.requires_grad_(False)
    self.classifier = nn.Linear(pool_dim, class_num, bias=False)
    self.classifier2 = nn.Linear(512, 2, bias=False)
    self.reduction = nn.Linear(pool_dim, 512, bias=False)
    self.bridge = nn.Linear(512, class_num, bias=False)
    # weights_init_kaiming on the BatchNorm1d's, weights_init_classifier on the Linears.
    for bn in (self.bottleneck, self.bottleneck2):
      nn.init.normal_(bn.weight, 1.0, 0.01)
      nn.init.zeros_(bn.bias)
    for linear in (self.classifier, self.bridge, self.reduction):
      nn.init.normal_(linear.weight, 0, 0.001)

  def pooled(self, x1, x2, modal=0):
    if modal == 0:
      x = torch.cat((self.visible_module(x1), self.thermal_module(x2)), 0)
    elif modal == 1:
      x = self.visible_module(x1)
    else:
      x = self.thermal_module(x2)
    s = self.maxpool(self.share_resnet(x))
    return s.view(s.size(0), s.size(1))

  def forward(self, x1, x2, modal=0):
    s = self.pooled(x1, x2, modal)
    share_feat1 = self.bottleneck(s)
    share_feat = self.reduction(share_feat1)
    bridge = self.bridge(share_feat)
    i_predict = self.classifier(share_feat1)
    if self.training:
      return share_feat1, i_predict - bridge, bridge
    l2 = lambda v: v.div(v.pow(2).sum(1, keepdim=True).pow(0.5))
    return l2(share_feat), l2(s)

  def bn_feature(self, x1, x2, modal):
    """l2(bottleneck(s)): the "bn" evaluation feature dan.md §2.2 defines."""
    b = self.bottleneck(self.pooled(x1, x2, modal))
    return b.div(b.pow(2).sum(1, keepdim=True).pow(0.5))


class AdversNet(nn.Module):
  """``Advers_net(in_feature, hidden_size)`` (model.py), without the GRL hook."""

  def __init__(self, in_feature, hidden_size):
    super().__init__()
    self.ad_layer1 = nn.Linear(in_feature, hidden_size)
    self.ad_layer2 = nn.Linear(hidden_size, hidden_size)
    self.ad_layer3 = nn.Linear(hidden_size, 1)
    self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
    self.dropout1, self.dropout2 = nn.Dropout(0.5), nn.Dropout(0.5)
    for layer in (self.ad_layer1, self.ad_layer2, self.ad_layer3):   # init_weights
      nn.init.kaiming_normal_(layer.weight)
      nn.init.zeros_(layer.bias)

  def forward(self, x):
    x = self.dropout1(self.relu1(self.ad_layer1(x)))
    x = self.dropout2(self.relu2(self.ad_layer2(x)))
    return self.ad_layer3(x)
