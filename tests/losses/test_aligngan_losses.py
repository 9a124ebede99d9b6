"""AlignGAN's losses against the PyTorch transcription of its reference
(``tests/models/torch_aligngan_reference.py``: `tools/loss2.py`, `tools/metric.py`,
`core/base.py`, `core/train.py`, `core/warmup.py`): values and gradients (spec aligngan.md §3)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vireid_jax import losses

torch = pytest.importorskip("torch")
from tests.models import torch_aligngan_reference as reference  # noqa: E402

TOLERANCE = dict(rtol=1e-5, atol=1e-5)

# One compilation per shape instead of one per eager op.
triplet_value_and_grads = jax.jit(
    jax.value_and_grad(losses.cosine_batch_hard_triplet, argnums=(0, 1, 2)))


def _within_one_set(embeddings, labels):
  return losses.cosine_batch_hard_triplet(embeddings, embeddings, embeddings, labels, labels,
                                          labels)


def _both_directions(fake, real, first_labels, second_labels):
  return (losses.cosine_batch_hard_triplet(fake, real, real, *first_labels)
          + losses.cosine_batch_hard_triplet(real, fake, fake, *second_labels))


within_one_set_value_and_grad = jax.jit(jax.value_and_grad(_within_one_set))
both_directions_value_and_grads = jax.jit(jax.value_and_grad(_both_directions, argnums=(0, 1)))


def clustered(rng, labels, dim, spread):
  """Embeddings around one random centre per identity; ``spread`` sets how hard the batch is."""
  centres = rng.normal(size=(int(labels.max()) + 1, dim))
  return (centres[labels] + spread * rng.normal(size=(labels.size, dim))).astype(np.float32)


def pk_labels(identities=4, per_identity=4):
  return np.repeat(np.arange(identities), per_identity).astype(np.int64)


def torch_triplet(anchors, positives, negatives, anchor_labels, positive_labels,
                  negative_labels, margin=1.0):
  """The reference's loss and its gradients w.r.t. the three sets."""
  tensors = [torch.tensor(x, requires_grad=True) for x in (anchors, positives, negatives)]
  labels = [torch.from_numpy(y) for y in (anchor_labels, positive_labels, negative_labels)]
  loss = reference.TripletLoss(margin)(*tensors, *labels)
  loss.backward()
  return loss.item(), [t.grad.numpy() for t in tensors]


def assert_matches_reference(anchors, positives, negatives, anchor_labels, positive_labels,
                             negative_labels, margin=1.0):
  theirs, their_grads = torch_triplet(anchors, positives, negatives, anchor_labels,
                                      positive_labels, negative_labels, margin)
  ours, our_grads = triplet_value_and_grads(
      jnp.asarray(anchors), jnp.asarray(positives), jnp.asarray(negatives),
      jnp.asarray(anchor_labels), jnp.asarray(positive_labels), jnp.asarray(negative_labels),
      margin=margin)
  np.testing.assert_allclose(ours, theirs, **TOLERANCE)
  for our_grad, their_grad in zip(our_grads, their_grads):
    np.testing.assert_allclose(our_grad, their_grad, **TOLERANCE)
  return theirs


def np_hinges(anchors, positives, negatives, anchor_labels, positive_labels, negative_labels,
              margin):
  """s⁻ − s⁺ + margin per anchor in float64, written out loop by loop (for coverage checks)."""
  def cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
  hinges = []
  for a, y in zip(anchors.astype(np.float64), anchor_labels):
    pos = [cos(a, p) for p, yp in zip(positives, positive_labels) if yp == y]
    neg = [cos(a, n) for n, yn in zip(negatives, negative_labels) if yn != y]
    hinges.append(max(neg, default=-np.inf) - min(pos, default=np.inf) + margin)
  return np.array(hinges)


# ------------------------------------------------------------------ cosine triplet


def different_candidate_sets(spread, margin):
  """A, P and N of different sizes and label orders; every label in every set."""
  rng = np.random.default_rng(int(spread * 10 + margin * 100))
  anchor_labels = rng.permutation(np.repeat(np.arange(4), 3))
  positive_labels = np.concatenate([np.arange(4), rng.integers(0, 4, size=5)])
  negative_labels = np.concatenate([np.arange(4), rng.integers(0, 4, size=11)])
  pool = clustered(rng, np.concatenate([anchor_labels, positive_labels, negative_labels]), 16,
                   spread)
  return (*np.split(pool, [12, 21]), anchor_labels, positive_labels, negative_labels)


