"""DAN's method file (spec dan.md §3–§6; issue 17 items 3–8, 10): the step's terms and weights,
the two forward calls, the GRL factors and the memory rows from the step, the epoch hook's
pseudo-labels and memories, the config and bad input. (The pure functions against the
authors' code: tests/losses/test_dan_losses.py; the network and the import:
tests/models/test_dan.py; end to end on 8 devices: tests/training/test_method_runs.py and
test_parallel_mmn_djanet.py; kill and resume: tests/training/test_main.py.)"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dan as dan_configs
from vireid_jax import losses
from vireid_jax import methods
from vireid_jax.data import sampling
from vireid_jax.data.splits import INFRARED, VISIBLE, SplitArrays, Splits
from vireid_jax.methods import dan
from vireid_jax.methods.base import DataInfo, EpochContext

# 2 ids x 2 images per modality and domain, 3 steps per epoch: memories of 3 x 4 rows.
INFO = DataInfo(num_classes=4, num_visible=8, num_infrared=8, steps_per_epoch=3,
                num_target_visible=10, num_target_infrared=10)


def tiny_config(**dan_fields):
  config = dan_configs.get_config("synthetic")
  config.model.width = 8
  config.data.image_height, config.data.image_width = 64, 32
  config.data.ids_per_batch = config.data.images_per_id = 2
  config.dan.discriminator_hidden = 16
  config.dan.reliable_neighbours = 2
  config.dan.update(dan_fields)
  return config


def make_batch(seed=0, target_seed=None):
  rng = np.random.default_rng(seed)
  target_rng = np.random.default_rng(seed if target_seed is None else target_seed + 100)
  image = lambda generator: generator.normal(size=(4, 64, 32, 3)).astype(np.float32)
  labels = np.array([0, 0, 1, 1], np.int32)
  source = {"visible": image(rng), "infrared": image(rng), "visible_labels": labels,
            "infrared_labels": labels}
  target = {"target_visible": image(target_rng), "target_infrared": image(target_rng),
            "target_visible_labels": np.array([2, 2, 3, 3], np.int32),
            "target_infrared_labels": np.array([2, 2, 0, 0], np.int32)}
  return {**source, **target}


@pytest.fixture(scope="module")
def method():
  return methods.resolve(tiny_config())


@pytest.fixture(scope="module")
def state(method):
  """The initial state with memories filled as an epoch hook would (random unit rows)."""
  state = method.create_state(INFO)
  rng = np.random.default_rng(1)
  def memory(labels_seed):
    rows = state.visible_memory.features.shape[0]
    features = rng.normal(size=(rows, state.visible_memory.features.shape[1]))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    return dan.TargetMemory(
        features=jnp.asarray(features, jnp.float32),
        labels=jnp.asarray(np.random.default_rng(labels_seed).integers(0, 4, rows), jnp.int32),
        neighbours=jnp.asarray(dan.reliable_neighbours(features.astype(np.float32), 2)))
  return state.replace(visible_memory=memory(2), infrared_memory=memory(3))


@pytest.fixture(scope="module")
def loss_terms(method):
  """The jitted loss: (state, batch) -> (total, metrics), with the step's network and D."""
  def terms(state, batch):
    model = state.net.model(training=True)
    discriminator = state.discriminator.model(training=True)
    return dan.loss_fn(model, discriminator, batch, state, method.config)
  return jax.jit(terms)


def test_the_state_sizes_every_part_from_the_data(method, state):
  assert state.visible_memory.features.shape == (3 * 4, 64)    # steps x P*K, width 8: D = 64
  assert state.visible_memory.neighbours.shape == (12, 2)
  assert state.target_labels.shape == (20,) and (np.asarray(state.target_labels) == -1).all()
  assert state.net.params["classifier"]["kernel"].shape == (64, 4)
  # D reads the BNNeck feature [P]; "softmax" sizes it by the source classes.
  assert state.discriminator.params["hidden1"]["kernel"].shape == (64, 16)
  softmax = methods.resolve(tiny_config(daa_input="softmax")).create_state(INFO)
  assert softmax.discriminator.params["hidden1"]["kernel"].shape == (4, 16)
  # No BNNeck β; no non-local blocks.
  assert "bias" not in state.net.params["bottleneck"]
  assert "inserted" not in state.net.params["stages"]


