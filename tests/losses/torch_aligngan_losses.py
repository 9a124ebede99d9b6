"""AlignGAN's losses in PyTorch, transcribed from the reference (spec aligngan.md §3):
`tools/metric.py` (``cosine``), `tools/loss2.py` (``RankingLoss``, ``TripletLoss``; the
``metric is 'cosine'`` / ``more_similar is 'larger'`` string identity tests written as ``==``,
the unused 'smaller' branch dropped), `core/base.py` (``generate_wrong_images``, the
criteria), and the loss combinations of `core/train.py` / `core/warmup.py` on NCHW
[B, 1, 4, 4] scores. Imported by the tests after ``pytest.importorskip("torch")``; the
independent side of the comparison."""

import torch
from torch import nn


def cosine(inputs_1, inputs_2):
  bs1 = inputs_1.size()[0]
  bs2 = inputs_2.size()[0]
  frac_up = torch.matmul(inputs_1, inputs_2.transpose(0, 1))
  frac_down = (torch.sqrt(torch.sum(torch.pow(inputs_1, 2), 1))).view(bs1, 1).repeat(1, bs2) * \
              (torch.sqrt(torch.sum(torch.pow(inputs_2, 2), 1))).view(1, bs2).repeat(bs1, 1)
  return frac_up / frac_down


class TripletLoss:
  """``TripletLoss(margin, soft_bh, 'cosine')`` of `tools/loss2.py`."""

  def __init__(self, margin, soft_bh=(0, 0)):
    self.margin_loss = nn.MarginRankingLoss(margin=margin)
    self.soft_bh = soft_bh

  @staticmethod
  def _label2similarity(label1, label2):
    m, n = len(label1), len(label2)
    l1 = label1.view(m, 1).expand([m, n])
    l2 = label2.view(n, 1).expand([n, m]).t()
    return l1 == l2

  def _batch_hard_larger(self, mat_distance, mat_similarity):
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
    hard_p, _ = self._batch_hard_larger(mat_dist, mat_sim.float())

    mat_dist = cosine(emb1, emb3)
    mat_sim = self._label2similarity(label1, label3)
    _, hard_n = self._batch_hard_larger(mat_dist, mat_sim.float())

    margin_label = -torch.ones_like(hard_p)
    return self.margin_loss(hard_n, hard_p, margin_label)


def generate_wrong_images(images, pids):
  """`core/base.py`: the batch moved up by 4 places, the first 4 appended at the end."""
  wrong_images = torch.cat([images[4:, :, :, :], images[:4, :, :, :]], dim=0)
  wrong_pids = torch.cat([pids[4:], pids[:4]])
  return wrong_images, wrong_pids


criterion_gan_mse = nn.MSELoss()
criterion_l1 = nn.L1Loss()


def targets(batch):
  """``base.ones`` / ``base.zeros``: [B, 1, 4, 4] constant targets."""
  return torch.ones([batch, 1, 4, 4]), torch.zeros([batch, 1, 4, 4])


def discriminator_rgb_loss(real_scores, fake_scores):
  """`core/train.py` "discriminator rgb" (and both warm-up discriminators)."""
  ones, zeros = targets(real_scores.size(0))
  gan_loss_rgb_real = criterion_gan_mse(real_scores, ones)
  gan_loss_rgb_fake = criterion_gan_mse(fake_scores, zeros)
  return (gan_loss_rgb_real + gan_loss_rgb_fake) / 2.0


def generator_gan_loss(rgb_fake_scores, ir_fake_scores):
  """`core/train.py` / `core/warmup.py` generator "gan loss"."""
  ones, _ = targets(rgb_fake_scores.size(0))
  gan_loss_rgb = criterion_gan_mse(rgb_fake_scores, ones)
  gan_loss_ir = criterion_gan_mse(ir_fake_scores, ones)
  return (gan_loss_rgb + gan_loss_ir) / 2.0


def feature_gan_loss(logits):
  """`core/train.py` feature step: ``criterion_gan_mse(logits, torch.ones_like(logits))``."""
  return criterion_gan_mse(logits, torch.ones_like(logits))


def discriminator_ir_loss(real, fake_1, fake_2, fake_3, fake_4):
  """`core/train.py` "discriminator ir"."""
  ones, zeros = targets(real.size(0))
  gan_loss_ir_real = criterion_gan_mse(real, ones)
  gan_loss_ir_fake = (criterion_gan_mse(fake_1, zeros) + criterion_gan_mse(fake_2, zeros)
                      + criterion_gan_mse(fake_3, zeros) + criterion_gan_mse(fake_4, zeros)) / 4.0
  return (gan_loss_ir_real + gan_loss_ir_fake) / 2.0