@pytest.mark.parametrize("spread", [0.3, 1.0, 3.0])
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_triplet_with_different_candidate_sets(spread, margin):
  assert_matches_reference(*different_candidate_sets(spread, margin), margin)


def test_triplet_batches_cover_active_and_inactive_hinges():
  # The easy batches of the test above (spread 0.3, margin 0.3) have anchors whose hinge is
  # inactive, the hard ones (spread 3) active anchors: both sides of the relu are compared.
  hinges = np.concatenate([np_hinges(*different_candidate_sets(spread, margin), margin)
                           for spread, margin in ((0.3, 0.3), (3.0, 1.0))])
  assert (hinges < -1e-3).any() and (hinges > 1e-3).any()


@pytest.mark.parametrize("spread", [0.5, 2.0])
def test_triplet_within_one_set_as_in_the_feature_warm_up(spread):
  # L_tri(A = P = N = e(i)): each anchor is one of its own positives (similarity ≈ 1); the
  # gradients w.r.t. the three roles are compared separately and summed.
  rng = np.random.default_rng(int(spread * 10))
  labels = pk_labels(6, 4)
  embeddings = clustered(rng, labels, 32, spread)
  assert_matches_reference(embeddings, embeddings, embeddings, labels, labels, labels)

  theirs_embeddings = torch.tensor(embeddings, requires_grad=True)
  torch_labels = torch.from_numpy(labels)
  theirs = reference.TripletLoss(1.0)(theirs_embeddings, theirs_embeddings, theirs_embeddings,
                                      torch_labels, torch_labels, torch_labels)
  theirs.backward()
  ours, grads = within_one_set_value_and_grad(jnp.asarray(embeddings), labels)
  np.testing.assert_allclose(ours, theirs.item(), **TOLERANCE)
  np.testing.assert_allclose(grads, theirs_embeddings.grad.numpy(), **TOLERANCE)


@pytest.mark.parametrize("feature_step", [False, True])
def test_both_cross_modal_directions(feature_step):
  # §3.4 / §3.7 / §3.8: L_tri(e(f_i) → e(i)) + L_tri(e(i) → e(f_i)) on an aligned P×K batch;
  # the pixel step passes labels (y_r, y_i, y_i) in both directions, the feature step
  # (y_i, y_r, y_r) in the second (equal vectors by the samplers' alignment, §1.3).
  rng = np.random.default_rng(7 + feature_step)
  rgb_labels = ir_labels = pk_labels(4, 4)
  fake_ir = clustered(rng, rgb_labels, 24, 1.0)
  real_ir = clustered(rng, ir_labels, 24, 1.0)
  second_labels = (ir_labels, rgb_labels, rgb_labels) if feature_step else (
      rgb_labels, ir_labels, ir_labels)

  theirs_fake, theirs_real = (torch.tensor(x, requires_grad=True) for x in (fake_ir, real_ir))
  criterion = reference.TripletLoss(1.0)
  torch_rgb, torch_ir = torch.from_numpy(rgb_labels), torch.from_numpy(ir_labels)
  theirs = (criterion(theirs_fake, theirs_real, theirs_real, torch_rgb, torch_ir, torch_ir)
            + criterion(theirs_real, theirs_fake, theirs_fake,
                        *(torch.from_numpy(y) for y in second_labels)))
  theirs.backward()

  ours, (fake_grad, real_grad) = both_directions_value_and_grads(
      jnp.asarray(fake_ir), jnp.asarray(real_ir), (rgb_labels, ir_labels, ir_labels),
      second_labels)
  np.testing.assert_allclose(ours, theirs.item(), **TOLERANCE)
  np.testing.assert_allclose(fake_grad, theirs_fake.grad.numpy(), **TOLERANCE)
  np.testing.assert_allclose(real_grad, theirs_real.grad.numpy(), **TOLERANCE)
  # Each direction alone, with separate P and N roles.
  assert_matches_reference(fake_ir, real_ir, real_ir, rgb_labels, ir_labels, ir_labels)
  assert_matches_reference(real_ir, fake_ir, fake_ir, *second_labels)