def test_the_total_is_the_weighted_sum_of_the_terms(method, state, loss_terms):
  total, metrics = loss_terms(state, make_batch())
  weights = method.config.loss
  expected = (metrics["identity_loss"] + metrics["triplet_loss"]
              + metrics["adversarial_visible"] + metrics["adversarial_infrared"]
              + weights.memory_weight * (metrics["memory_visible"] + metrics["memory_infrared"])
              + metrics["cma_mean"] + metrics["cma_std"])
  np.testing.assert_allclose(total, expected, rtol=1e-6)
  assert weights.memory_weight == 0.1
  # Target label 2 is in both halves: the alignment is active.
  assert float(metrics["cma_mean"]) > 0
  np.testing.assert_allclose(metrics["grl_scale"], dan.grl_scales(0)[0], rtol=1e-6)


def test_the_source_forward_never_sees_the_target_rows(state, loss_terms):
  """Two forward calls: the source terms (and the source BatchNorm statistics) do not depend on
  the target images; the target terms do."""
  _, first = loss_terms(state, make_batch(0, target_seed=1))
  _, second = loss_terms(state, make_batch(0, target_seed=2))
  for name in ("identity_loss", "triplet_loss", "accuracy"):
    assert float(first[name]) == float(second[name]), name
  assert float(first["memory_visible"]) != float(second["memory_visible"])


@jax.jit
def target_features(state, batch):
  pooled = state.net.model(training=True)(visible=batch["target_visible"],
                                          infrared=batch["target_infrared"]).pooled
  return pooled / jnp.linalg.norm(pooled, axis=1, keepdims=True)


def test_memory_rows_and_grl_factors_follow_the_step(method, state, loss_terms):
  batch = make_batch()
  for step in (0, 4):   # epoch 0 batch 0, epoch 1 batch 1 (3 steps per epoch)
    at = state.replace(step=jnp.asarray(step, jnp.int32))
    _, metrics = loss_terms(at, batch)
    features = target_features(at, batch)
    rows = (step % 3) * 4 + np.arange(4)
    visible, infrared = at.visible_memory, at.infrared_memory
    expected_visible = losses.memory_loss(
        features[:4], rows, batch["target_visible_labels"], infrared.features,
        infrared.features, visible.neighbours, visible.labels)
    # Symmetric [P]: the IR samples' neighbour term over the RGB memory.
    expected_infrared = losses.memory_loss(
        features[4:], rows, batch["target_infrared_labels"], visible.features,
        visible.features, infrared.neighbours, infrared.labels)
    np.testing.assert_allclose(metrics["memory_visible"], expected_visible, rtol=1e-4)
    np.testing.assert_allclose(metrics["memory_infrared"], expected_infrared, rtol=1e-4)
    np.testing.assert_allclose(metrics["grl_scale"], dan.grl_scales(step)[0], rtol=1e-6)
  # The release's IR neighbour term reads the IR memory.
  release = methods.resolve(tiny_config(memory_symmetric=False))
  _, release_metrics = jax.jit(lambda state, batch: dan.loss_fn(
      state.net.model(training=True), state.discriminator.model(training=True), batch, state,
      release.config))(state, batch)
  _, symmetric_metrics = loss_terms(state, batch)
  assert float(release_metrics["memory_infrared"]) != float(symmetric_metrics["memory_infrared"])
  assert float(release_metrics["memory_visible"]) == pytest.approx(
      float(symmetric_metrics["memory_visible"]), rel=1e-5)


def test_one_step_updates_the_network_and_the_discriminator_once(method, state):
  new_state, metrics = jax.jit(method.train_step)(state, make_batch())
  assert int(new_state.step) == 1
  assert all(np.isfinite(float(value)) for value in metrics.values())
  changed = lambda before, after: any(not np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(before), jax.tree.leaves(after)))
  assert changed(state.net.params, new_state.net.params)
  assert changed(state.discriminator.params, new_state.discriminator.params)
  # The running statistics moved twice (source then target call): momentum 0.1 twice from
  # the initial mean 0 leaves 0.19 of a batch mean's scale, not 0.1.
  assert changed(state.net.batch_stats, new_state.net.batch_stats)
  # The memories and pseudo-labels are the epoch hook's, untouched by steps.
  np.testing.assert_array_equal(new_state.visible_memory.features, state.visible_memory.features)


def test_the_discriminator_learns_at_the_head_rate_and_the_backbone_at_a_tenth():
  config = dan_configs.get_config("sysu")
  assert config.optim.base_lr == 0.1 and config.optim.backbone_lr_scale == 0.1
  assert tuple(config.optim.milestones) == () and config.optim.warmup_epochs == 0
  assert config.optim.nesterov and config.optim.momentum == 0.9
  assert config.optim.weight_decay == 5e-4
  method = methods.resolve(tiny_config())
  state = method.create_state(INFO)
  grads = jax.tree.map(jnp.ones_like, state.discriminator.params)
  updated = state.discriminator.apply_gradients(grads)
  first = jax.tree.leaves(state.discriminator.params)[0]
  moved = jax.tree.leaves(updated.params)[0] - first
  # SGD's first step: -(lr (g + wd p)) (1 + momentum) with Nesterov.
  np.testing.assert_allclose(moved, -0.1 * (1 + 5e-4 * first) * 1.9, rtol=1e-4, atol=1e-7)


