"""DJANet's reference network in plain PyTorch, transcribed from `Hmn-92/DJANet`'s
`model/model.py` (spec djanet.md §4).

Imported by the DJANet tests only, after ``pytest.importorskip("torch")``: the independent side
of the comparison. mamba_ssm's CUDA kernels give way to its pure-PyTorch reference path
(`tests.models.test_mamba.ReferenceMamba`: `selective_scan_ref` and the Conv1d causal fallback),
which compute the same function. Every module the reference builds is built, used or not
(the unused `mambablock*`, `ATT_narrow*`, `ATT_broad`, `mlp`, `ln_2`, `local_conv`,
`feat_bn2d`, the stems' layer1–4), so the state dict has exactly its keys. The depth, width,
input size and Mamba state size are arguments so that tests can also build small ones.
"""

from collections import OrderedDict

import torch
from torch import nn

from tests.models.test_mamba import ReferenceMamba
from tests.models.torch_reference import (BLOCKS_PER_STAGE, BaseHolder, NonLocal, StemHolder,
                                          TorchvisionResNet)


class FFN(nn.Module):
  def __init__(self, dim):
    super().__init__()
    self.fc1, self.act, self.fc2 = nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim)
    for linear in (self.fc1, self.fc2):
      nn.init.trunc_normal_(linear.weight, std=0.02)
      nn.init.zeros_(linear.bias)

  def forward(self, x):
    return self.fc2(self.act(self.fc1(x)))


class MambaLayer(nn.Module):
  def __init__(self, dim, d_state):
    super().__init__()
    self.norm1 = nn.LayerNorm(dim)
    self.mamba = ReferenceMamba(dim, d_state=d_state, d_conv=4, expand=2)
    self.norm2 = nn.LayerNorm(dim)
    self.mlp = FFN(dim)

  def forward(self, x):                     # [B, C, L] → [B, C, L]
    x_flat = x.permute(0, 2, 1)
    residual_output = x_flat + self.mamba(self.norm1(x_flat))
    return self.mlp(self.norm2(residual_output)).permute(0, 2, 1)


class QuickGELU(nn.Module):
  def forward(self, x):
    return x * torch.sigmoid(1.702 * x)


