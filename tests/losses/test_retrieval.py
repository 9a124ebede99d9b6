"""MCJA's cross-modality retrieval loss against a PyTorch transcription of the reference
(`torch_cmr_reference.py`): value and gradient, on MCJA-shaped batches and the edge cases of
spec mcja.md §4, plus the spec's toy batch and its closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.losses import torch_cmr_reference as reference  # noqa: E402  (after the skip)
from vireid_jax import losses  # noqa: E402

loss_and_grad = jax.jit(jax.value_and_grad(losses.cross_modality_retrieval))


def reference_loss_and_grad(embeddings, labels, modalities):
  tensor = torch.tensor(np.asarray(embeddings, np.float64), requires_grad=True)
  loss = reference.cm_retrieval_loss(tensor, torch.tensor(labels), torch.tensor(modalities))
  if not torch.is_tensor(loss):     # no valid direction: the reference returns the int 0
    return float(loss), np.zeros(tensor.shape)
  loss.backward()
  return float(loss.detach()), tensor.grad.numpy()


def relative(ours, theirs):
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  return np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-30)


def assert_matches_reference(embeddings, labels, modalities):
  loss, grad = loss_and_grad(jnp.asarray(embeddings, jnp.float32), labels, modalities)
  expected_loss, expected_grad = reference_loss_and_grad(embeddings, labels, modalities)
  assert loss.dtype == jnp.float32
  assert abs(float(loss) - expected_loss) <= 1e-5 * max(abs(expected_loss), 1e-6)
  assert relative(grad, expected_grad) <= 1e-5
  return float(loss), np.asarray(grad)


def mcja_batch(ids, per_id, dim=2048, seed=0):
  """P identities x K images with a random modality mix, as MCJA's sampler draws them."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(ids), per_id).astype(np.int32)
  modalities = rng.integers(0, 2, size=len(labels)).astype(np.int32)
  # Embeddings with identity structure, as a trained network's (post-BN, not normalised).
  centres = rng.normal(size=(ids, dim))
  embeddings = centres[labels] + 1.5 * rng.normal(size=(len(labels), dim))
  return embeddings.astype(np.float32), labels, modalities


@pytest.mark.parametrize("ids, per_id", [(8, 16), (4, 32)])
def test_mcja_shaped_batches_match_the_reference(ids, per_id):
  embeddings, labels, modalities = mcja_batch(ids, per_id)
  loss, _ = assert_matches_reference(embeddings, labels, modalities)
  gallery = min(np.sum(modalities == 0), np.sum(modalities == 1))
  assert loss > (gallery - 1) / 2 - 3   # unnormalised ranks: about (G - 1) / 2


def test_identities_seen_in_one_modality_only_drop_their_queries():
  embeddings, labels, modalities = mcja_batch(6, 4, dim=16, seed=1)
  modalities[labels == 0] = 0        # id 0 has no infrared image: its queries are dropped
  modalities[labels == 5] = 1
  assert_matches_reference(embeddings, labels, modalities)


def test_a_gallery_of_two_splits_the_rank_into_blocks():
  rng = np.random.default_rng(2)
  embeddings = rng.normal(size=(6, 8)).astype(np.float32)
  labels = np.array([0, 1, 0, 1, 0, 1], np.int32)
  modalities = np.array([0, 0, 0, 0, 1, 1], np.int32)
  assert_matches_reference(embeddings, labels, modalities)


def test_a_direction_where_every_query_is_dropped_leaves_the_other_alone():
  rng = np.random.default_rng(3)
  embeddings = rng.normal(size=(7, 8)).astype(np.float32)
  # Infrared queries (ids 0, 0) see visible ids 0, 1, 2: kept. Visible queries: id 0 has both
  # infrared images as positives (= G, dropped), ids 1, 2 have none (dropped).
  labels = np.array([0, 1, 2, 1, 2, 0, 0], np.int32)
  modalities = np.array([0, 0, 0, 0, 0, 1, 1], np.int32)
  loss, _ = assert_matches_reference(embeddings, labels, modalities)
  assert loss > 0


@pytest.mark.parametrize("case", ["single_modality", "no_cross_modal_positive"])
def test_no_valid_direction_gives_zero_with_a_zero_finite_gradient(case):
  rng = np.random.default_rng(4)
  embeddings = jnp.asarray(rng.normal(size=(6, 8)), jnp.float32)
  if case == "single_modality":
    labels, modalities = np.array([0, 0, 1, 1, 2, 2]), np.zeros(6, np.int32)
  else:
    labels, modalities = np.arange(6), np.array([0, 1, 0, 1, 0, 1])
  loss, grad = loss_and_grad(embeddings, labels, modalities)
  assert float(loss) == 0.0
  assert np.all(np.isfinite(grad)) and not np.any(grad)


def test_the_spec_toy_batch():
  embeddings = np.array([[1, 0, 0, 0], [.9, .1, 0, 0], [0, 1, 0, 0], [.1, .8, .2, 0],
                         [.7, 0, .3, 0], [0, .9, 0, .4], [0, 0, 1, 0], [0, .2, .9, .1],
                         [.5, .5, 0, 0], [.3, 0, 0, 1]], np.float32)
  labels = np.array([0, 0, 1, 1, 0, 1, 2, 2, 3, 0])
  modalities = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 0])
  loss, _ = assert_matches_reference(embeddings, labels, modalities)
  assert loss == pytest.approx(1.751715, abs=2e-6)


def test_the_closed_form_of_one_pav_block_for_galleries_of_six_or_more():
  embeddings, labels, modalities = mcja_batch(5, 6, dim=32, seed=5)
  assert min(np.sum(modalities == 0), np.sum(modalities == 1)) >= 6
  e = embeddings.astype(np.float64)
  cosine = (e @ e.T) / np.outer(np.linalg.norm(e, axis=1), np.linalg.norm(e, axis=1))
  theta = (1 - cosine) / 2
  directions = []
  for modality in (0, 1):
    queries, gallery = np.flatnonzero(modalities == modality), modalities != modality
    size = gallery.sum()
    terms = []
    for i in queries:
      positive = gallery & (labels == labels[i])
      p = positive.sum()
      if 0 < p < size:
        negative = gallery & ~positive
        terms.append(2 * p * (size - p) / size * (theta[i, positive].mean()
                                                  - theta[i, negative].mean()))
    directions.append((size - 1) / 2 + 2 / (len(terms) * size) * np.sum(terms))
  loss, _ = loss_and_grad(jnp.asarray(embeddings), labels, modalities)
  assert float(loss) == pytest.approx(np.mean(directions), rel=1e-5)


def test_mismatched_shapes_name_the_argument():
  embeddings = jnp.zeros((4, 3))
  with pytest.raises(ValueError, match=r"labels must be \[B\] = \[4\]"):
    losses.cross_modality_retrieval(embeddings, jnp.zeros(3, jnp.int32), jnp.zeros(4, jnp.int32))
  with pytest.raises(ValueError, match=r"modalities must be \[B\] = \[4\]"):
    losses.cross_modality_retrieval(embeddings, jnp.zeros(4, jnp.int32), jnp.zeros((4, 1)))
