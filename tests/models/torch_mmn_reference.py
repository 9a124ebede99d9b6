"""MMN's reference network and DCL in plain PyTorch, transcribed from `ZYK100/MMN`'s
`model.py` and `loss.py` (spec mmn.md §3–4).

Imported by the MMN tests only, after ``pytest.importorskip("torch")``: the independent side
of the comparison. The ResNets are ``tests.models.torch_reference.TorchvisionResNet`` (last
stride 1) held as the reference holds them, so the state dict has its keys.
"""

import torch
import torch.nn.functional as F
from torch import nn

from tests.models.torch_reference import BaseHolder, StemHolder, TorchvisionResNet


class EmbedNet(nn.Module):
  """`model.py`'s `embed_net`; `forward(x1, x2, modal)` as the reference (training: the four
  stripe features and logits; evaluation: L2(concat pool), L2(concat bn) of [x; M])."""

  def __init__(self, class_num, width=64, depth=50):
    super().__init__()

    def resnet():
      return TorchvisionResNet(depth, 1000, width, last_stride=1)

    self.thermal_module = StemHolder('thermal', resnet())
    self.visible_module = StemHolder('visible', resnet())
    self.base_resnet = BaseHolder(resnet())
    pool_dim = self.base_resnet.base.out_channels
    for k in range(1, 5):
      bottleneck = nn.BatchNorm1d(pool_dim)
      bottleneck.bias.requires_grad_(False)
      nn.init.normal_(bottleneck.weight, 1.0, 0.01)
      nn.init.zeros_(bottleneck.bias)
      classifier = nn.Linear(pool_dim, class_num, bias=False)
      nn.init.normal_(classifier.weight, 0, 0.001)
      setattr(self, f'bottleneck{k}', bottleneck)
      setattr(self, f'classifier{k}', classifier)
    self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    for suffix in ('1', '2'):
      setattr(self, f'encode{suffix}', nn.Conv2d(3, 1, 1))
      setattr(self, f'fc{suffix}', nn.Conv2d(1, 1, 1))
      setattr(self, f'bn{suffix}', nn.BatchNorm2d(1))
    self.decode = nn.Conv2d(1, 3, 1)
    for conv in (self.encode1, self.fc1, self.encode2, self.fc2, self.decode):
      nn.init.constant_(conv.weight, 0.333)
      nn.init.constant_(conv.bias, 0.0)

  def forward(self, x1, x2, modal=0):
    if modal == 0:
      gray1 = F.relu(self.encode1(x1))
      gray1 = self.bn1(F.relu(self.fc1(gray1)))
      gray2 = F.relu(self.encode2(x2))
      gray2 = self.bn2(F.relu(self.fc2(gray2)))
      gray = F.relu(self.decode(torch.cat((gray1, gray2), 0)))
      gray1, gray2 = torch.chunk(gray, 2, 0)
      x1 = self.visible_module(torch.cat((x1, gray1), 0))
      x2 = self.thermal_module(torch.cat((x2, gray2), 0))
      x = torch.cat((x1, x2), 0)
    elif modal == 1:
      gray1 = F.relu(self.encode1(x1))
      gray1 = self.bn1(F.relu(self.fc1(gray1)))
      gray1 = F.relu(self.decode(gray1))
      x = self.visible_module(torch.cat((x1, gray1), 0))
    else:
      gray2 = F.relu(self.encode2(x2))
      gray2 = self.bn2(F.relu(self.fc2(gray2)))
      gray2 = F.relu(self.decode(gray2))
      x = self.thermal_module(torch.cat((x2, gray2), 0))
    base = self.base_resnet.base
    x = base.layer4(base.layer3(base.layer2(base.layer1(x))))
    stripes = [self.avgpool(part).flatten(1) for part in torch.chunk(x, 4, 2)]
    feats = [getattr(self, f'bottleneck{k + 1}')(stripe) for k, stripe in enumerate(stripes)]
    if self.training:
      return (*stripes, *[getattr(self, f'classifier{k + 1}')(feat)
                          for k, feat in enumerate(feats)])
    pool, fc = torch.cat(stripes, 1), torch.cat(feats, 1)
    return pool / pool.norm(dim=1, keepdim=True), fc / fc.norm(dim=1, keepdim=True)


class DCLoss(nn.Module):
  """`loss.py`'s `DCLoss` (its 2048 input width a parameter)."""

  def __init__(self, num=2, in_features=2048):
    super().__init__()
    self.num = num
    self.fc1 = nn.Sequential(nn.Linear(in_features, 256, bias=False))
    self.fc2 = nn.Sequential(nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 256),
                             nn.BatchNorm1d(256))

  def forward(self, x):
    x = F.normalize(x)
    x = self.fc2(self.fc1(x))
    x = F.normalize(x)
    loss = 0
    num = int(x.size(0) / self.num)
    for i in range(self.num):
      for j in range(self.num):
        if i < j:
          loss += ((x[i * num:(i + 1) * num, :] - x[j * num:(j + 1) * num, :])
                   .norm(dim=1, keepdim=True)).mean()
    return loss

  def projection(self):
    """Its parameters in `losses.distribution_consistency_loss`'s layout."""
    numpy = lambda tensor: tensor.detach().numpy()
    return {"linear1": {"kernel": numpy(self.fc1[0].weight).T},
            "bn1": {"scale": numpy(self.fc2[0].weight), "bias": numpy(self.fc2[0].bias)},
            "linear2": {"kernel": numpy(self.fc2[2].weight).T, "bias": numpy(self.fc2[2].bias)},
            "bn2": {"scale": numpy(self.fc2[3].weight), "bias": numpy(self.fc2[3].bias)}}
