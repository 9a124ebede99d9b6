"""The AGW cross-modality sampler: composition, pairing, epoch length, determinism."""

import numpy as np
import pytest

from vireid_jax.data import sampling


def make_labels(counts):
  return np.repeat(np.arange(len(counts)), counts)


def test_epoch_length_matches_reference_counts():
  # SYSU-MM01 trains on 22,258 visible and 11,909 infrared images: 696 batches (spec §2.3),
  # RegDB on 2,060 + 2,060: 65.
  assert sampling.agw_num_batches(22258, 11909, 8, 4) == 696
  assert sampling.agw_num_batches(2060, 2060, 8, 4) == 65


def test_batches_hold_p_distinct_ids_times_k_aligned_images():
  visible_labels = make_labels([5, 3, 7, 2, 4, 6, 3, 5, 4, 2])
  infrared_labels = make_labels([2, 4, 3, 6, 1, 2, 5, 3, 2, 4])[::-1].copy()
  epoch = sampling.agw_cross_modality_epoch(visible_labels, infrared_labels, ids_per_batch=4,
                                            images_per_id=3, seed=0, epoch=0)
  assert epoch.num_batches == sampling.agw_num_batches(len(visible_labels),
                                                       len(infrared_labels), 4, 3)
  visible = visible_labels[epoch.visible_indices].reshape(epoch.num_batches, 4, 3)
  infrared = infrared_labels[epoch.infrared_indices].reshape(epoch.num_batches, 4, 3)
  # Slot i of both modalities has the same identity, K images per identity in a block.
  np.testing.assert_array_equal(visible, infrared)
  assert (visible == visible[:, :, :1]).all()
  for batch_ids in visible[:, :, 0]:
    assert len(set(batch_ids.tolist())) == 4


def test_images_are_drawn_with_replacement_within_an_identity():
  # Identity 0 has a single visible image: K = 4 draws must repeat it.
  visible_labels = make_labels([1, 6, 6])
  infrared_labels = make_labels([3, 3, 3])
  epoch = sampling.agw_cross_modality_epoch(visible_labels, infrared_labels, ids_per_batch=3,
                                            images_per_id=4, seed=1, epoch=0)
  first = epoch.visible_indices.reshape(-1, 3, 4)
  only_image_of_id0 = first[visible_labels[first[..., 0]] == 0]
  assert (only_image_of_id0 == 0).all() and only_image_of_id0.size >= 4


def test_deterministic_in_seed_and_epoch():
  labels = make_labels([4] * 12)
  def draw(seed, epoch):
    return sampling.agw_cross_modality_epoch(labels, labels, ids_per_batch=4, images_per_id=2,
                                             seed=seed, epoch=epoch).visible_indices
  np.testing.assert_array_equal(draw(0, 3), draw(0, 3))
  assert not np.array_equal(draw(0, 3), draw(0, 4))
  assert not np.array_equal(draw(0, 3), draw(1, 3))


def test_identity_without_infrared_images_is_an_error():
  with pytest.raises(ValueError, match=r"\[2\]"):
    sampling.agw_cross_modality_epoch(make_labels([2, 2, 2]), make_labels([2, 2]),
                                      ids_per_batch=2, images_per_id=1, seed=0, epoch=0)


def test_indices_by_label():
  groups = sampling.indices_by_label(np.array([2, 0, 2, 1, 0]), 3)
  assert [g.tolist() for g in groups] == [[1, 4], [3], [0, 2]]


# --- MCJA's modality-agnostic P x K sampler -------------------------------------------------


def test_mcja_epoch_length_is_the_reference_sampler_length():
  # RegDB in MCJA: 206 ids x 20 images, P=4, K=32 > 20: one chunk per id, 206 // 4 = 51.
  assert sampling.mcja_num_batches(make_labels([20] * 206), 4, 32) == 51
  # Chunks floor(n/K), or 1 when n < K: 7 -> 1, 9 -> 2, 3 -> 1, 16 -> 4; 8 chunks // P=3 = 2.
  assert sampling.mcja_num_batches(make_labels([7, 9, 3, 16]), 3, 4) == 2


def test_mcja_batches_hold_p_distinct_ids_times_k_images_each():
  labels = make_labels([9, 4, 13, 2, 8, 6, 5, 11])
  epoch = sampling.mcja_identity_epoch(labels, ids_per_batch=3, images_per_id=4, seed=0,
                                       epoch=2)
  assert epoch.num_batches == sampling.mcja_num_batches(labels, 3, 4)
  assert len(epoch.indices) == epoch.num_batches * 12
  blocks = labels[epoch.indices].reshape(epoch.num_batches, 3, 4)
  assert (blocks == blocks[:, :, :1]).all()
  for batch_ids in blocks[:, :, 0]:
    assert len(set(batch_ids.tolist())) == 3