def tiny_split(seed, num_ids, per_id, labelled=True):
  rng = np.random.default_rng(seed)
  person_ids = np.repeat(np.arange(num_ids), per_id)
  num = 2 * len(person_ids)
  modalities = np.concatenate([np.full(len(person_ids), VISIBLE),
                               np.full(len(person_ids), INFRARED)]).astype(np.int32)
  ids = np.concatenate([person_ids, person_ids]).astype(np.int32)
  return SplitArrays(
      images=rng.integers(0, 255, size=(num, 8, 4, 3), dtype=np.uint8),
      labels=ids if labelled else np.full(num, -1, np.int32), person_ids=ids,
      cameras=np.where(modalities == VISIBLE, 1, 3).astype(np.int32), modalities=modalities,
      relative_paths=np.array([f"{i}.jpg" for i in range(num)]))


def fake_features(state, images, modality):
  """A stand-in for the network's evaluation features: a fixed projection of the pixels
  (different per modality), L2-normalised."""
  projection = np.random.default_rng(0 if modality == "visible" else 1).normal(size=(96, 6))
  features = images.reshape(len(images), -1).astype(np.float32) @ projection
  return {"pool": features / np.linalg.norm(features, axis=1, keepdims=True)}


@pytest.mark.parametrize("plg", ["mean", "release"])
def test_the_epoch_hook_labels_the_target_and_fills_the_memories_in_plan_order(plg):
  config = tiny_config(plg=plg)
  source, target = tiny_split(0, 4, 3), tiny_split(1, 5, 2, labelled=False)
  info = dataclasses.replace(INFO, num_target_visible=10, num_target_infrared=10)
  method = methods.resolve(config)
  state = method.create_state(info)
  state = state.replace(visible_memory=dan.TargetMemory(
      jnp.zeros((12, 6)), state.visible_memory.labels, state.visible_memory.neighbours),
      infrared_memory=dan.TargetMemory(
          jnp.zeros((12, 6)), state.infrared_memory.labels, state.infrared_memory.neighbours))
  context = EpochContext(config=config, splits=Splits(train=source, test=target, target=target,
                                                       test_dataset="sysu"),
                         mesh=None, features=fake_features)
  new_state = method.begin_epoch(state, 2, context)

  labels = np.asarray(new_state.target_labels)
  for modality, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
    source_rows = source.modalities == modality
    features = fake_features(None, source.images[source_rows], name)["pool"]
    if plg == "mean":
      centres = dan.source_centres(features, source.labels[source_rows], 4, mode="mean")
    else:
      # The release's halving average over the source plan (drawn once: epoch 0).
      plan = sampling.get_sampler("domain_adaptation").streams(
          source, config.data, seed=config.seed, epoch=2, target=target)[
              0 if name == "visible" else 1].indices.reshape(-1)
      rank = np.searchsorted(np.flatnonzero(source_rows), plan)
      centres = dan.source_centres(features[rank], source.labels[plan], 4, mode="release",
                                   images_per_id=2)
    target_rows = target.modalities == modality
    expected = dan.assign_pseudo_labels(
        fake_features(None, target.images[target_rows], name)["pool"], centres, mode=plg)
    np.testing.assert_array_equal(labels[target_rows], expected)
  # What the sampler gets, and the memories in the order it feeds the rows.
  np.testing.assert_array_equal(method.epoch_inputs(new_state)["target_labels"], labels)
  streams = {stream.name: stream for stream in sampling.get_sampler("domain_adaptation").streams(
      source, config.data, seed=config.seed, epoch=2, target=target,
      epoch_inputs={"target_labels": labels})}
  for memory, name in ((new_state.visible_memory, "target_visible"),
                       (new_state.infrared_memory, "target_infrared")):
    planned = streams[name].indices.reshape(-1)[:12]
    modality = VISIBLE if name == "target_visible" else INFRARED
    features = fake_features(None, target.images[planned], name[len("target_"):])["pool"]
    assert (target.modalities[planned] == modality).all()
    np.testing.assert_allclose(memory.features, features, rtol=1e-5)
    np.testing.assert_array_equal(memory.labels, labels[planned])
    np.testing.assert_array_equal(memory.neighbours, dan.reliable_neighbours(features, 2))
  present = [set(labels[target.modalities == m].tolist()) for m in (VISIBLE, INFRARED)]
  np.testing.assert_array_equal(new_state.label_counts, [len(present[0]), len(present[1]),
                                                         len(present[0] & present[1])])


