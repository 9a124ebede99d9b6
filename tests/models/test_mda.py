"""MCJA's Modality Distribution Adapter against a transcription of the reference's
`models/modules/mda.py` (spec mcja.md §2), in training and evaluation mode."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402  (after the skip)

from vireid_jax.models.mda import MDA  # noqa: E402


class ReferenceMDA(nn.Module):
  """The reference's MDA.forward, NCHW, line for line."""

  def __init__(self, in_channels, inter_ratio=2, m_num=2):
    super().__init__()
    self.in_channels, self.inter_ratio, self.m_num = in_channels, inter_ratio, m_num
    self.planes = in_channels // inter_ratio
    self.sc_conv = nn.Conv2d(in_channels, m_num, kernel_size=1)
    self.softmax = nn.Softmax(dim=-1)
    self.ca_conv = nn.Conv1d(in_channels, in_channels, kernel_size=m_num, groups=in_channels,
                             bias=False)
    self.ca_bn = nn.BatchNorm1d(in_channels)
    self.norm_bn = nn.BatchNorm2d(in_channels)
    nn.init.constant_(self.norm_bn.weight, 0.0)
    nn.init.constant_(self.norm_bn.bias, 0.0)

  def forward(self, x):
    batch, channel, height, width = x.size()
    input_x = x.view(batch, channel, height * width).unsqueeze(1)
    context_mask = self.sc_conv(x).view(batch, self.m_num, height * width)
    context_mask = self.softmax(context_mask).unsqueeze(-1)
    context = torch.matmul(input_x, context_mask).squeeze(-1).permute(0, 2, 1)
    g = torch.sigmoid(self.ca_bn(self.ca_conv(context)))
    return self.norm_bn(x * g.view(batch, channel, 1, 1).expand_as(x)) + x


def copy_weights(reference, model):
  """The reference's parameters and statistics into our MDA (NHWC layouts)."""
  numpy = lambda tensor: jnp.asarray(tensor.detach().numpy())
  model.mask.kernel[...] = numpy(reference.sc_conv.weight)[:, :, 0, 0].T
  model.mask.bias[...] = numpy(reference.sc_conv.bias)
  model.aggregation[...] = numpy(reference.ca_conv.weight)[:, 0, :]
  for ours, theirs in ((model.characteristics_norm, reference.ca_bn),
                       (model.output_norm, reference.norm_bn)):
    ours.scale[...] = numpy(theirs.weight)
    ours.bias[...] = numpy(theirs.bias)
    ours.mean[...] = numpy(theirs.running_mean)
    ours.var[...] = numpy(theirs.running_var)


def randomised_reference(channels, maps, seed):
  torch.manual_seed(seed)
  reference = ReferenceMDA(channels, m_num=maps)
  with torch.no_grad():
    for norm in (reference.ca_bn, reference.norm_bn):   # every part must matter
      norm.weight.uniform_(0.5, 1.5)
      norm.bias.uniform_(-0.5, 0.5)
      norm.running_mean.uniform_(-0.5, 0.5)
      norm.running_var.uniform_(0.5, 1.5)
  return reference


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("maps", [2, 12])
def test_mda_equals_the_reference(training, maps):
  channels = 16
  reference = randomised_reference(channels, maps, seed=maps)
  model = MDA(channels, num_maps=maps, rngs=nnx.Rngs(0))
  copy_weights(reference, model)
  images = np.random.default_rng(maps).normal(size=(4, 6, 5, channels)).astype(np.float32)
  reference.train(training)
  model.train() if training else model.eval()
  expected = reference(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
  ours = model(jnp.asarray(images))
  np.testing.assert_allclose(ours, expected.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5,
                             atol=1e-5)
  if training:   # the running statistics move as PyTorch's do (unbiased variance)
    np.testing.assert_allclose(model.characteristics_norm.var[...],
                               reference.ca_bn.running_var.numpy(), rtol=1e-5)
    np.testing.assert_allclose(model.output_norm.mean[...],
                               reference.norm_bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_a_new_mda_is_the_identity_and_its_ratio_changes_nothing(training):
  images = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 4, 8)), jnp.float32)
  outputs = []
  for ratio in (2, 8):
    model = MDA(8, num_maps=3, ratio=ratio, rngs=nnx.Rngs(1))
    model.train() if training else model.eval()
    outputs.append(model(images))
    np.testing.assert_array_equal(outputs[-1], images)
  np.testing.assert_array_equal(outputs[0], outputs[1])
  assert model.ratio == 8


def test_initialisation_is_pytorch_default():
  channels, maps = 64, 4
  model = MDA(channels, num_maps=maps, rngs=nnx.Rngs(2))
  kernel = np.asarray(model.mask.kernel[...])
  assert kernel.shape == (channels, maps) and np.abs(kernel).max() <= 1 / np.sqrt(channels)
  assert np.abs(model.aggregation[...]).max() <= 1 / np.sqrt(maps)
  assert np.all(model.output_norm.scale[...] == 0) and np.all(model.output_norm.bias[...] == 0)
  assert np.all(model.characteristics_norm.scale[...] == 1)
  # Uniform draws over the whole bound, not a narrower one.
  assert np.abs(kernel).max() > 0.9 / np.sqrt(channels)