def test_anchors_without_positive_or_negative_contribute_zero_like_the_reference():
  # Anchor label 3 has no positive candidate, label 2 no negative one (all negatives are 2):
  # the reference's ±9999999 offsets make their hinges ≈ −1e7, i.e. 0 with no gradient, but
  # they still count in the mean. Labels 0 and 1 have both.
  rng = np.random.default_rng(11)
  anchor_labels = np.array([0, 0, 1, 1, 2, 3], np.int64)
  positive_labels = np.array([0, 1, 1, 2, 0], np.int64)
  negative_labels = np.array([2, 2, 2, 2], np.int64)
  anchors, positives, negatives = (rng.normal(size=(n, 8)).astype(np.float32)
                                   for n in (6, 5, 4))
  value = assert_matches_reference(anchors, positives, negatives, anchor_labels,
                                   positive_labels, negative_labels)
  hinges = np_hinges(anchors, positives, negatives, anchor_labels, positive_labels,
                     negative_labels, 1.0)
  np.testing.assert_allclose(value, np.maximum(hinges, 0).sum() / 6, rtol=1e-5)
  assert np.isneginf(hinges[4:]).all() and (hinges[:4] > 0).all()
  _, (anchor_grad, _, _) = triplet_value_and_grads(
      anchors, positives, negatives, anchor_labels, positive_labels, negative_labels,
      margin=1.0)
  assert np.all(np.asarray(anchor_grad)[4:] == 0)

  # No valid anchor at all: 0, finite zero gradients.
  value, grads = triplet_value_and_grads(anchors, positives, negatives, anchor_labels,
                                         np.full(5, 9), np.zeros(4, np.int64) + 2, margin=1.0)
  theirs, their_grads = torch_triplet(anchors, positives, negatives, anchor_labels,
                                      np.full(5, 9), np.zeros(4, np.int64) + 2)
  assert float(value) == theirs == 0.0
  for grad, their_grad in zip(grads, their_grads):
    assert np.all(np.asarray(grad) == 0) and np.all(their_grad == 0)


def test_triplet_gradient_at_a_zero_hinge_passes_as_in_the_reference():
  # s⁺ = cos(e0, e0) = 1 and s⁻ = cos(e0, e1) = 0 exactly: the hinge is exactly 0 for both
  # anchors, where PyTorch's clamp(min=0) still passes the gradient.
  embeddings = np.eye(2, 3, dtype=np.float32)
  labels = np.array([0, 1], np.int64)
  assert_matches_reference(embeddings, embeddings, embeddings, labels, labels, labels)
  _, grads = triplet_value_and_grads(embeddings, embeddings, embeddings, labels, labels,
                                     labels, margin=1.0)
  assert np.abs(np.asarray(grads[2])).max() > 0.1


def test_triplet_rejects_mismatched_shapes():
  embeddings = jnp.ones((4, 8))
  labels = jnp.arange(4)
  with pytest.raises(ValueError, match="positives"):
    losses.cosine_batch_hard_triplet(embeddings, embeddings, embeddings, labels,
                                     jnp.arange(3), labels)
  with pytest.raises(ValueError, match="anchors"):
    losses.cosine_batch_hard_triplet(embeddings[0], embeddings, embeddings, labels, labels,
                                     labels)


# ------------------------------------------------------------------ LSGAN combinations


def nhwc_scores(rng, count, batch=16, scale=1.0):
  """``count`` random NHWC [B, 4, 4, 1] score maps (about the values D outputs)."""
  return [(scale * rng.normal(size=(batch, 4, 4, 1)) + rng.normal()).astype(np.float32)
          for _ in range(count)]


def to_torch_nchw(scores):
  """The reference's [B, 1, 4, 4] layout, as leaves requiring gradients."""
  return [torch.tensor(np.transpose(s, (0, 3, 1, 2)), requires_grad=True) for s in scores]


@functools.cache
def jitted_value_and_grads(our_fn, count):
  return jax.jit(jax.value_and_grad(our_fn, argnums=tuple(range(count))))


def compare(our_fn, their_fn, scores):
  theirs_inputs = to_torch_nchw(scores)
  theirs = their_fn(*theirs_inputs)
  theirs.backward()
  ours, grads = jitted_value_and_grads(our_fn, len(scores))(*(jnp.asarray(s) for s in scores))
  np.testing.assert_allclose(ours, theirs.item(), **TOLERANCE)
  for grad, their_input in zip(grads, theirs_inputs):
    np.testing.assert_allclose(grad, np.transpose(their_input.grad.numpy(), (0, 2, 3, 1)),
                               **TOLERANCE)


