"""Tests of the AGW model: modes, outputs, two-stream split, init, LR groups."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from vireid_jax.losses import cross_entropy, weighted_regularized_triplet
from vireid_jax.methods import agw as agw_method
from vireid_jax.models import (
    AGW,
    NonLocalBlock,
    ReidOutputs,
    after_last_blocks,
)
from vireid_jax.training import optim

# Compiling dominates the run time, so the tests share two jitted functions
# (and always call them with 2 + 2 images): the evaluation features and the
# training loss with its gradients, which also returns the training outputs.
forward = nnx.jit(lambda model, visible, infrared: model(visible, infrared).features())


@nnx.jit
def training_loss_and_grads(model, visible, infrared, labels):
  def loss_fn(model):
    outputs = model(visible, infrared)
    pooled, logits = outputs.pooled, outputs.logits
    loss = cross_entropy(logits, labels) + weighted_regularized_triplet(pooled, labels)
    return loss, (pooled, logits)

  return nnx.value_and_grad(loss_fn, has_aux=True)(model)


LABELS = jnp.array([0, 1, 0, 1])

TINY_AGW_KWARGS = dict(depth=18, width=8, last_stride=1)
TINY_NUM_CLASSES = 500  # many classifier weights for the init statistics test


@pytest.fixture(scope='module')
def tiny_agw_template():
  """A tiny AGW (ResNet-18, width 8, D = 64), built once: construction costs
  seconds of XLA compilation on CPU. Tests use copies (``tiny_agw``)."""
  return AGW(TINY_NUM_CLASSES, **TINY_AGW_KWARGS, rngs=nnx.Rngs(0))


@pytest.fixture
def tiny_agw(tiny_agw_template):
  """A fresh copy of the tiny AGW, in training mode."""
  model = nnx.clone(tiny_agw_template)
  model.train()
  return model


def _images(seed, batch=2):
  """Visible and infrared batches [batch, 32, 16, 3]."""
  visible_key, infrared_key = jax.random.split(jax.random.key(seed))
  shape = (batch, 32, 16, 3)
  return jax.random.normal(visible_key, shape), jax.random.normal(infrared_key, shape)


def test_training_mode_returns_pooled_features_and_logits(tiny_agw):
  visible, infrared = _images(0)
  assert tiny_agw.feature_dim == 64  # 8 · width for BasicBlock
  (_, (pooled, logits)), _ = training_loss_and_grads(tiny_agw, visible, infrared, LABELS)
  assert pooled.shape == (4, 64) and logits.shape == (4, tiny_agw.num_classes)
  assert pooled.dtype == jnp.float32
  assert np.all(np.asarray(pooled) >= 0)  # GeM of post-ReLU maps, not normalised
  assert not np.allclose(np.linalg.norm(pooled, axis=1), 1.0)
  # Training mode updates the running statistics of the BNNeck.
  assert not np.allclose(tiny_agw.bottleneck.mean[...], 0.0)


def test_eval_mode_returns_unit_norm_pool_and_bn_features(tiny_agw):
  visible, infrared = _images(1)
  tiny_agw.eval()
  assert tiny_agw.bottleneck.use_running_average
  assert tiny_agw.stages.layers[2][1].bn2.use_running_average
  assert tiny_agw.stages.inserted[2][0].output_bn.use_running_average
  stats_before = nnx.clone(nnx.state(tiny_agw, nnx.BatchStat))
  features = forward(tiny_agw, visible, infrared)
  assert set(features) == {'pool', 'bn'}
  for name in ('pool', 'bn'):
    assert features[name].shape == (4, 64)
    np.testing.assert_allclose(np.linalg.norm(features[name], axis=1), 1.0, rtol=1e-5)
  assert not np.allclose(features['pool'], features['bn'])
  # Evaluation leaves the running statistics alone.
  jax.tree.map(np.testing.assert_array_equal, stats_before, nnx.state(tiny_agw, nnx.BatchStat))

  # Running statistics make samples independent, so changing the infrared
  # images changes exactly the last rows: the batch is [visible; infrared].
  _, other_infrared = _images(11)
  changed = forward(tiny_agw, visible, other_infrared)
  for name in ('pool', 'bn'):
    np.testing.assert_allclose(changed[name][:2], features[name][:2], rtol=1e-5, atol=1e-7)
    row_change = np.abs(np.asarray(changed[name][2:]) - np.asarray(features[name][2:])).max(1)
    assert row_change.min() > 1e-4

  # One modality alone gives [B, D] features (shape-checked only, to save a
  # compilation).
  single = nnx.eval_shape(lambda m, x: m(None, x), tiny_agw, infrared)
  assert isinstance(single, ReidOutputs)
  assert single.pooled.shape == single.bn.shape == (2, 64)
  assert single.logits.shape == (2, tiny_agw.num_classes)

  # An evaluation view of a model in training mode gives the evaluation
  # features and leaves the model in training mode.
  tiny_agw.train()
  assert not tiny_agw.bottleneck.use_running_average
  view = nnx.view(tiny_agw, use_running_average=True)
  assert view.bottleneck.use_running_average and view.stages.layers[2][1].bn2.use_running_average
  from_view = forward(view, visible, infrared)
  for name in ('pool', 'bn'):
    np.testing.assert_array_equal(from_view[name], features[name])
  assert not tiny_agw.bottleneck.use_running_average


def test_stems_have_separate_parameters(tiny_agw):
  visible_kernel = tiny_agw.visible_stem.conv1.kernel[...]
  infrared_kernel = tiny_agw.infrared_stem.conv1.kernel[...]
  assert not np.allclose(visible_kernel, infrared_kernel)
  tiny_agw.eval()
  images, _ = _images(2)
  features = np.asarray(forward(tiny_agw, images, images)['pool'])
  # Same images through the visible stem (rows 0-1) and the infrared one (2-3).
  assert np.abs(features[:2] - features[2:]).max() > 1e-3


def test_shared_layers_normalise_the_mixed_batch(tiny_agw):
  """Concatenation happens before the shared BNs: visible rows depend on IR."""
  visible, infrared = _images(3)
  _, other_infrared = _images(12)
  (_, (pooled, _)), _ = training_loss_and_grads(nnx.clone(tiny_agw), visible, infrared, LABELS)
  (_, (pooled_other, _)), _ = training_loss_and_grads(
      nnx.clone(tiny_agw), visible, other_infrared, LABELS
  )
  # In training mode the BNs use batch statistics over all four images.
  assert np.abs(np.asarray(pooled[:2]) - np.asarray(pooled_other[:2])).max() > 1e-4


def test_non_local_blocks_are_the_identity_at_init(tiny_agw):
  plain = AGW(tiny_agw.num_classes, **TINY_AGW_KWARGS, non_local=False, rngs=nnx.Rngs(1))
  assert plain.stages.insert_after == ((), (), (), ())
  # Copy every weight the plain model has from the non-local model.
  weights = nnx.state(tiny_agw).to_pure_dict()
  del weights['stages']['inserted']
  state = nnx.state(plain)
  nnx.replace_by_pure_dict(state, weights)
  nnx.update(plain, state)

  visible, infrared = _images(4)
  for model in (tiny_agw, plain):
    model.eval()
  with_non_local = forward(tiny_agw, visible, infrared)
  without = forward(plain, visible, infrared)
  np.testing.assert_allclose(with_non_local['bn'], without['bn'], rtol=1e-5, atol=1e-6)

  # Once the output BN's γ is non-zero the blocks do change the features.
  tiny_agw.stages.inserted[1][0].output_bn.scale[...] += 1.0
  changed = forward(tiny_agw, visible, infrared)
  assert np.abs(np.asarray(changed['bn']) - np.asarray(without['bn'])).max() > 1e-4


def test_non_local_positions_for_resnet50_and_clipped_for_resnet18(tiny_agw):
  # ResNet-50 (3, 4, 6, 3): after blocks 2, 3 of layer2 and 3, 4, 5 of layer3.
  assert after_last_blocks((3, 4, 6, 3), (0, 2, 3, 0)) == {1: (2, 3), 2: (3, 4, 5)}
  # ResNet-18 stages have 2 blocks: 2 and min(3, 2) = 2 non-local blocks.
  assert after_last_blocks((2, 2, 2, 2), (0, 2, 3, 0)) == {1: (0, 1), 2: (0, 1)}
  stages = tiny_agw.stages
  assert stages.insert_after == ((), (0, 1), (0, 1), ())
  blocks = list(stages.inserted[1]) + list(stages.inserted[2])
  assert all(isinstance(b, NonLocalBlock) for b in blocks)
  assert [b.channels for b in blocks] == [16, 16, 32, 32]
  assert all(b.inner_channels == 1 for b in blocks)  # the reference's quirk
  assert len(stages.inserted[0]) == 0 and len(stages.inserted[3]) == 0


def test_bnneck_and_classifier_init(tiny_agw):
  params = nnx.state(tiny_agw.bottleneck, nnx.Param)
  assert set(params.keys()) == {'scale'}  # β frozen at 0 == no β
  gamma = np.asarray(tiny_agw.bottleneck.scale[...])
  assert abs(gamma.mean() - 1.0) < 0.006 and 0.006 < gamma.std() < 0.014
  assert tiny_agw.classifier.bias is None
  weights = np.asarray(tiny_agw.classifier.kernel[...])
  assert weights.shape == (64, tiny_agw.num_classes)
  assert abs(weights.std() / 0.001 - 1) < 0.03 and abs(weights.mean()) < 5e-5


# AGW's learning-rate groups, as its method file chooses them (by parameter path).
agw_param_labels = optim.group_labels(agw_method.parameter_groups(
    ml_collections.ConfigDict(dict(backbone_lr_scale=0.1))))


def test_param_labels_split_head_and_backbone(tiny_agw):
  params = nnx.state(tiny_agw, nnx.Param)
  labels = agw_param_labels(params)
  flat = dict(nnx.to_flat_state(labels))
  head = sorted(path for path, label in flat.items() if label == 'head')
  assert head == [('bottleneck', 'scale'), ('classifier', 'kernel')]
  assert flat[('visible_stem', 'conv1', 'kernel')] == 'backbone'
  assert flat[('stages', 'inserted', 1, 0, 'theta', 'kernel')] == 'backbone'
  assert flat[('stages', 'layers', 3, 1, 'bn2', 'scale')] == 'backbone'
  assert len(flat) == len(jax.tree.leaves(params))
  # The pure-array form gets the same labels.
  assert dict(nnx.to_flat_state(agw_param_labels(nnx.as_pure(params)))) == flat

  # Used by optax.multi_transform inside nnx.Optimizer: one SGD step with
  # unit gradients moves each parameter by its group's learning rate.
  tx = optax.multi_transform(
      {'head': optax.sgd(0.1), 'backbone': optax.sgd(0.01)}, agw_param_labels
  )
  optimizer = nnx.Optimizer(tiny_agw, tx, wrt=nnx.Param)
  before = nnx.to_flat_state(nnx.as_pure(nnx.clone(params)))
  unit_grads = jax.tree.map(lambda p: np.ones(p.shape, np.float32), params)
  nnx.jit(lambda optimizer, model, grads: optimizer.update(model, grads))(
      optimizer, tiny_agw, unit_grads
  )
  after = dict(nnx.to_flat_state(nnx.as_pure(nnx.state(tiny_agw, nnx.Param))))
  for path, value in before:
    step = np.max(np.asarray(value) - np.asarray(after[path]))
    assert step == pytest.approx(0.1 if flat[path] == 'head' else 0.01, rel=1e-3), path


def test_learnable_gem_exponent_is_a_backbone_parameter():
  model = nnx.eval_shape(lambda: AGW(5, **TINY_AGW_KWARGS, gem_learnable=True, rngs=nnx.Rngs(0)))
  flat = dict(nnx.to_flat_state(agw_param_labels(nnx.state(model, nnx.Param))))
  assert flat[('gem', 'p')] == 'backbone'
  fixed = nnx.eval_shape(lambda: AGW(5, **TINY_AGW_KWARGS, rngs=nnx.Rngs(0)))
  assert len(flat) == len(jax.tree.leaves(nnx.state(fixed, nnx.Param))) + 1


def test_training_loss_gradients_are_finite_and_reach_both_stems(tiny_agw):
  visible, infrared = _images(5)
  (loss, _), grads = training_loss_and_grads(tiny_agw, visible, infrared, LABELS)
  assert np.isfinite(loss)
  leaves = jax.tree.leaves(grads)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  for stem in ('visible_stem', 'infrared_stem'):
    assert np.abs(np.asarray(grads[stem]['conv1']['kernel'])).max() > 0
  # At init the output BN's γ = 0 blocks the gradient to θ, but γ gets one.
  non_local = grads['stages']['inserted'][1][0]
  assert np.abs(np.asarray(non_local['theta']['kernel'])).max() == 0
  assert np.abs(np.asarray(non_local['output_bn']['scale'])).max() > 0


def test_bfloat16_compute_keeps_float32_params_and_features():
  model = nnx.eval_shape(
      lambda: AGW(10, **TINY_AGW_KWARGS, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
  )
  assert {p.dtype for p in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype('float32')}
  image = jax.ShapeDtypeStruct((2, 32, 16, 3), jnp.float32)
  feature_map = nnx.eval_shape(lambda m, x: m.stages(m.visible_stem(x)), model, image)
  assert feature_map.dtype == jnp.bfloat16
  outputs = nnx.eval_shape(lambda m, x: m(x, x), model, image)
  assert outputs.pooled.dtype == jnp.float32 and outputs.logits.dtype == jnp.float32
  assert outputs.bn.dtype == jnp.float32


def test_requires_an_input_and_valid_pooling(tiny_agw):
  with pytest.raises(ValueError, match='visible and/or infrared'):
    tiny_agw(None, None)
  with pytest.raises(ValueError, match='pooling'):
    nnx.eval_shape(lambda: AGW(5, pooling='median', rngs=nnx.Rngs(0)))
