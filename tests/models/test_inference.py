"""Tests of vireid_jax.inference.extract_features on a tiny AGW."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vireid_jax.evaluation.features import prepare_images
from vireid_jax.inference import extract_features
from vireid_jax.models import AGW

evaluate = nnx.jit(lambda model, visible, infrared: model(visible, infrared).features())


@pytest.fixture(scope='module')
def trained_tiny_agw():
  """A tiny AGW in training mode whose running statistics are off their init (0, 1)."""
  model = AGW(5, depth=18, width=8, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  for path, variable in nnx.to_flat_state(nnx.state(model, nnx.BatchStat)):
    shape = variable.get_value().shape
    value = rng.normal(0.0, 0.1, shape) if path[-1] == 'mean' else rng.uniform(0.5, 1.5, shape)
    variable.set_value(jnp.asarray(value, jnp.float32))
  return model


def _images(count, seed=1):
  return np.random.default_rng(seed).normal(size=(count, 32, 16, 3)).astype(np.float32)


def test_chunked_features_equal_one_eval_forward_and_leave_the_model_alone(trained_tiny_agw):
  model = trained_tiny_agw
  images = _images(5)
  statistics = nnx.clone(nnx.state(model, nnx.BatchStat))
  # Chunks of 2, 2 and 1 (padded to 2): running statistics make rows independent.
  features = extract_features(model, images, 'infrared', batch_size=2)
  view = nnx.view(model, use_running_average=True)
  expected = evaluate(view, None, images)
  assert set(features) == {'pool', 'bn'}
  for name in ('pool', 'bn'):
    assert features[name].shape == (5, 64) and features[name].dtype == np.float32
    np.testing.assert_allclose(features[name], expected[name], rtol=1e-5, atol=1e-6)
  assert not model.bottleneck.use_running_average
  for (path, before), (_, after) in zip(nnx.to_flat_state(statistics),
                                        nnx.to_flat_state(nnx.state(model, nnx.BatchStat))):
    np.testing.assert_array_equal(before.get_value(), after.get_value(), err_msg=str(path))


def test_modality_selects_the_stem(trained_tiny_agw):
  images = _images(2, seed=2)
  visible = extract_features(trained_tiny_agw, images, 'visible')
  view = nnx.view(trained_tiny_agw, use_running_average=True)
  np.testing.assert_allclose(visible['bn'], evaluate(view, images, None)['bn'], rtol=1e-5,
                             atol=1e-6)
  infrared = extract_features(trained_tiny_agw, images, 'infrared')
  assert np.abs(np.asarray(visible['bn']) - np.asarray(infrared['bn'])).max() > 1e-3


def test_uint8_images_are_normalised_first(trained_tiny_agw):
  pixels = np.random.default_rng(3).integers(0, 256, (3, 32, 16, 3), dtype=np.uint8)
  normalised = np.asarray(prepare_images(pixels), np.float32)
  from_pixels = extract_features(trained_tiny_agw, pixels, 'visible')
  from_normalised = extract_features(trained_tiny_agw, normalised, 'visible')
  for name in ('pool', 'bn'):
    np.testing.assert_array_equal(from_pixels[name], from_normalised[name])


def test_bad_arguments_are_rejected(trained_tiny_agw):
  images = _images(2)
  with pytest.raises(ValueError, match="'visible', 'infrared'.*'thermal'"):
    extract_features(trained_tiny_agw, images, 'thermal')
  with pytest.raises(ValueError, match=r'\[N, H, W, 3\].*\(32, 16, 3\)'):
    extract_features(trained_tiny_agw, images[0], 'visible')
  with pytest.raises(ValueError, match='batch_size'):
    extract_features(trained_tiny_agw, images, 'visible', batch_size=0)
