"""DJANet's layerATT module against a PyTorch transcription of the reference's (spec djanet.md
§4.3), with PyTorch's own `nn.MultiheadAttention`; NCHW there, NHWC here."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vireid_jax.models.djanet import LayerATT

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tests.models.test_mamba import ReferenceMamba, copy_weights  # noqa: E402

CHANNELS, HEIGHT, WIDTH, D_STATE = 16, 3, 6, 4      # r = 4, E = 18 (2 heads of 9)


class ReferenceATT(nn.Module):
  def __init__(self, tap_channels, down, final):
    super().__init__()
    reduced, positions = CHANNELS // 4, HEIGHT * WIDTH
    self.narrow = nn.Conv2d(CHANNELS, reduced, 1)
    self.down = {None: None, "k6s4": nn.Conv2d(tap_channels, reduced, 6, 4, 2),
                 "k4s2": nn.Conv2d(tap_channels, reduced, 4, 2, 1)}[down]
    self.broad = nn.Conv2d(reduced, CHANNELS, 1)
    self.ln_q, self.ln_kv = nn.LayerNorm(positions), nn.LayerNorm(positions)
    self.mha = nn.MultiheadAttention(positions, positions // 9, batch_first=True)
    self.norm1, self.norm2 = nn.LayerNorm(reduced), nn.LayerNorm(reduced)
    self.mamba = ReferenceMamba(reduced, d_state=D_STATE)
    self.ffn = nn.Sequential(nn.Linear(reduced, reduced), nn.GELU(), nn.Linear(reduced, reduced))
    self.final = final

  def mamba_layer(self, t):                          # t [B, r, E]: a sequence over E
    s = t.transpose(1, 2)
    u = s + self.mamba(self.norm1(s))
    return self.ffn(self.norm2(u)).transpose(1, 2)

  def forward(self, x, s):
    batch, reduced = x.shape[0], CHANNELS // 4
    q = self.ln_q(self.narrow(x).reshape(batch, reduced, -1))
    tap = self.narrow(s) if self.down is None else self.down(s)
    kv = self.ln_kv(tap.reshape(batch, reduced, -1))
    q = q + 0.1 * kv
    q = q + self.mha(q, kv, kv)[0]
    q = q + self.mamba_layer(q) if self.final else self.mamba_layer(q)
    return self.broad(q.reshape(batch, reduced, HEIGHT, WIDTH))


def copy_att(reference, model):
  numpy = lambda tensor: jnp.asarray(tensor.detach().numpy())
  convs = [(model.narrow, reference.narrow), (model.broad, reference.broad)]
  if reference.down is not None:
    convs.append((model.down, reference.down))
  for ours, theirs in convs:
    ours.kernel[...] = numpy(theirs.weight).transpose(2, 3, 1, 0)
    ours.bias[...] = numpy(theirs.bias)
  for ours, theirs in ((model.query_norm, reference.ln_q), (model.key_norm, reference.ln_kv),
                       (model.mamba.mamba_norm, reference.norm1),
                       (model.mamba.ffn_norm, reference.norm2)):
    ours.scale[...], ours.bias[...] = numpy(theirs.weight), numpy(theirs.bias)
  model.attention.in_proj[...] = numpy(reference.mha.in_proj_weight).T
  model.attention.in_bias[...] = numpy(reference.mha.in_proj_bias)
  model.attention.out_proj.kernel[...] = numpy(reference.mha.out_proj.weight).T
  model.attention.out_proj.bias[...] = numpy(reference.mha.out_proj.bias)
  for ours, theirs in ((model.mamba.ffn_in, reference.ffn[0]),
                       (model.mamba.ffn_out, reference.ffn[2])):
    ours.kernel[...], ours.bias[...] = numpy(theirs.weight).T, numpy(theirs.bias)
  copy_weights(reference.mamba, model.mamba.mamba)


@pytest.mark.parametrize("down,tap_channels,tap_scale,final", [
    ("k6s4", 8, 4, False),     # ATT_0 / ATT_1: a tap 4x the layer3 map
    ("k4s2", 12, 2, False),    # ATT_2: a tap 2x the layer3 map
    (None, CHANNELS, 1, True),  # ATT_3: the layer3 map itself through `narrow`, residual Mamba
])
def test_layer_att_equals_the_reference(down, tap_channels, tap_scale, final):
  torch.manual_seed(0)
  reference = ReferenceATT(tap_channels, down, final)
  with torch.no_grad():   # non-trivial LayerNorms and attention biases: every part matters
    for module in reference.modules():
      if isinstance(module, nn.LayerNorm):
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.3, 0.3)
    reference.mha.in_proj_bias.uniform_(-0.2, 0.2)
    reference.mha.out_proj.bias.uniform_(-0.2, 0.2)
  model = LayerATT(CHANNELS, tap_channels, HEIGHT, WIDTH, down=down, final=final,
                   d_state=D_STATE, scan_chunk_size=5, rngs=nnx.Rngs(0))
  copy_att(reference, model)
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, HEIGHT, WIDTH, CHANNELS)).astype(np.float32)
  s = rng.normal(size=(2, HEIGHT * tap_scale, WIDTH * tap_scale, tap_channels)).astype(
      np.float32)
  nchw = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())
  expected = reference(nchw(x), nchw(s)).detach().numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(model(jnp.asarray(x), jnp.asarray(s)), expected, rtol=1e-4,
                             atol=1e-5)


def test_a_tap_of_the_wrong_size_and_a_bad_embedding_are_named():
  model = LayerATT(CHANNELS, 8, HEIGHT, WIDTH, down="k6s4", final=False, d_state=D_STATE,
                   rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="reduces to a"):
    model(jnp.zeros((1, HEIGHT, WIDTH, CHANNELS)), jnp.zeros((1, 8, 8, 8)))
  with pytest.raises(ValueError, match="multiple of 9"):
    LayerATT(CHANNELS, 8, 2, 5, down="k6s4", final=False, rngs=nnx.Rngs(0))
