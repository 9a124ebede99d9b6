"""DJANet's complementary learning loss is identically zero (spec djanet.md §5): the reference
returns the mean of a standardised loss map."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vireid_jax import losses


def test_the_reference_s_last_step_makes_any_loss_map_zero():
  # Whatever the loss map (here random, of the reference's (192, 192, 24, 12) shape class),
  # mean((L - mean L) / std L) vanishes: the faithful value is the constant.
  rng = np.random.default_rng(0)
  for scale in (1e-3, 1.0, 1e3):
    loss_map = rng.gamma(2.0, scale, size=(6, 6, 4, 3))
    standardised = (loss_map - loss_map.mean()) / loss_map.std(ddof=1)   # torch.std: unbiased
    assert abs(standardised.mean()) < 1e-12


def test_zero_with_zero_gradient_for_any_maps():
  maps = jnp.asarray(np.random.default_rng(1).normal(size=(8, 6, 3, 16)), jnp.float32)
  value, grads = jax.value_and_grad(losses.complementary_learning_loss)(maps)
  assert float(value) == 0.0 and value.dtype == jnp.float32
  assert np.all(np.asarray(grads) == 0)


@pytest.mark.parametrize("shape", [(7, 6, 3, 16), (8, 48)])
def test_maps_that_cannot_be_paired_name_their_shape(shape):
  with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
    losses.complementary_learning_loss(jnp.zeros(shape))


# --------------------------------------------- PyTorch transcriptions of the reference


def _torch_complementary_learning_loss(torch, maps):
  """`model/CRSL.py` + `embed_net.complementary_Learning_Loss` on NCHW maps (`.cuda()` calls
  dropped)."""
  nn = torch.nn

  def norm(x):
    max_val = torch.max(torch.max(x, 2)[0], 2)[0]
    min_val = torch.min(torch.min(x, 2)[0], 2)[0]
    delta = (max_val - min_val)[:, :, None, None]
    return ((x - min_val[:, :, None, None]) / delta * 255).int()

  def entropy(x):
    batch, channels, width, height = x.size()
    histogram = torch.zeros(size=(batch, channels, 256))
    for i in range(256):
      histogram[:, :, i] = torch.eq(x, i).sum(dim=2).sum(dim=2)
    p = histogram / (width * height)
    return (-torch.sum(p * torch.log(p + 1e-8), dim=2))[:, :, None, None]

  def smooth(tensor, a=0.02):
    temp_norm = torch.norm(tensor.type(torch.FloatTensor), p=2, dim=1)
    return ((temp_norm >= a).float() * temp_norm
            + (temp_norm < a).float() * (0.5 * temp_norm ** 2 / a + a * 0.5))

  ms_v, pan_v = torch.chunk(maps, 2, 0)
  ms_v, pan_v = ms_v.mean(dim=1, keepdim=True), pan_v.mean(dim=1, keepdim=True)
  cos_similarity = nn.CosineSimilarity(dim=1, eps=1e-6)(ms_v, pan_v)
  ms_v, pan_v = norm(ms_v), norm(pan_v)
  x = entropy(ms_v) - entropy(pan_v)
  k = torch.ones_like(cos_similarity) / (cos_similarity ** 2 + 0.001)
  w1 = torch.sigmoid(k * x)
  loss = w1 * smooth(ms_v) + (1 - w1) * smooth(pan_v)      # [N/2, N/2, H, W] by broadcasting
  return torch.mean((loss - torch.mean(loss)) / torch.std(loss))


def test_equals_the_pytorch_transcription_with_its_zero_gradient():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(2)
  maps = rng.gamma(2.0, 1.0, size=(8, 6, 3, 16)).astype(np.float32)    # layer4-like, ≥ 0
  tensor = torch.from_numpy(maps.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
  expected = _torch_complementary_learning_loss(torch, tensor)
  expected.backward()
  ours, grads = jax.value_and_grad(losses.complementary_learning_loss)(jnp.asarray(maps))
  assert abs(float(ours) - expected.item()) <= 1e-5
  assert np.abs(tensor.grad.numpy()).max() <= 1e-5 and np.all(np.asarray(grads) == 0)


def test_hard_mining_triplet_equals_ori_triplet_loss_at_djanet_s_margin():
  """`model/loss.py`'s OriTripletLoss(margin=0.7) with its comp_dist, over 4 views x 2 ids."""
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(3)
  features = rng.normal(size=(16, 32)).astype(np.float32)
  labels = np.array([0, 1] * 4 + [1, 0] * 4)
  inputs, targets = torch.from_numpy(features), torch.from_numpy(labels)
  n = inputs.size(0)
  dist = (inputs.pow(2).sum(dim=1, keepdim=True).expand(n, n)
          + inputs.pow(2).sum(dim=1, keepdim=True).expand(n, n).t())
  dist = dist.addmm_(inputs, inputs.t(), beta=1, alpha=-2).clamp(min=1e-12).sqrt()
  mask = targets.expand(n, n).eq(targets.expand(n, n).t())
  dist_ap = torch.stack([dist[i][mask[i]].max() for i in range(n)])
  dist_an = torch.stack([dist[i][mask[i] == 0].min() for i in range(n)])
  expected = torch.nn.MarginRankingLoss(margin=0.7)(dist_an, dist_ap, torch.ones_like(dist_an))
  ours = losses.hard_mining_triplet(jnp.asarray(features), jnp.asarray(labels), margin=0.7)
  assert abs(float(ours) - expected.item()) <= 1e-5 * max(1.0, abs(expected.item()))
  assert expected.item() > 0.1
