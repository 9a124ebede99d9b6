"""train_dataset: each sampler's batch composition, resuming, epoch lengths, bad configs.

Images are constant, their value the image's position, and augmented without padding (a
flip leaves a constant image as it is), so every batch row can be traced back to the image it
was read from.
"""

import ml_collections
import numpy as np
import pytest

from vireid_jax.data import augment
from vireid_jax.data import pipeline
from vireid_jax.data import splits
from vireid_jax.data import sampling


def make_split(visible_counts, infrared_counts, height=8, width=4):
  """Identity c has visible_counts[c] visible and infrared_counts[c] infrared images; image i
  is the constant i."""
  labels = np.concatenate([np.repeat(np.arange(len(visible_counts)), visible_counts),
                           np.repeat(np.arange(len(infrared_counts)), infrared_counts)])
  modalities = np.repeat([splits.VISIBLE, splits.INFRARED],
                         [sum(visible_counts), sum(infrared_counts)])
  count = len(labels)
  assert count < 256
  images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None],
                           (count, height, width, 3)).copy()
  return splits.SplitArrays(images, labels.astype(np.int32), labels.astype(np.int32) + 100,
                              np.ones(count, np.int32), modalities.astype(np.int32),
                              np.array([f"image{i}" for i in range(count)]))


def data_config(**overrides):
  fields = dict(sampler="agw", augmentation="agw", ids_per_batch=3, images_per_id=2, pad=0,
                random_erasing="none", vimc_cutmix_hw_swap=True,
                target_sampler="independent", redraw_source_plan=False)
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def batches(train, config, epoch=0, **kwargs):
  return list(pipeline.train_dataset(train, config, seed=0, epoch=epoch,
                                     **kwargs).as_numpy_iterator())


def positions_of(views):
  """Undo the normalisation of constant images: [B, H, W, 3] float → [B] image positions."""
  pixel = views[:, 0, 0, 0] * augment.IMAGENET_STD[0] + augment.IMAGENET_MEAN[0]
  return np.round(pixel * 255).astype(int)


TRAIN = make_split([5, 3, 7, 2, 4, 6], [2, 4, 3, 6, 1, 2])


def test_agw_batches_pair_p_identities_k_images_per_modality():
  config = data_config()
  epoch = batches(TRAIN, config)
  assert len(epoch) == pipeline.steps_per_epoch(TRAIN, config) == 27 // 6 + 1
  for batch in epoch:
    for modality, name in ((splits.VISIBLE, "visible"), (splits.INFRARED, "infrared")):
      positions = positions_of(batch[name])
      assert (TRAIN.modalities[positions] == modality).all()
      np.testing.assert_array_equal(TRAIN.labels[positions], batch[f"{name}_labels"])
    np.testing.assert_array_equal(batch["visible_labels"], batch["infrared_labels"])
    blocks = batch["visible_labels"].reshape(3, 2)
    assert (blocks == blocks[:, :1]).all() and len(set(blocks[:, 0])) == 3
    assert batch["visible"].dtype == np.float32 and batch["visible_labels"].dtype == np.int32


def test_mcja_batches_group_k_images_of_p_identities_of_either_modality():
  config = data_config(sampler="mcja", ids_per_batch=2, images_per_id=4)
  epoch = batches(TRAIN, config)
  assert len(epoch) == pipeline.steps_per_epoch(TRAIN, config) == \
      sampling.mcja_num_batches(TRAIN.labels, 2, 4)
  seen_modalities = set()
  for batch in epoch:
    positions = positions_of(batch["images"])
    np.testing.assert_array_equal(TRAIN.labels[positions], batch["labels"])
    np.testing.assert_array_equal(TRAIN.modalities[positions], batch["modalities"])
    blocks = batch["labels"].reshape(2, 4)
    assert (blocks == blocks[:, :1]).all() and blocks[0, 0] != blocks[1, 0]
    seen_modalities.update(batch["modalities"].tolist())
  assert seen_modalities == {0, 1}


def test_caj_and_djanet_views_of_the_same_sampled_images():
  caj = batches(TRAIN, data_config(augmentation="caj", pad=1))[0]
  assert set(caj) == {"visible", "visible_augmented", "infrared", "visible_labels",
                      "infrared_labels"}
  djanet = batches(TRAIN, data_config(sampler="djanet", augmentation="djanet", pad=1))[0]
  assert set(djanet) == {"visible", "visible_augmented", "infrared", "infrared_augmented",
                         "visible_labels", "infrared_labels"}
  # DJANet's sampler is AGW's: the same identities for the same seed and epoch.
  agw = batches(TRAIN, data_config(pad=1))[0]
  np.testing.assert_array_equal(djanet["visible_labels"], agw["visible_labels"])
  for batch in (caj, djanet):
    assert batch["visible_augmented"].shape == batch["visible"].shape == (6, 8, 4, 3)
    # View B is channel-exchanged: equal channels.
    exchanged = batch["visible_augmented"]
    np.testing.assert_array_equal(exchanged[..., :1] == exchanged, True)


