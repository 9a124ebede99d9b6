"""MCJA's Modality Distribution Adapter against the transcription of the reference's
`models/modules/mda.py` in `torch_mcja_reference.py` (spec mcja.md §2), in training and
evaluation mode."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
from tests.models.torch_mcja_reference import MDA as ReferenceMDA  # noqa: E402

from vireid_jax.models.mda import MDA  # noqa: E402


def copy_weights(reference, model):
  """The reference's parameters and statistics into our MDA (NHWC layouts)."""
  numpy = lambda tensor: jnp.asarray(tensor.detach().numpy())
  model.mask.kernel[...] = numpy(reference.sc_conv.weight).transpose(2, 3, 1, 0)
  model.mask.bias[...] = numpy(reference.sc_conv.bias)
  model.aggregation.kernel[...] = numpy(reference.ca_conv.weight).transpose(2, 1, 0)
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
  assert kernel.shape == (1, 1, channels, maps)
  assert np.abs(kernel).max() <= 1 / np.sqrt(channels)
  aggregation = np.asarray(model.aggregation.kernel[...])
  assert aggregation.shape == (maps, 1, channels)
  assert np.abs(aggregation).max() <= 1 / np.sqrt(maps)
  assert np.all(model.output_norm.scale[...] == 0) and np.all(model.output_norm.bias[...] == 0)
  assert np.all(model.characteristics_norm.scale[...] == 1)
  # Uniform draws over the whole bound, not a narrower one.
  assert np.abs(kernel).max() > 0.9 / np.sqrt(channels)
