"""DAN's losses and pseudo-label pieces in plain PyTorch, transcribed from `fuxianghuang1/DAN`
at bd0ce1e9 (spec dan.md §4, §5).

Imported by the DAN tests only, after ``pytest.importorskip("torch")``; pytest does not collect
it (no ``test_`` prefix). Nothing here comes from our JAX code: this is the independent side of
the comparison. Transcribed, with ``.cuda()`` calls dropped and ``np.float`` → ``float``:

* `model.py`: ``calc_coeff``, ``grl_hook``, ``init_weights``, ``Advers_net`` (the domain
  discriminator; its call counter ``iter_num`` and the GRL hook on its input).
* `gvb_loss.py`: ``Entropy``, ``Myloss``, ``GVB`` (summed BCE of σ(D(x)) against 1 for the first
  half of the rows, 0 for the second; the entropy weighting is computed and unused).
* `memory_table.py`: ``MemoryTable`` (``update``, ``update_reliables``, the four probability
  methods), and `train.py` ``loss_fn`` (RGB branch ``modal=0``, release IR branch ``modal=1``).
  Ours, marked [P]: ``nir_reliables_probability_symmetric`` and ``loss_fn(..., modal='symmetric')``,
  the symmetric IR branch (neighbour term over the RGB memory).
* `train.py` ``train``: the ``loss_mean`` / ``loss_va`` loop (:func:`release_cma`), plus ours
  [P]: :func:`corrected_cma`, a straightforward loop over shared classes with member-only
  statistics.
* `train.py` epoch loop: the halving source centres (:func:`release_centres`, batch by batch)
  and the ``argmax(-cdist)`` pseudo-labels (:func:`release_pseudo_labels`).

Unused variables of the authors' code (``bs``, ``gvbg``, ``weight``) are kept as written.
Both CMA functions skip negative labels (−1 = unlabelled, our convention; the release never
produces them).
"""

import numpy as np
import torch
import torch.nn as nn

# ------------------------------------------------------------------------- model.py


def calc_coeff(iter_num, high=1.0, low=0.0, alpha=10.0, max_iter=10000.0):
  return float(2.0 * (high - low) / (1.0 + np.exp(-alpha * iter_num / max_iter))
               - (high - low) + low)


def grl_hook(coeff):
  def fun1(grad):
    return -coeff * grad.clone()
  return fun1


def init_weights(m):
  classname = m.__class__.__name__
  if classname.find('Conv2d') != -1 or classname.find('ConvTranspose2d') != -1:
    nn.init.kaiming_uniform_(m.weight)
    nn.init.zeros_(m.bias)
  elif classname.find('BatchNorm') != -1:
    nn.init.normal_(m.weight, 1.0, 0.02)
    nn.init.zeros_(m.bias)
  elif classname.find('Linear') != -1:
    nn.init.kaiming_normal_(m.weight)
    nn.init.zeros_(m.bias)


class Advers_net(nn.Module):

  def __init__(self, in_feature, hidden_size):
    super(Advers_net, self).__init__()
    self.ad_layer1 = nn.Linear(in_feature, hidden_size)
    self.ad_layer2 = nn.Linear(hidden_size, hidden_size)
    self.ad_layer3 = nn.Linear(hidden_size, 1)
    self.relu1 = nn.ReLU()
    self.relu2 = nn.ReLU()
    self.dropout1 = nn.Dropout(0.5)
    self.dropout2 = nn.Dropout(0.5)
    self.dropout3 = nn.Dropout(0.5)
    self.sigmoid = nn.Sigmoid()
    self.apply(init_weights)
    self.iter_num = 0

  def forward(self, x):

    if self.training:
      self.iter_num += 1
    coeff = calc_coeff(self.iter_num)
    x = x * 1.0
    x.register_hook(grl_hook(coeff))
    x = self.ad_layer1(x)
    x = self.relu1(x)
    x = self.dropout1(x)
    x = self.ad_layer2(x)
    x = self.relu2(x)
    x = self.dropout2(x)
    y = self.ad_layer3(x)

    return y

  def output_num(self):
    return 1


# ---------------------------------------------------------------------- gvb_loss.py


class Myloss(nn.Module):

  def __init__(self, epsilon=1e-8):
    super(Myloss, self).__init__()
    self.epsilon = epsilon
    return

  def forward(self, input_, label, weight):
    entropy = - label * torch.log(input_ + self.epsilon) - (1 - label) * torch.log(
        1 - input_ + self.epsilon)
    return torch.sum(entropy * weight) / 2


def Entropy(input_):
  bs = input_.size(0)
  epsilon = 1e-5
  entropy = -input_ * torch.log(input_ + epsilon)
  entropy = torch.sum(entropy, dim=1)
  return entropy


