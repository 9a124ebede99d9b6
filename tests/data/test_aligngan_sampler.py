"""AlignGAN's sampler (aligngan.md §1.3): passes, batch kinds, global-iteration positions, and
its streams of two row counts through the pipeline (resuming, multi-process shares, views).

Pipeline images are constant, their value the image's position (as in test_train_pipeline),
so every row can be traced back to the image it was read from.
"""

import ml_collections
import numpy as np
import pytest

from vireid_jax.data import augment
from vireid_jax.data import pipeline
from vireid_jax.data import sampling
from vireid_jax.data import splits
from tests.data.test_train_pipeline import make_split
from tests.data.test_train_pipeline import positions_of


def make_labels(counts):
  return np.repeat(np.arange(len(counts)), counts)


def pass_of(visible_labels, infrared_labels, sampler_epoch=0, *, ids_per_batch=3,
            images_per_id=4, seed=0, stream="ide_aligngan_sampler"):
  return sampling.aligngan_sampler_epoch(
      visible_labels, infrared_labels, ids_per_batch=ids_per_batch,
      images_per_id=images_per_id, seed=seed, sampler_epoch=sampler_epoch, stream=stream)


# 7 identities: identity 1 has 2 visible images, identity 4 has 3 infrared ones (< K = 4).
VISIBLE_LABELS = make_labels([6, 2, 5, 7, 4, 9, 5])
INFRARED_LABELS = make_labels([5, 6, 4, 8, 3, 5, 6])


def test_a_pass_is_every_identity_once_cut_into_full_batches():
  epoch = pass_of(VISIBLE_LABELS, INFRARED_LABELS, ids_per_batch=3)
  # 7 identities at P = 3: two full batches, the seventh identity's group dropped.
  assert epoch.num_batches == 2 and len(epoch.visible_indices) == 2 * 3 * 4
  groups = VISIBLE_LABELS[epoch.visible_indices].reshape(6, 4)
  assert len(set(groups[:, 0].tolist())) == 6
  # SYSU-MM01's 395 identities: 21 IDE batches (P = 18) and 98 GAN batches (P = 4) a pass.
  sysu = make_labels([4] * 395)
  assert pass_of(sysu, sysu, ids_per_batch=18).num_batches == 21
  assert pass_of(sysu, sysu, ids_per_batch=4).num_batches == 98


def test_slots_pair_one_identity_across_modalities_in_p_groups_of_k():
  for sampler_epoch in range(3):
    epoch = pass_of(VISIBLE_LABELS, INFRARED_LABELS, sampler_epoch)
    visible = VISIBLE_LABELS[epoch.visible_indices].reshape(epoch.num_batches, 3, 4)
    infrared = INFRARED_LABELS[epoch.infrared_indices].reshape(epoch.num_batches, 3, 4)
    np.testing.assert_array_equal(visible, infrared)
    assert (visible == visible[:, :, :1]).all()


def test_k_images_without_replacement_unless_an_identity_has_fewer():
  short_groups = {"visible": [], "infrared": []}
  for sampler_epoch in range(6):
    epoch = pass_of(VISIBLE_LABELS, INFRARED_LABELS, sampler_epoch)
    for name, labels, indices in (("visible", VISIBLE_LABELS, epoch.visible_indices),
                                  ("infrared", INFRARED_LABELS, epoch.infrared_indices)):
      for group in indices.reshape(-1, 4):
        assert (labels[group] == labels[group[0]]).all()
        if np.sum(labels == labels[group[0]]) >= 4:
          assert len(set(group.tolist())) == 4
        else:
          short_groups[name].append(labels[group[0]])
  # Identity 1 (2 visible images) and identity 4 (3 infrared ones) were drawn, K images each,
  # with replacement; each in its short modality only (independent per modality).
  assert set(short_groups["visible"]) == {1} and set(short_groups["infrared"]) == {4}


def test_each_pass_permutes_the_identities_anew_and_deterministically():
  labels = make_labels([4] * 12)
  orders = [labels[pass_of(labels, labels, e).visible_indices][::4] for e in range(3)]
  assert all(sorted(order.tolist()) == list(range(12)) for order in orders)
  assert not np.array_equal(orders[0], orders[1])
  assert not np.array_equal(orders[1], orders[2])
  again = pass_of(labels, labels, 1)
  np.testing.assert_array_equal(labels[again.visible_indices][::4], orders[1])
  other_seed = pass_of(labels, labels, 1, seed=1)
  assert not np.array_equal(labels[other_seed.visible_indices][::4], orders[1])


