"""CAJ's losses in PyTorch, transcribed from the reference's `ICCV21_CAJ/loss.py` (spec
baseline_data_eval.md §5.5–5.6): `pdist_torch`, `softmax_weights`, `TripletLoss_ADP` and
`KLDivLoss` (its `.cuda()` dropped). Imported by the tests after
``pytest.importorskip("torch")``; the independent side of the comparison."""

import torch
import torch.nn.functional as F
from torch import nn


def pdist_torch(emb1, emb2):
  m, n = emb1.shape[0], emb2.shape[0]
  emb1_pow = torch.pow(emb1, 2).sum(dim=1, keepdim=True).expand(m, n)
  emb2_pow = torch.pow(emb2, 2).sum(dim=1, keepdim=True).expand(n, m).t()
  dist_mtx = emb1_pow + emb2_pow
  dist_mtx = dist_mtx.addmm(emb1, emb2.t(), beta=1, alpha=-2)
  return dist_mtx.clamp(min=1e-12).sqrt()


def softmax_weights(dist, mask):
  max_v = torch.max(dist * mask, dim=1, keepdim=True)[0]
  diff = dist - max_v
  z = torch.sum(torch.exp(diff) * mask, dim=1, keepdim=True) + 1e-6
  return torch.exp(diff) * mask / z


class TripletLossADP(nn.Module):
  def __init__(self, alpha=1, gamma=1, square=0):
    super().__init__()
    self.ranking_loss = nn.SoftMarginLoss()
    self.alpha, self.gamma, self.square = alpha, gamma, square

  def forward(self, inputs, targets):
    dist_mat = pdist_torch(inputs, inputs)
    n = dist_mat.size(0)
    is_pos = targets.expand(n, n).eq(targets.expand(n, n).t()).float()
    is_neg = targets.expand(n, n).ne(targets.expand(n, n).t()).float()
    dist_ap = dist_mat * is_pos
    dist_an = dist_mat * is_neg
    weights_ap = softmax_weights(dist_ap * self.alpha, is_pos)
    weights_an = softmax_weights(-dist_an * self.alpha, is_neg)
    furthest_positive = torch.sum(dist_ap * weights_ap, dim=1)
    closest_negative = torch.sum(dist_an * weights_an, dim=1)
    if self.square == 0:
      y = torch.ones_like(furthest_positive)
      return self.ranking_loss(self.gamma * (closest_negative - furthest_positive), y)
    diff_pow = torch.pow(furthest_positive - closest_negative, 2) * self.gamma
    diff_pow = torch.clamp_max(diff_pow, max=88)
    y1 = (furthest_positive > closest_negative).float()
    y2 = y1 - 1
    y = -(y1 + y2)
    return self.ranking_loss(diff_pow, y)


class KLDivLoss(nn.Module):
  def forward(self, pred, label):
    t = 3
    predict = F.log_softmax(pred / t, dim=1)
    target = (F.softmax(label / t, dim=1) + 10 ** (-7)).detach()
    return t * t * ((target * (target.log() - predict)).sum(1).sum() / target.size()[0])