def test_domain_adaptation_source_plan_fixed_and_target_pseudo_labels_aligned():
  target = make_split([4, 4, 4, 4], [3, 3, 3, 3])
  # Pseudo-labels: a permutation of the true labels, one image left unlabelled.
  pseudo = np.array([3, 1, 0, 2])[target.labels]
  pseudo[0] = -1
  target = target.select(np.arange(len(target)))
  target = splits.SplitArrays(**{**target.__dict__, "labels": pseudo.astype(np.int32)})
  config = data_config(sampler="domain_adaptation", target_sampler="aligned")
  first, later = batches(TRAIN, config, target=target), batches(TRAIN, config, epoch=3,
                                                                target=target)
  # 27 source images per modality at most -> 27 // 6 + 1 = 5 batches; the target has
  # 16 // 6 + 1 = 3 batches, read modulo.
  assert len(first) == pipeline.steps_per_epoch(TRAIN, config, target=target) == 5
  for batch_first, batch_later in zip(first, later):
    # The source plan is drawn once (released DAN code): same images every epoch.
    np.testing.assert_array_equal(batch_first["visible_labels"], batch_later["visible_labels"])
  for index, batch in enumerate(first):
    for name in ("target_visible", "target_infrared"):
      positions = batch[f"{name}_indices"]
      np.testing.assert_array_equal(positions_of(batch[name]), positions)
      np.testing.assert_array_equal(target.labels[positions], batch[f"{name}_labels"])
    np.testing.assert_array_equal(batch["target_visible_labels"],
                                  batch["target_infrared_labels"])
    assert (batch["target_visible_labels"] >= 0).all()
    np.testing.assert_array_equal(batch["target_visible_indices"],
                                  first[index % 3]["target_visible_indices"])
  redrawn = batches(TRAIN, data_config(sampler="domain_adaptation", redraw_source_plan=True),
                    epoch=3, target=target)
  assert any(not np.array_equal(a["visible_labels"], b["visible_labels"])
             for a, b in zip(first, redrawn))


def test_target_sampler_defaults_to_aligned_and_names_the_field_when_unknown():
  target = make_split([4, 4, 4], [3, 3, 3])   # its labels stand for pseudo-labels

  def target_labels(config):
    """[visible labels, infrared labels] of the epoch's target rows, slot by slot."""
    streams = sampling.domain_adaptation_streams(TRAIN, config, seed=0, epoch=0, target=target)
    return [stream.split.labels[stream.indices] for stream in streams
            if stream.name in ("target_visible", "target_infrared")]

  # A config without the field (one written before it) gets configs/default.py's "aligned":
  # slot i of both modalities holds one pseudo-label.
  without_field = data_config(sampler="domain_adaptation")
  del without_field["target_sampler"]
  assert sampling.DEFAULT_TARGET_SAMPLER == "aligned"
  visible, infrared = target_labels(without_field)
  np.testing.assert_array_equal(visible, infrared)
  visible, infrared = target_labels(data_config(sampler="domain_adaptation",
                                                target_sampler="independent"))
  assert not np.array_equal(visible, infrared)
  with pytest.raises(ValueError, match=r"config.data.target_sampler='paired': expected one of "
                                       r"\('aligned', 'independent'\)"):
    target_labels(data_config(sampler="domain_adaptation", target_sampler="paired"))


@pytest.mark.parametrize("sampler, augmentation", [("agw", "agw"), ("mcja", "mcja"),
                                                   ("djanet", "djanet"),
                                                   ("domain_adaptation", "agw")])
def test_resuming_at_a_batch_gives_the_same_batches(sampler, augmentation):
  config = data_config(sampler=sampler, augmentation=augmentation, pad=2,
                       ids_per_batch=2, images_per_id=2, random_erasing="caj")
  whole = batches(TRAIN, config, epoch=1, target=TRAIN)
  resumed = batches(TRAIN, config, epoch=1, start_batch=2, target=TRAIN)
  assert len(resumed) == len(whole) - 2
  for expected, got in zip(whole[2:], resumed):
    assert expected.keys() == got.keys()
    for key in expected:
      np.testing.assert_array_equal(expected[key], got[key], err_msg=key)


def test_steps_per_epoch_of_each_sampler():
  # SYSU-MM01 counts: 696 at P=8, K=4; DJANet's P=24: 232 (spec djanet §3).
  sysu = splits.SplitArrays(np.zeros((0, 1, 1, 3), np.uint8), np.zeros(34167, np.int32),
                              np.zeros(34167, np.int32), np.zeros(34167, np.int32),
                              np.repeat([0, 1], [22258, 11909]).astype(np.int32),
                              np.array([]))
  assert pipeline.steps_per_epoch(sysu, data_config(ids_per_batch=8, images_per_id=4)) == 696
  assert pipeline.steps_per_epoch(
      sysu, data_config(sampler="djanet", ids_per_batch=24, images_per_id=4)) == 232
  # MCJA: chunks of TRAIN's 6 identities (7, 7, 10, 8, 5, 8 images) at K=4: 1+1+2+2+1+2 = 9.
  assert pipeline.steps_per_epoch(TRAIN, data_config(sampler="mcja", ids_per_batch=2,
                                                     images_per_id=4)) == 4


@pytest.mark.parametrize("overrides, kwargs, message", [
    (dict(sampler="pk"), {}, "sampler='pk'"),
    (dict(sampler="mcja", augmentation="caj"), {}, "mixes the modalities"),
    (dict(augmentation="randaugment"), {}, "augmentation='randaugment'"),
    (dict(sampler="domain_adaptation"), {}, "target"),
    (dict(), dict(process_count=4), "process_count=4"),
    (dict(), dict(process_index=2, process_count=2), "process_index=2"),
])
def test_bad_settings_are_errors_naming_the_setting(overrides, kwargs, message):
  with pytest.raises(ValueError, match=message):
    pipeline.train_dataset(TRAIN, data_config(**overrides), seed=0, epoch=0, **kwargs)