def test_identities_of_one_modality_only_are_an_error():
  with pytest.raises(ValueError, match=r"\[3\]"):
    pass_of(make_labels([4, 4, 4, 4]), make_labels([4, 4, 4]))


# --- The registry entry: two kinds, positions by global iteration -----------------------------


TRAIN = make_split([6, 2, 5, 7, 4, 9, 5, 3], [5, 6, 4, 8, 3, 5, 6, 2])


def data_config(**overrides):
  # IDE 3 x 2 (8 ids: 2 batches a pass), GAN 2 x 2 (4 batches a pass).
  fields = dict(sampler="aligngan", augmentation="agw", ids_per_batch=3, images_per_id=2,
                gan_ids_per_batch=2, gan_images_per_id=2, batches_per_epoch=5, pad=0,
                random_erasing="none")
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def plan(config, epoch, seed=0):
  """{stream name: [batches_per_epoch, rows] positions into TRAIN}."""
  streams = sampling.get_sampler("aligngan").streams(TRAIN, config, seed=seed, epoch=epoch)
  return {stream.name: stream.indices for stream in streams}


def iteration_batch(kind, iteration, ids_per_batch, images_per_id=2):
  """Batch `iteration` of a kind's endless stream, from its passes: [2, rows] positions."""
  visible = np.flatnonzero(TRAIN.modalities == splits.VISIBLE)
  infrared = np.flatnonzero(TRAIN.modalities == splits.INFRARED)
  per_pass = 8 // ids_per_batch
  epoch = pass_of(TRAIN.labels[visible], TRAIN.labels[infrared], iteration // per_pass,
                  ids_per_batch=ids_per_batch, images_per_id=images_per_id,
                  stream=f"{kind}_aligngan_sampler")
  rows = ids_per_batch * images_per_id
  batch = slice(iteration % per_pass * rows, (iteration % per_pass + 1) * rows)
  return np.stack([visible[epoch.visible_indices[batch]],
                   infrared[epoch.infrared_indices[batch]]])


def test_batch_b_of_epoch_e_is_global_iteration_e_times_b_plus_b():
  config = data_config(batches_per_epoch=20)
  first, second = plan(config, 0), plan(config, 1)
  # Iterations 0..39 run through 20 IDE passes (2 batches each) and 10 GAN passes (4 each):
  # every pass boundary, and the epoch boundary, falls between consecutive batches here.
  for iteration in range(40):
    epoch_plan = first if iteration < 20 else second
    for kind, prefix, ids_per_batch in (("ide", "", 3), ("gan", "gan_", 2)):
      np.testing.assert_array_equal(
          np.stack([epoch_plan[prefix + "visible"][iteration % 20],
                    epoch_plan[prefix + "infrared"][iteration % 20]]),
          iteration_batch(kind, iteration, ids_per_batch), err_msg=f"{kind} {iteration}")
  # One epoch of 40 batches is the two epochs of 20 back to back.
  long = plan(data_config(batches_per_epoch=40), 0)
  for name in long:
    np.testing.assert_array_equal(long[name], np.concatenate([first[name], second[name]]))
  assert pipeline.steps_per_epoch(TRAIN, config) == 20


def test_the_kinds_draw_independently():
  # With equal sizes the kinds would coincide if they shared their random stream.
  same_sizes = plan(data_config(gan_ids_per_batch=3), 0)
  assert not np.array_equal(same_sizes["visible"], same_sizes["gan_visible"])
  # Another GAN batch size leaves the IDE batches as they were.
  other_gan = plan(data_config(gan_ids_per_batch=4, gan_images_per_id=1), 0)
  np.testing.assert_array_equal(same_sizes["visible"], other_gan["visible"])
  np.testing.assert_array_equal(same_sizes["infrared"], other_gan["infrared"])


@pytest.mark.parametrize("overrides, message", [
    (dict(gan_ids_per_batch=9), "config.data.gan_ids_per_batch=9 exceeds the 8"),
    (dict(ids_per_batch=9), "config.data.ids_per_batch=9 exceeds the 8"),
    (dict(gan_images_per_id=0), "config.data.gan_images_per_id=0"),
    (dict(batches_per_epoch=0), "config.data.batches_per_epoch=0"),
])
def test_bad_sizes_are_errors_naming_the_config_field(overrides, message):
  with pytest.raises(ValueError, match=message):
    plan(data_config(**overrides), 0)


# --- Through the pipeline -----------------------------------------------------------------------


