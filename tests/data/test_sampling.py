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
