"""A PyTorch transcription of MCJA's `losses/cm_retrieval_loss.py` (CMRetrievalLoss.forward),
with torchsort's L2 `soft_rank` written out as an autograd Function over a PAV.

soft_rank (torchsort 0.1.9, spec mcja.md §4.2): z = θ / ε sorted descending (s), w = (n, …, 1),
the non-increasing isotonic regression v of y = s − w by pool-adjacent-violators (a block
merges with the one before it while that one's mean is ≤ its own), r = s − v un-sorted. The
backward subtracts each block's mean of the incoming gradient and divides by ε, with the blocks
rebuilt from v (a new block where consecutive values differ by more than 1e-9), as torchsort
does. Everything runs in float64.
"""

import torch
from torch.nn import functional as F


def _isotonic_nonincreasing(y):
  """PAV: the non-increasing least-squares fit of the 1-D tensor y."""
  sums, counts = [], []
  for value in y.tolist():
    sums.append(value)
    counts.append(1)
    while len(sums) > 1 and sums[-2] / counts[-2] <= sums[-1] / counts[-1]:
      total, count = sums.pop(), counts.pop()
      sums[-1] += total
      counts[-1] += count
  return torch.cat([torch.full((count,), total / count, dtype=y.dtype)
                    for total, count in zip(sums, counts)])


class SoftRankL2(torch.autograd.Function):
  """torchsort.soft_rank(x, regularization="l2", regularization_strength=ε) of [rows, n]."""

  @staticmethod
  def forward(ctx, values, strength):
    ranks, permutations, block_ids = [], [], []
    for row in values:
      z = row / strength
      permutation = torch.argsort(z, descending=True)
      s = z[permutation]
      w = torch.arange(len(s), 0, -1, dtype=s.dtype)
      v = _isotonic_nonincreasing(s - w)
      rank = torch.empty_like(s)
      rank[permutation] = s - v
      ranks.append(rank)
      permutations.append(permutation)
      block_ids.append(torch.cumsum(torch.cat(
          [torch.zeros(1, dtype=torch.long), (torch.abs(v[1:] - v[:-1]) > 1e-9).long()]), 0))
    ctx.save_for_backward(torch.stack(permutations), torch.stack(block_ids))
    ctx.strength = strength
    return torch.stack(ranks)

  @staticmethod
  def backward(ctx, grad):
    permutations, block_ids = ctx.saved_tensors
    result = torch.empty_like(grad)
    for row, (permutation, blocks) in enumerate(zip(permutations, block_ids)):
      g = grad[row][permutation]
      sums = torch.zeros(int(blocks.max()) + 1, dtype=g.dtype).index_add_(0, blocks, g)
      counts = torch.bincount(blocks).to(g.dtype)
      result[row, permutation] = (g - (sums / counts)[blocks]) / ctx.strength
    return result, None


def soft_rank(values, regularization="l2", regularization_strength=1.0):
  assert regularization == "l2"
  return SoftRankL2.apply(values, regularization_strength)


def cm_retrieval_loss(embeddings, id_labels, m_labels):
  """CMRetrievalLoss().forward(embeddings, id_labels, m_labels), line for line."""
  m_labels_unique = torch.unique(m_labels)
  m_num = len(m_labels_unique)

  embeddings_list = [embeddings[m_labels == m_label] for m_label in m_labels_unique]
  id_labels_list = [id_labels[m_labels == m_label] for m_label in m_labels_unique]

  cmr_loss = 0
  valid_m_count = 0
  for i in range(m_num):
    cur_m_embeddings = embeddings_list[i]
    cur_m_id_labels = id_labels_list[i]
    other_m_embeddings = torch.cat([embeddings_list[j] for j in range(len(m_labels_unique))
                                    if j != i], dim=0)
    other_m_id_labels = torch.cat([id_labels_list[j] for j in range(len(m_labels_unique))
                                   if j != i], dim=0)

    match_mask = cur_m_id_labels.unsqueeze(dim=1) == other_m_id_labels.unsqueeze(dim=0)
    mismatch_mask = ~match_mask
    match_num = match_mask.sum(dim=-1)

    remove_mask = (match_num == 0) | (match_num == len(other_m_id_labels))
    if remove_mask.all():
      continue
    cur_m_embeddings = cur_m_embeddings[~remove_mask]
    match_mask = match_mask[~remove_mask]
    mismatch_mask = mismatch_mask[~remove_mask]

    dist_mat = F.cosine_similarity(cur_m_embeddings[:, None, :], other_m_embeddings[None, :, :],
                                   dim=-1)
    dist_mat = (1 - dist_mat) / 2

    predict_rank = soft_rank(dist_mat, regularization="l2", regularization_strength=0.5)

    target_rank = torch.zeros_like(predict_rank)
    _, g_num = match_mask.shape

    target_rank[match_mask] = 1
    target_rank[mismatch_mask] = g_num

    cmr_loss += F.l1_loss(predict_rank, target_rank)

    valid_m_count += 1

  cmr_loss = cmr_loss / valid_m_count if valid_m_count > 0 else 0

  return cmr_loss