def batches(config, epoch=0, train=TRAIN, **kwargs):
  return list(pipeline.train_dataset(train, config, seed=0, epoch=epoch,
                                     **kwargs).as_numpy_iterator())


KEYS = {"visible", "infrared", "visible_labels", "infrared_labels", "gan_visible",
        "gan_infrared", "gan_visible_labels", "gan_infrared_labels"}


def test_pipeline_batches_hold_both_kinds_at_their_row_counts():
  config = data_config()
  epoch = batches(config, epoch=1)
  expected = plan(config, 1)
  assert len(epoch) == 5
  for index, batch in enumerate(epoch):
    assert set(batch) == KEYS
    for prefix, rows in (("", 6), ("gan_", 4)):
      for modality, name in ((splits.VISIBLE, "visible"), (splits.INFRARED, "infrared")):
        key = prefix + name
        assert batch[key].shape == (rows, 8, 4, 3) and batch[key].dtype == np.float32
        positions = positions_of(batch[key])
        np.testing.assert_array_equal(positions, expected[key][index])
        assert (TRAIN.modalities[positions] == modality).all()
        np.testing.assert_array_equal(TRAIN.labels[positions], batch[key + "_labels"])
      np.testing.assert_array_equal(batch[prefix + "visible_labels"],
                                    batch[prefix + "infrared_labels"])


def test_resuming_at_a_batch_gives_the_same_batches():
  config = data_config(pad=2)
  whole = batches(config, epoch=2)
  resumed = batches(config, epoch=2, start_batch=3)
  assert len(resumed) == len(whole) - 3
  for expected, got in zip(whole[3:], resumed):
    assert expected.keys() == got.keys() == KEYS
    for key in expected:
      np.testing.assert_array_equal(expected[key], got[key], err_msg=key)


def test_processes_concatenated_equal_the_single_process_batch():
  # IDE rows 3 x 2 = 6 and GAN rows 2 x 1 = 2: 3 and 1 rows per process.
  process_count = 2
  config = data_config(gan_images_per_id=1, pad=2, batches_per_epoch=2)
  single = batches(config, epoch=1)
  shares = [batches(config, epoch=1, process_index=index, process_count=process_count)
            for index in range(process_count)]
  for batch_index, expected in enumerate(single):
    for key, value in expected.items():
      parts = [share[batch_index][key] for share in shares]
      assert all(len(part) == len(value) // process_count for part in parts), key
      np.testing.assert_array_equal(np.concatenate(parts), value, err_msg=key)


def test_gan_rows_not_divisible_by_the_processes_name_the_gan_fields():
  config = data_config(gan_ids_per_batch=3, gan_images_per_id=1)
  with pytest.raises(ValueError, match="'gan_visible' has 3 rows.*process_count=2.*"
                                       "config.data.gan_ids_per_batch"):
    pipeline.train_dataset(TRAIN, config, seed=0, epoch=0, process_count=2)


def test_every_stream_gets_its_own_augmented_views():
  # Every image the same horizontal ramp: a view shows only its augmentation (crop, flip).
  ramp = np.broadcast_to(np.arange(0, 160, 10, dtype=np.uint8)[None, None, :, None],
                         (len(TRAIN), 8, 16, 3))
  train = splits.SplitArrays(**{**TRAIN.__dict__, "images": ramp.copy()})
  plain = np.asarray(augment.normalize(ramp[:1]))[0]
  config = data_config(gan_ids_per_batch=3, pad=2, batches_per_epoch=2)
  for batch in batches(config, train=train):
    views = {key: batch[key] for key in ("visible", "infrared", "gan_visible", "gan_infrared")}
    for key, view in views.items():
      # Augmented: rows differ from the plain image and from each other.
      assert any(not np.allclose(row, plain) for row in view), key
      assert any(not np.allclose(row, view[0]) for row in view[1:]), key
    # Same rows, same images: equal views would mean shared augmentation seeds.
    for first, second in (("visible", "gan_visible"), ("infrared", "gan_infrared"),
                          ("gan_visible", "gan_infrared")):
      assert not np.allclose(views[first], views[second]), (first, second)
  # pad = 0 (the reference's setting): flip only, so each row is the ramp or its mirror.
  flipped = []
  for batch in batches(data_config(gan_ids_per_batch=3, batches_per_epoch=2), train=train):
    for key in ("gan_visible", "gan_infrared"):
      for row in batch[key]:
        flipped.append(bool(np.allclose(row, plain[:, ::-1])))
        assert flipped[-1] or np.allclose(row, plain), key
  assert any(flipped) and not all(flipped)