class LayerATT(nn.Module):
  def __init__(self, channel, edim, redic, channel_layer, H, W, d_state):
    super().__init__()
    self.ATT_narrow = nn.Conv2d(channel, channel // 4, 1)
    self.ATT_broad = nn.Conv2d(channel // 4, channel, 1)
    self.mamba_broad = nn.Conv2d(channel // 4, channel, 1)
    self.attn = nn.MultiheadAttention(embed_dim=edim, num_heads=edim // redic, batch_first=True)
    self.ln_1 = nn.LayerNorm(edim)
    self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(edim, edim * 4)),
                                          ("gelu", QuickGELU()),
                                          ("c_proj", nn.Linear(edim * 4, edim))]))
    self.ln_2 = nn.LayerNorm(edim)
    self.ln_1o = nn.LayerNorm(edim)
    self.ATT_narrow1 = nn.Conv2d(channel_layer, channel // 4, 6, 4, 2)
    self.ATT_narrow2 = nn.Conv2d(channel_layer, channel // 4, 4, 2, 1)
    self.H, self.W = H, W
    self.mambablock = MambaLayer(channel // 4, d_state)
    self.mambablock_2 = MambaLayer(channel // 4, d_state)

  def forward(self, x, x_ori, layer):
    if layer == 3:
      x_ori = self.ATT_narrow(x_ori)
    else:
      x_ori = (self.ATT_narrow1 if layer in (0, 1) else self.ATT_narrow2)(x_ori)
    x = self.ATT_narrow(x)
    channel = x.size(1)
    x = self.ln_1(x.view(x.size(0), channel, -1))
    x_ori = self.ln_1o(x_ori.view(x.size(0), channel, -1))
    x = x + 0.1 * x_ori
    x = x + self.attn(x, x_ori, x_ori, need_weights=False)[0]
    x = x + self.mambablock_2(x) if layer == 3 else self.mambablock(x)
    return self.mamba_broad(x.view(x.size(0), channel, self.H, self.W))


NON_LOCAL_PER_STAGE = (0, 2, 3, 0)


class EmbedNet(nn.Module):
  """`embed_net(class_num, no_local='on', gm_pool='on')`; `forward(x1_1, x1_2, x2_1, x2_2,
  modal)` as the reference (training: (x_pool, logits, 0); evaluation: (L2 x_pool, L2 feat))."""

  def __init__(self, class_num, *, depth=50, width=64, image_size=(384, 192), d_state=64):
    super().__init__()

    def resnet():
      return TorchvisionResNet(depth, 1000, width, last_stride=1, with_fc=False)

    self.thermal_module = StemHolder('thermal', resnet())
    self.visible_module = StemHolder('visible', resnet())
    self.thermal_moduleA = StemHolder('thermal', resnet())
    self.visible_moduleA = StemHolder('visible', resnet())
    self.base_resnet = BaseHolder(resnet())
    _, blocks_per_stage = BLOCKS_PER_STAGE[depth]
    expansion = self.base_resnet.base.out_channels // (8 * width)
    self.non_local_after = []
    for stage, count in enumerate(NON_LOCAL_PER_STAGE):
      channels = width * 2**stage * expansion
      num_blocks = blocks_per_stage[stage]
      count = min(count, num_blocks)        # small ResNets: one after every block at most
      setattr(self, f'NL_{stage + 1}',
              nn.ModuleList([NonLocal(channels, channels // 2) for _ in range(count)]))
      self.non_local_after.append(list(range(max(num_blocks - count, 0), num_blocks)))
    pool_dim = self.base_resnet.base.out_channels
    self.bottleneck = nn.BatchNorm1d(pool_dim)
    self.bottleneck.bias.requires_grad_(False)
    nn.init.normal_(self.bottleneck.weight, 1.0, 0.01)
    nn.init.zeros_(self.bottleneck.bias)
    self.classifier = nn.Linear(pool_dim, class_num, bias=False)
    nn.init.normal_(self.classifier.weight, 0, 0.001)
    self.local_conv = nn.Conv2d(width, 128, 1, bias=False)
    self.feat_bn2d = nn.BatchNorm2d(128)
    height, width_3 = image_size[0] // 16, image_size[1] // 16
    channel = width * 4 * expansion
    taps = (width, width * expansion, width * 2 * expansion, channel)
    for index, tap in enumerate(taps):
      setattr(self, f'layerATT{index}', LayerATT(channel, height * width_3, 9, tap, height,
                                                 width_3, d_state))

  def forward(self, x1_1, x1_2, x2_1, x2_2, modal=0):
    if modal == 0:
      x = torch.cat((self.visible_module(x1_1), self.visible_moduleA(x1_2),
                     self.thermal_module(x2_1), self.thermal_moduleA(x2_2)), 0)
    elif modal == 1:
      x = (self.visible_module(x1_1) + self.visible_moduleA(x1_2)) / 2
    else:
      x = (self.thermal_module(x2_1) + self.thermal_moduleA(x2_2)) / 2
    base = self.base_resnet.base
    taps = []
    for stage in range(3):
      taps.append(x)
      for i, block in enumerate(getattr(base, f'layer{stage + 1}')):
        x = block(x)
        if i in self.non_local_after[stage]:
          x = getattr(self, f'NL_{stage + 1}')[self.non_local_after[stage].index(i)](x)
    taps.append(x)
    for index, tap in enumerate(taps):
      x = getattr(self, f'layerATT{index}')(x, tap, index)
    x = base.layer4(x).float()
    x_pool = (torch.mean(x.flatten(2) ** 3.0, dim=-1) + 1e-12) ** (1 / 3.0)
    feat = self.bottleneck(x_pool)
    if self.training:
      return x_pool, self.classifier(feat), torch.zeros(())
    return x_pool / x_pool.norm(dim=1, keepdim=True), feat / feat.norm(dim=1, keepdim=True)


def randomize(net, seed):
  """Non-trivial values for everything a fresh net leaves at a constant: BatchNorm and
  LayerNorm affine and BatchNorm statistics, attention and FFN biases, Mamba A_log and D; the
  four stems made distinct (they start as copies of one ImageNet ResNet in the reference)."""
  from tests.models.torch_reference import randomize_batchnorms
  randomize_batchnorms(net, seed)
  generator = torch.Generator().manual_seed(seed + 1)
  uniform = lambda tensor, low, high: tensor.copy_(
      low + (high - low) * torch.rand(tensor.shape, generator=generator))
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, nn.LayerNorm):
        uniform(module.weight, 0.5, 1.5)
        uniform(module.bias, -0.3, 0.3)
      elif isinstance(module, nn.MultiheadAttention):
        uniform(module.in_proj_bias, -0.2, 0.2)
        uniform(module.out_proj.bias, -0.2, 0.2)
      elif isinstance(module, FFN):
        uniform(module.fc1.bias, -0.1, 0.1)
        uniform(module.fc2.bias, -0.1, 0.1)
      elif isinstance(module, ReferenceMamba):
        module.A_log.add_(0.3 * torch.randn(module.A_log.shape, generator=generator))
        uniform(module.D, 0.5, 1.5)
  return net