def test_the_config_holds_the_references_values_and_names_each_task():
  config = dan_configs.get_config("sysu")
  assert (config.data.dataset, config.data.target.dataset) == ("sysu", "regdb")
  assert config.dan.to_dict() == {
      "daa_input": "bn", "adversarial_reduction": "sum", "discriminator_hidden": 1024,
      "discriminator_dropout": 0.5, "grl_alpha": 10.0, "grl_max_iter": 10000.0, "plg": "mean",
      "reliable_neighbours": 5, "memory_instance_weight": 0.4, "memory_temperature": 1.0,
      "memory_symmetric": True, "cma": "corrected"}
  assert (config.data.ids_per_batch, config.data.images_per_id) == (3, 4)
  assert (config.data.image_height, config.data.image_width, config.data.pad) == (288, 144, 10)
  assert config.train.num_epochs == 16 and config.eval.main_feature == "pool"
  assert (config.model.non_local, config.model.pooling) == (False, "max")
  assert dan_configs.get_config("regdb").data.target.dataset == "sysu"
  assert dan_configs.get_config("llcm").data.target.dataset == "regdb"
  noise = dan_configs.get_config("sysu_to_sysu_noise")
  assert (noise.data.target.dataset, noise.data.target.domain) == ("sysu", "noise")
  demo = dan_configs.get_config("synthetic_background")
  assert (demo.data.dataset, demo.data.target.dataset, demo.data.target.domain) == (
      "regdb", "sysu", "background")
  with pytest.raises(ValueError, match="same-dataset task needs a target domain"):
    dan_configs.get_config("regdb_to_regdb")
  with pytest.raises(ValueError, match="unknown task"):
    dan_configs.get_config("sysu_to_market")


@pytest.mark.parametrize("field, value, message", [
    ("dan.daa_input", "logits", r"config\.dan\.daa_input='logits'"),
    ("dan.plg", "kmeans", r"config\.dan\.plg='kmeans'"),
    ("dan.cma", "both", r"config\.dan\.cma='both'"),
    ("dan.memory_symmetric", "yes", r"config\.dan\.memory_symmetric='yes'"),
    ("dan.adversarial_reduction", "max", r"config\.dan\.adversarial_reduction='max'"),
    ("data.target.dataset", "", r"config\.data\.target\s*\.dataset"),
    ("data.sampler", "agw", r"config\.data\.sampler='agw'"),
    ("eval.flip", True, r"config\.eval\.flip=True"),
])
def test_bad_settings_are_refused_naming_the_field(field, value, message):
  config = tiny_config()
  section, key = field.rsplit(".", 1)
  parent = config
  for part in section.split("."):
    parent = parent[part]
  with parent.ignore_type():
    parent[key] = value
  with pytest.raises(ValueError, match=message):
    methods.resolve(config)


def test_reliable_neighbours_in_row_blocks_equal_one_stable_argsort():
  """The blocked computation (a SYSU-MM01 plan has ~22,000 rows) gives the whole-matrix
  answer, ties at the k-th place included (rounded features make many)."""
  memory = np.round(np.random.default_rng(0).normal(size=(40, 3)), 0).astype(np.float32)
  memory[7] = memory[2]
  squared = (memory.astype(np.float64) ** 2).sum(1)
  distances = np.maximum(squared[:, None] + squared[None] - 2.0 * memory.astype(np.float64)
                         @ memory.astype(np.float64).T, 0.0)
  expected = np.argsort(distances, axis=1, kind="stable")[:, 1:6]
  for block_rows in (1, 7, 40, 1024):
    np.testing.assert_array_equal(dan.reliable_neighbours(memory, 5, block_rows=block_rows),
                                  expected)


def test_label_purity_is_the_share_of_images_in_their_pseudo_class_majority():
  labels = np.array([0, 0, 0, 1, 1, -1, 2])
  person_ids = np.array([5, 5, 6, 7, 7, 9, 8])
  # Class 0: two of three are person 5; class 1: both person 7; class 2: one; -1 not counted.
  assert dan.label_purity(labels, person_ids) == pytest.approx(5 / 6)
  assert dan.label_purity(np.full(3, -1), person_ids[:3]) == 0.0
