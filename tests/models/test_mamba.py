"""The Mamba block against a PyTorch transcription of `mamba_ssm` v1's `Mamba.forward` on its
reference path (`selective_scan_ref`; spec djanet.md §4.4)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vireid_jax.models.mamba import Mamba

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


class ReferenceMamba(nn.Module):
  """`mamba_ssm.modules.mamba_simple.Mamba`, `use_fast_path=False`, with `selective_scan_ref`."""

  def __init__(self, d_model, d_state=16, d_conv=4, expand=2):
    super().__init__()
    self.d_inner, self.d_state = expand * d_model, d_state
    self.dt_rank = math.ceil(d_model / 16)
    self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
    self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, bias=True, kernel_size=d_conv,
                            groups=self.d_inner, padding=d_conv - 1)
    self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
    self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
    self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)
                                        .repeat(self.d_inner, 1)))
    self.D = nn.Parameter(torch.ones(self.d_inner))
    self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

  def forward(self, hidden_states):
    seqlen = hidden_states.shape[1]
    xz = (self.in_proj.weight @ hidden_states.reshape(-1, hidden_states.shape[-1]).t())
    xz = xz.reshape(2 * self.d_inner, -1, seqlen).permute(1, 0, 2)        # b d l
    A = -torch.exp(self.A_log.float())
    x, z = xz.chunk(2, dim=1)
    x = F.silu(self.conv1d(x)[..., :seqlen])
    x_dbl = self.x_proj(x.permute(0, 2, 1).reshape(-1, self.d_inner))
    dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
    dt = (self.dt_proj.weight @ dt.t()).reshape(self.d_inner, -1, seqlen).permute(1, 0, 2)
    B = B.reshape(-1, seqlen, self.d_state).permute(0, 2, 1)
    C = C.reshape(-1, seqlen, self.d_state).permute(0, 2, 1)
    # selective_scan_ref
    delta = F.softplus(dt + self.dt_proj.bias[..., None])
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    delta_b_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, x)
    state = x.new_zeros((x.shape[0], self.d_inner, self.d_state))
    ys = []
    for i in range(seqlen):
      state = delta_a[:, :, i] * state + delta_b_u[:, :, i]
      ys.append(torch.einsum("bdn,bn->bd", state, C[:, :, i]))
    y = (torch.stack(ys, dim=2) + x * self.D[:, None]) * F.silu(z)
    return self.out_proj(y.permute(0, 2, 1))


def copy_weights(reference, model):
  numpy = lambda tensor: jnp.asarray(tensor.detach().numpy())
  model.in_proj.kernel[...] = numpy(reference.in_proj.weight).T
  model.conv1d.kernel[...] = numpy(reference.conv1d.weight).transpose(2, 1, 0)
  model.conv1d.bias[...] = numpy(reference.conv1d.bias)
  model.x_proj.kernel[...] = numpy(reference.x_proj.weight).T
  model.dt_proj.kernel[...] = numpy(reference.dt_proj.weight).T
  model.dt_proj.bias[...] = numpy(reference.dt_proj.bias)
  model.A_log[...] = numpy(reference.A_log)
  model.D[...] = numpy(reference.D)
  model.out_proj.kernel[...] = numpy(reference.out_proj.weight).T


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
def test_mamba_equals_the_reference(chunk_size):
  torch.manual_seed(0)
  reference = ReferenceMamba(32, d_state=8)
  with torch.no_grad():   # a non-trivial D and dt bias, so every part matters
    reference.D.uniform_(0.5, 1.5)
    reference.dt_proj.bias.uniform_(-3.0, -1.0)
  model = Mamba(32, d_state=8, scan_chunk_size=chunk_size, rngs=nnx.Rngs(0))
  copy_weights(reference, model)
  s = np.random.default_rng(0).normal(size=(2, 11, 32)).astype(np.float32)
  expected = reference(torch.from_numpy(s)).detach().numpy()
  np.testing.assert_allclose(model(jnp.asarray(s)), expected, rtol=1e-4, atol=1e-5)


def test_initialisation_is_the_library_s():
  model = Mamba(256, d_state=64, rngs=nnx.Rngs(1))
  assert model.dt_rank == 16 and model.d_inner == 512
  np.testing.assert_allclose(model.A_log[...][3], np.log(np.arange(1, 65)), rtol=1e-6)
  np.testing.assert_array_equal(model.D[...], 1.0)
  kernel = np.asarray(model.dt_proj.kernel[...])
  assert kernel.min() >= -0.25 and kernel.max() <= 0.25 and kernel.min() < -0.2
  dt = np.log1p(np.exp(np.asarray(model.dt_proj.bias[...])))   # softplus of the bias
  assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001
  assert np.abs(np.asarray(model.conv1d.kernel[...])).max() <= 0.5   # U(±1/√4)
  assert model.conv1d.kernel.shape == (4, 1, 512)


def test_the_causal_convolution_has_pytorch_s_orientation():
  """An impulse at t reaches t, t+1, t+2, t+3 through w[3], w[2], w[1], w[0] (PyTorch's
  Conv1d(padding=3) cut to the first L outputs), nothing before t."""
  model = Mamba(4, d_state=2, d_conv=4, rngs=nnx.Rngs(0))
  weights = np.array([1.0, 10.0, 100.0, 1000.0], np.float32)
  model.conv1d.kernel[...] = jnp.tile(weights[:, None, None], (1, 1, model.d_inner))
  model.conv1d.bias[...] = jnp.zeros(model.d_inner)
  impulse = np.zeros((1, 9, model.d_inner), np.float32)
  impulse[0, 2] = 1.0
  out = np.asarray(model.conv1d(jnp.asarray(impulse)))[0, :, 0]
  np.testing.assert_array_equal(out, [0, 0, 1000, 100, 10, 1, 0, 0, 0])


def test_the_block_is_causal():
  model = Mamba(16, d_state=4, rngs=nnx.Rngs(2))
  s = np.random.default_rng(1).normal(size=(1, 9, 16)).astype(np.float32)
  changed = s.copy()
  changed[:, 6:] += 1.0
  before, after = np.asarray(model(jnp.asarray(s))), np.asarray(model(jnp.asarray(changed)))
  np.testing.assert_array_equal(before[:, :6], after[:, :6])
  assert np.abs(before[:, 6:] - after[:, 6:]).max() > 1e-3


def test_mamba_layer_equals_the_reference_without_a_residual_around_the_ffn():
  from vireid_jax.models.mamba import MambaLayer
  torch.manual_seed(1)
  d_model = 32
  norm1, norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
  mamba = ReferenceMamba(d_model, d_state=8)
  ffn = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, d_model))
  with torch.no_grad():
    for norm in (norm1, norm2):
      norm.weight.uniform_(0.5, 1.5)
      norm.bias.uniform_(-0.3, 0.3)
  layer = MambaLayer(d_model, d_state=8, scan_chunk_size=4, rngs=nnx.Rngs(0))
  copy_weights(mamba, layer.mamba)
  numpy = lambda tensor: jnp.asarray(tensor.detach().numpy())
  for ours, theirs in ((layer.mamba_norm, norm1), (layer.ffn_norm, norm2)):
    ours.scale[...], ours.bias[...] = numpy(theirs.weight), numpy(theirs.bias)
  for ours, theirs in ((layer.ffn_in, ffn[0]), (layer.ffn_out, ffn[2])):
    ours.kernel[...], ours.bias[...] = numpy(theirs.weight).T, numpy(theirs.bias)
  s = np.random.default_rng(2).normal(size=(2, 7, d_model)).astype(np.float32)
  torch_s = torch.from_numpy(s)
  u = torch_s + mamba(norm1(torch_s))
  expected = ffn(norm2(u)).detach().numpy()
  np.testing.assert_allclose(layer(jnp.asarray(s)), expected, rtol=1e-4, atol=1e-5)
  # The FFN's initial weights: N(0, 0.02), zero biases.
  fresh = MambaLayer(256, rngs=nnx.Rngs(3))
  assert abs(float(np.std(fresh.ffn_in.kernel[...])) - 0.02) < 1e-3
  np.testing.assert_array_equal(fresh.ffn_out.bias[...], 0.0)
