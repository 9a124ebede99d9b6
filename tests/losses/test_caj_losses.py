"""CAJ's losses against the PyTorch transcription of its `loss.py` (``torch_caj_reference.py``):
values and gradients with respect to the features / logits (spec baseline_data_eval.md §5.5–5.6).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vireid_jax import losses

torch = pytest.importorskip("torch")
from tests.losses import torch_caj_reference as reference  # noqa: E402


def caj_batch(seed, *, ids=4, per_id=3, dim=32, scale=1.0):
  """Features and labels laid out as CAJ's [A | B | IR] batch: labels [l_vis, l_vis, l_ir]."""
  rng = np.random.default_rng(seed)
  slots = np.repeat(np.arange(ids), per_id)
  labels = np.concatenate([slots, slots, slots]).astype(np.int64)
  centres = rng.normal(size=(ids, dim))
  features = (centres[labels] + 0.7 * rng.normal(size=(labels.size, dim))) * scale
  return features.astype(np.float32), labels


def assert_gradients_close(ours, theirs):
  # The clamped self-distance makes the tiniest components float noise (module doc of the
  # issue's acceptance): compared against the largest component, or 0.05 when smaller.
  ours, theirs = np.asarray(ours), np.asarray(theirs)
  bound = 1e-4 * max(np.abs(theirs).max(), 0.05)
  assert np.abs(ours - theirs).max() <= bound, (np.abs(ours - theirs).max(), bound)


@pytest.mark.parametrize("square", [True, False])
@pytest.mark.parametrize("alpha,gamma", [(1.0, 1.0), (2.0, 1.0), (1.0, 2.0), (2.0, 2.0)])
@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_adp_triplet_equals_the_reference(square, alpha, gamma, scale):
  features, labels = caj_batch(int(alpha * 10 + gamma + 100 * scale), scale=scale)
  theirs_features = torch.tensor(features, requires_grad=True)
  theirs = reference.TripletLossADP(alpha, gamma, int(square))(theirs_features,
                                                               torch.from_numpy(labels))
  theirs.backward()
  value, grads = jax.value_and_grad(
      lambda f: losses.adaptive_weighted_triplet(f, jnp.asarray(labels), alpha=alpha,
                                                 gamma=gamma, square=square))(
      jnp.asarray(features))
  np.testing.assert_allclose(value, theirs.item(), rtol=1e-5, atol=1e-6)
  assert_gradients_close(grads, theirs_features.grad.numpy())


def test_adp_clamp_at_88_is_reached_and_matches():
  features, labels = caj_batch(3, scale=40.0)
  theirs_features = torch.tensor(features, requires_grad=True)
  theirs = reference.TripletLossADP(1, 1, 1)(theirs_features, torch.from_numpy(labels))
  theirs.backward()
  value, grads = jax.value_and_grad(lambda f: losses.adaptive_weighted_triplet(
      f, jnp.asarray(labels)))(jnp.asarray(features))
  # Some anchors sit at the clamp: their gap squared exceeds 88.
  distances = np.asarray(losses.pairwise_euclidean(jnp.asarray(features)))
  assert distances.max() ** 2 > 88
  np.testing.assert_allclose(value, theirs.item(), rtol=1e-5)
  assert_gradients_close(grads, theirs_features.grad.numpy())


def test_unsquared_adp_stays_finite_where_the_reference_overflows():
  # SoftMarginLoss computes log(1 + exp(x)) directly: a badly violated anchor (γ·gap beyond
  # ~88) makes the reference's loss inf. Ours is the same function through a stable softplus.
  features, labels = caj_batch(612, scale=6.0)
  theirs = reference.TripletLossADP(1, 2, 0)(torch.from_numpy(features),
                                             torch.from_numpy(labels))
  ours = losses.adaptive_weighted_triplet(jnp.asarray(features), jnp.asarray(labels),
                                          gamma=2.0, square=False)
  assert not np.isfinite(theirs.item()) and np.isfinite(float(ours))


@pytest.mark.parametrize("scale", [0.5, 4.0])
def test_softened_kl_equals_the_reference(scale):
  rng = np.random.default_rng(int(scale * 10))
  logits = (rng.normal(size=(12, 7)) * scale).astype(np.float32)
  target = (rng.normal(size=(12, 7)) * scale).astype(np.float32)
  theirs_logits = torch.tensor(logits, requires_grad=True)
  theirs_target = torch.tensor(target, requires_grad=True)
  theirs = reference.KLDivLoss()(theirs_logits, theirs_target)
  theirs.backward()
  value, (grads, target_grads) = jax.value_and_grad(
      losses.softened_kl_divergence, argnums=(0, 1))(jnp.asarray(logits), jnp.asarray(target))
  np.testing.assert_allclose(value, theirs.item(), rtol=1e-5)
  assert_gradients_close(grads, theirs_logits.grad.numpy())
  # The target is detached, in both.
  assert theirs_target.grad is None and np.all(np.asarray(target_grads) == 0)


def test_softened_kl_refuses_mismatched_shapes_naming_them():
  with pytest.raises(ValueError, match=r"\(4, 3\) and \(4, 5\)"):
    losses.softened_kl_divergence(jnp.zeros((4, 3)), jnp.zeros((4, 5)))