def GVB(input_list, ad_net, coeff=None, myloss=Myloss(), GVBD=False):
  softmax_output = input_list[0]
  focals = input_list[1].reshape(-1)
  ad_out = ad_net(softmax_output)
  if GVBD == 1:
    ad_out = nn.Sigmoid()(ad_out)
  else:
    ad_out = nn.Sigmoid()(ad_out)
  batch_size = softmax_output.size(0) // 2
  dc_target = torch.from_numpy(np.array([[1]] * batch_size + [[0]] * batch_size)).float()

  x = softmax_output
  entropy = Entropy(x)
  entropy.register_hook(grl_hook(coeff))
  entropy = torch.exp(-entropy)
  mean_entropy = torch.mean(entropy)
  gvbg = torch.mean(torch.abs(focals))

  source_mask = torch.ones_like(entropy)
  source_mask[softmax_output.size(0) // 2:] = 0
  source_weight = entropy * source_mask
  target_mask = torch.ones_like(entropy)
  target_mask[0:softmax_output.size(0) // 2] = 0
  target_weight = entropy * target_mask
  weight = source_weight / torch.sum(source_weight).detach().item() + \
      target_weight / torch.sum(target_weight).detach().item()

  return torch.sum(nn.BCELoss(reduction='none')(ad_out, dc_target)), mean_entropy


# ------------------------------------------------------------------- memory_table.py


class MemoryTable(object):

  def __init__(self, reliable_num=5, lambda_p=0.5, lambda_c=1):
    self.reliable_num = reliable_num
    self.lambda_p = lambda_p
    self.lambda_c = lambda_c
    self.vis_reliables = []
    self.nir_reliables = []

  def vis_global_distance(self):
    return torch.cdist(self.rgb_vectors, self.rgb_vectors)

  def nir_global_distance(self):
    return torch.cdist(self.nir_vectors, self.nir_vectors)

  def overall_dissimilarity(self, global_dist):
    result = global_dist
    return result

  def update(self, rgb_vectors, nir_vectors, labels, labels2):
    self.rgb_vectors = rgb_vectors
    self.nir_vectors = nir_vectors
    self.label = labels
    self.label2 = labels2

  def update_reliables(self):
    vis_global_dist = self.vis_global_distance()
    nir_global_dist = self.nir_global_distance()

    vis_overall_diss = self.overall_dissimilarity(vis_global_dist)
    vis_overall_diss = vis_overall_diss.to('cpu')
    nir_overall_diss = self.overall_dissimilarity(nir_global_dist)
    nir_overall_diss = nir_overall_diss.to('cpu')

    self.vis_reliables = vis_overall_diss.argsort(dim=1)[:, 1:self.reliable_num + 1]
    self.nir_reliables = nir_overall_diss.argsort(dim=1)[:, 1:self.reliable_num + 1]

  def vis_probability(self, outputs, targets, t=0.1):
    cls_prob = torch.exp((self.nir_vectors[targets] * outputs).sum(dim=1) / t)
    sum_prob = torch.exp(outputs.matmul(self.nir_vectors.T) / t).sum(dim=1)
    return cls_prob / sum_prob

  def nir_probability(self, outputs, targets, t=0.1):
    cls_prob = torch.exp((self.rgb_vectors[targets] * outputs).sum(dim=1) / t)
    sum_prob = torch.exp(outputs.matmul(self.rgb_vectors.T) / t).sum(dim=1)
    return cls_prob / sum_prob

  def vis_reliables_probability(self, outputs, targets, labels, t=0.1):
    mask = torch.eq(self.label[targets], labels).type(torch.LongTensor)
    cls_prob = torch.exp((self.nir_vectors[targets] * outputs).sum(dim=1) / t)
    sum_prob = torch.exp(outputs.matmul(self.nir_vectors.T) / t).sum(dim=1)
    return mask * torch.log(cls_prob / sum_prob)

  def nir_reliables_probability(self, outputs, targets, labels, t=0.1):
    mask = torch.eq(self.label2[targets], labels).type(torch.LongTensor)
    cls_prob = torch.exp((self.nir_vectors[targets] * outputs).sum(dim=1) / t)
    sum_prob = torch.exp(outputs.matmul(self.nir_vectors.T) / t).sum(dim=1)
    return mask * torch.log(cls_prob / sum_prob)

  def nir_reliables_probability_symmetric(self, outputs, targets, labels, t=0.1):
    """Ours [P]: ``nir_reliables_probability`` with the softmax over the RGB memory."""
    mask = torch.eq(self.label2[targets], labels).type(torch.LongTensor)
    cls_prob = torch.exp((self.rgb_vectors[targets] * outputs).sum(dim=1) / t)
    sum_prob = torch.exp(outputs.matmul(self.rgb_vectors.T) / t).sum(dim=1)
    return mask * torch.log(cls_prob / sum_prob)


# --------------------------------------------------------------------------- train.py


def loss_fn(outputs, targets, label, memory_tb, t=1, ld=0.4, modal=0):
  """`train.py` ``loss_fn``; ``modal='symmetric'`` is ours [P]."""
  if modal == 0:
    prob = -ld * torch.log(memory_tb.vis_probability(outputs, targets, t))
    reliables = torch.LongTensor(memory_tb.vis_reliables[targets]).T.tolist()
    reliables_prob = torch.stack(list(map(
        lambda r: memory_tb.vis_reliables_probability(outputs, r, label, t), reliables))).T
    reliables_prob = -((1 - ld) / len(reliables)) * (reliables_prob.sum(dim=1))
  elif modal == 1:
    prob = -ld * torch.log(memory_tb.nir_probability(outputs, targets, t))
    reliables = torch.LongTensor(memory_tb.nir_reliables[targets]).T.tolist()
    reliables_prob = torch.stack(list(map(
        lambda r: memory_tb.nir_reliables_probability(outputs, r, label, t), reliables))).T
    reliables_prob = -((1 - ld) / len(reliables)) * (reliables_prob.sum(dim=1))
  else:  # 'symmetric' [P]
    prob = -ld * torch.log(memory_tb.nir_probability(outputs, targets, t))
    reliables = torch.LongTensor(memory_tb.nir_reliables[targets]).T.tolist()
    reliables_prob = torch.stack(list(map(
        lambda r: memory_tb.nir_reliables_probability_symmetric(outputs, r, label, t),
        reliables))).T
    reliables_prob = -((1 - ld) / len(reliables)) * (reliables_prob.sum(dim=1))
  return (prob + reliables_prob).mean()


def release_cma(norm_feat2, label3, label4):
  """The ``loss_mean`` / ``loss_va`` loop of `train.py` ``train``: ``norm_feat2`` is the target
  forward's output (RGB rows first), ``label3`` / ``label4`` the RGB / IR pseudo-labels. Only the
  first ``label3.size(0)`` rows (the RGB half) are read."""
  loss_mean = 0
  loss_va = 0
  l3 = label3.cpu().detach().numpy()
  l3u = np.unique(l3)

  l4 = label4.cpu().detach().numpy()
  l4u = np.unique(l4)

  for i in l3u:
    if i < 0:  # ours: −1 = unlabelled never counts
      continue
    if i in l4u:
      apre = torch.tensor(np.full((label3.size()), i) == l3 + 0)
      apre = apre.view(label3.size(0), 1)
      apre = apre.expand(norm_feat2[:label3.size(0)].size())
      bpre = torch.tensor(np.full((label4.size()), i) == l4 + 0)
      bpre = bpre.view(label4.size(0), 1)
      bpre = bpre.expand(norm_feat2[:label3.size(0)].size())

      a = (apre * norm_feat2[:label3.size(0)]).mean(0)

      b = (bpre * norm_feat2[:label3.size(0)]).mean(0)
      c = (apre * norm_feat2[:label3.size(0)]).std(0)
      d = (bpre * norm_feat2[:label3.size(0)]).std(0)

      loss_mean += torch.norm(a - b)
      loss_va += torch.norm(c - d)
  return loss_mean, loss_va


def corrected_cma(visible, infrared, visible_labels, infrared_labels):
  """Ours [P] (spec §5.3 resolution): for each label c ≥ 0 in both halves, ‖μᵛ_c − μⁱ_c‖ over the
  members of each half; ‖σᵛ_c − σⁱ_c‖ (unbiased std) only when both halves have ≥ 2 members."""
  loss_mean = torch.zeros(())
  loss_std = torch.zeros(())
  shared = set(visible_labels.tolist()) & set(infrared_labels.tolist())
  for c in sorted(shared):
    if c < 0:
      continue
    members_v = visible[visible_labels == c]
    members_i = infrared[infrared_labels == c]
    loss_mean = loss_mean + torch.norm(members_v.mean(0) - members_i.mean(0))
    if len(members_v) >= 2 and len(members_i) >= 2:
      loss_std = loss_std + torch.norm(members_v.std(0) - members_i.std(0))
  return loss_mean, loss_std


def release_centres(feature_batches, label_batches, num_classes, dim):
  """`train.py`'s centre pass for one modality: per source batch (3 ids × 4 images), chunk the
  eval features by the batch's number of distinct labels and halve-average into the centre of
  ``label[j * 4]``."""
  center = torch.zeros(num_classes, dim)
  for feat1, label1 in zip(feature_batches, label_batches):
    label_num = len(label1.unique())
    feat1 = feat1.chunk(label_num, 0)
    for j in range(label_num):
      center[label1[j * 4]] = (center[label1[j * 4]]
                               + torch.mean(feat1[j], dim=0).unsqueeze(0)) / 2
  return center


def release_pseudo_labels(feat1, center):
  """`train.py`'s pseudo-label pass for one modality: ``argmax(-cdist(feat, center))``."""
  dist = torch.cdist(feat1, center)
  return torch.argmax(-dist, dim=1)