def test_mcja_chunks_are_without_replacement_unless_an_id_is_short():
  # Ids with >= K images give chunks of distinct images within one pass; id 1 (2 images)
  # gives one chunk drawn with replacement.
  labels = make_labels([8, 2, 8, 8])
  epoch = sampling.mcja_identity_epoch(labels, ids_per_batch=2, images_per_id=4, seed=3,
                                       epoch=0)
  # 2 + 1 + 2 + 2 = 7 chunks -> 3 batches; the first pass ends when < 2 ids have chunks.
  assert epoch.num_batches == 3
  chunks = epoch.indices.reshape(-1, 4)
  for chunk in chunks:
    label = labels[chunk[0]]
    if label != 1:
      assert len(set(chunk.tolist())) == 4
    else:
      assert set(chunk.tolist()) <= {8, 9}


def test_mcja_pass_uses_each_chunk_at_most_once():
  # With every id holding exactly 2 chunks and P = #ids, the pass is 2 batches that together
  # use every image exactly once.
  labels = make_labels([8, 8, 8])
  epoch = sampling.mcja_identity_epoch(labels, ids_per_batch=3, images_per_id=4, seed=0,
                                       epoch=0)
  assert sorted(epoch.indices.tolist()) == list(range(24))


def test_mcja_sampler_deterministic_in_seed_and_epoch():
  labels = make_labels([6] * 10)
  def draw(seed, epoch):
    return sampling.mcja_identity_epoch(labels, ids_per_batch=2, images_per_id=3, seed=seed,
                                        epoch=epoch).indices
  np.testing.assert_array_equal(draw(0, 1), draw(0, 1))
  assert not np.array_equal(draw(0, 1), draw(0, 2))
  assert not np.array_equal(draw(0, 1), draw(1, 1))


def test_mcja_sampler_rejects_more_ids_per_batch_than_identities():
  with pytest.raises(ValueError, match="ids_per_batch=4"):
    sampling.mcja_identity_epoch(make_labels([4, 4, 4]), ids_per_batch=4, images_per_id=2,
                                 seed=0, epoch=0)


# --- DAN's target stream ----------------------------------------------------------------------


def test_target_sampler_independent_draws_p_labels_per_modality():
  visible = make_labels([3, 5, 2, 4, 6])
  infrared = make_labels([4, 1, 5, 2, 3])
  epoch = sampling.target_epoch(visible, infrared, ids_per_batch=3, images_per_id=4,
                                aligned=False, seed=0, epoch=0)
  assert epoch.num_batches == sampling.agw_num_batches(len(visible), len(infrared), 3, 4)
  for labels, indices in ((visible, epoch.visible_indices),
                          (infrared, epoch.infrared_indices)):
    blocks = labels[indices].reshape(-1, 3, 4)
    assert (blocks == blocks[:, :, :1]).all()
    assert all(len(set(ids.tolist())) == 3 for ids in blocks[:, :, 0])
  # Drawn independently: over the epoch some slot pairs differ in pseudo-label.
  assert (visible[epoch.visible_indices] != infrared[epoch.infrared_indices]).any()


def test_target_sampler_aligned_pairs_labels_present_in_both_modalities():
  # Label 4 has only visible images and label 5 only infrared ones: never drawn when aligned.
  visible = np.array([0, 0, 1, 1, 2, 2, 3, 4, 4, -1])
  infrared = np.array([3, 2, 2, 1, 0, 0, 5, -1])
  epoch = sampling.target_epoch(visible, infrared, ids_per_batch=2, images_per_id=3,
                                aligned=True, seed=1, epoch=0)
  visible_labels = visible[epoch.visible_indices]
  np.testing.assert_array_equal(visible_labels, infrared[epoch.infrared_indices])
  assert set(visible_labels.tolist()) <= {0, 1, 2, 3}


def test_target_sampler_without_pseudo_labels_draws_distinct_images_uniformly():
  unlabelled = -np.ones(30, np.int64)
  epoch = sampling.target_epoch(unlabelled, unlabelled[:20], ids_per_batch=2, images_per_id=4,
                                aligned=True, seed=0, epoch=0)
  assert epoch.num_batches == 30 // 8 + 1
  for indices, count in ((epoch.visible_indices, 30), (epoch.infrared_indices, 20)):
    batches = indices.reshape(epoch.num_batches, 8)
    assert all(len(set(batch.tolist())) == 8 for batch in batches)
    assert indices.min() >= 0 and indices.max() < count