@pytest.mark.parametrize("seed", [0, 1])
def test_unconditional_discriminator_loss(seed):
  # D_rgb (core/train.py) and D_rgb_warm / D_ir_warm (core/warmup.py).
  compare(losses.lsgan_discriminator_loss, reference.d_rgb_loss,
          nhwc_scores(np.random.default_rng(seed), 2))


@pytest.mark.parametrize("seed", [0, 1])
def test_generator_adversarial_loss(seed):
  compare(losses.lsgan_generator_loss, reference.generator_adversarial_loss,
          nhwc_scores(np.random.default_rng(10 + seed), 2))


def test_feature_step_adversarial_loss():
  # MSE(D_ir(i, M_f), ones_like): one argument, an IDE batch of 72.
  compare(losses.lsgan_generator_loss, reference.feature_adversarial_loss,
          nhwc_scores(np.random.default_rng(20), 1, batch=72))


@pytest.mark.parametrize("seed", [0, 1])
def test_joint_discriminator_loss(seed):
  compare(losses.joint_discriminator_loss, reference.d_ir_loss,
          nhwc_scores(np.random.default_rng(30 + seed), 5))


def test_generator_loss_needs_scores():
  with pytest.raises(ValueError):
    losses.lsgan_generator_loss()


def test_wrong_pairs_are_the_ir_batch_rolled_back_by_four():
  # core/base.py generate_wrong_images: cat([x[4:], x[:4]]), i.e. wrong[k] = x[(k + 4) % B]
  # = jnp.roll(x, -4, axis=0); with the P×K = 4×4 batch every image meets the feature map of
  # the previous identity group (a different identity everywhere).
  rng = np.random.default_rng(40)
  images = rng.normal(size=(16, 3, 8, 8)).astype(np.float32)
  pids = np.repeat(rng.permutation(395)[:4], 4)
  wrong_images = reference.wrong_pair(torch.from_numpy(images))
  wrong_pids = reference.wrong_pair(torch.from_numpy(pids))
  nhwc = jnp.asarray(np.transpose(images, (0, 2, 3, 1)))
  np.testing.assert_array_equal(jnp.roll(nhwc, -4, axis=0),
                                np.transpose(wrong_images.numpy(), (0, 2, 3, 1)))
  np.testing.assert_array_equal(jnp.roll(pids, -4), wrong_pids.numpy())
  assert np.all(wrong_pids.numpy() != pids)
  # The other direction is a different batch.
  assert not np.array_equal(jnp.roll(nhwc, 4, axis=0), nhwc[np.r_[4:16, 0:4]])


# ------------------------------------------------------------------ L1


def test_l1_loss_and_the_cycle_combination():
  rng = np.random.default_rng(50)
  reconstructed_rgb, real_rgb, reconstructed_ir, real_ir = (
      np.tanh(rng.normal(size=(4, 16, 16, 3))).astype(np.float32) for _ in range(4))
  theirs = [torch.tensor(np.transpose(x, (0, 3, 1, 2)), requires_grad=True)
            for x in (reconstructed_rgb, reconstructed_ir)]
  their_cycle = reference.cycle_loss(
      theirs[0], torch.from_numpy(np.transpose(real_rgb, (0, 3, 1, 2))),
      theirs[1], torch.from_numpy(np.transpose(real_ir, (0, 3, 1, 2))))
  their_cycle.backward()
  ours, grads = jax.jit(jax.value_and_grad(
      lambda a, b: (losses.l1_loss(a, real_rgb) + losses.l1_loss(b, real_ir)) / 2.0,
      argnums=(0, 1)))(jnp.asarray(reconstructed_rgb), jnp.asarray(reconstructed_ir))
  np.testing.assert_allclose(ours, their_cycle.item(), **TOLERANCE)
  for grad, their in zip(grads, theirs):
    np.testing.assert_allclose(grad, np.transpose(their.grad.numpy(), (0, 2, 3, 1)),
                               **TOLERANCE)
  with pytest.raises(ValueError):
    losses.l1_loss(jnp.ones((2, 3)), jnp.ones((3,)))
