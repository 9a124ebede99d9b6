"""AlignGAN's method file (spec aligngan.md §3–5): phases and rates from the global step, which
players each phase updates, the one-pass pixel gradients, the running-statistic call order,
the test feature, exact resume across phases, the config and bad input (the networks:
tests/models/test_aligngan.py; losses: tests/losses/test_aligngan_losses.py; 8 devices:
tests/training/test_parallel.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import aligngan as aligngan_configs
from vireid_jax import losses
from vireid_jax import methods
from vireid_jax.methods import aligngan
from vireid_jax.methods.base import DataInfo
from vireid_jax.models.aligngan import from_imagenet_normalized
from vireid_jax.models.layers import average_pool, l2_normalize
from vireid_jax.training.orbax_checkpoints import Checkpointer

INFO = DataInfo(num_classes=4, num_visible=8, num_infrared=8, steps_per_epoch=2)
FEATURE_WARMUP_STEP, PIXEL_WARMUP_STEP, JOINT_STEP, DECAYED_STEP = 0, 2, 4, 6


def tiny_config(**aligngan_fields):
  """64 x 32 images (the smallest the discriminators take), 2 x 2 batches, phases of 1 / 1 / joint epochs of 2 iterations, decay at
  iteration 6."""
  config = aligngan_configs.get_config("synthetic")
  data, gan = config.data, config.aligngan
  data.image_height, data.image_width = 64, 32
  data.ids_per_batch = data.images_per_id = data.gan_ids_per_batch = data.gan_images_per_id = 2
  data.batches_per_epoch = 2
  config.model.width = 8
  gan.update(generator_dim=4, residual_blocks=1, discriminator_dim=4, encoder_input_size=(32, 16),
             bottle_dim=8, embedding_dim=8, feature_warmup_epochs=1, pixel_warmup_epochs=1,
             decay_epoch=3)
  # Without dropout the gradients do not depend on the step's keys: the same state stepped at
  # two iterations differs only by the rates (the head's dropout: tests/models).
  gan.dropout = 0.0
  gan.update(aligngan_fields)
  return config


def make_batch(seed=0):
  rng = np.random.default_rng(seed)
  images = lambda: rng.normal(size=(4, 64, 32, 3)).astype(np.float32)
  labels = np.array([0, 0, 1, 1], np.int32)
  return {"visible": images(), "infrared": images(), "visible_labels": labels,
          "infrared_labels": labels, "gan_visible": images(), "gan_infrared": images(),
          "gan_visible_labels": labels, "gan_infrared_labels": labels}


@pytest.fixture(scope="module")
def method():
  return methods.resolve(tiny_config())


@pytest.fixture(scope="module")
def initial(method):
  # Committed to the device, as arrays restored from a checkpoint are: the resumed run then
  # reuses the compiled programs.
  return jax.device_put(method.create_state(INFO), jax.devices()[0])


@pytest.fixture(scope="module")
def step(method):
  """What the loop runs: the program of the phase `step_variant` names, compiled once each."""
  jitted = jax.jit(method.train_step, static_argnums=2)
  return lambda state, batch: jitted(state, batch, method.step_variant(int(state.step)))


def at(state, iteration):
  # Committed like the rest of `initial`: an uncommitted step is another jit cache key, and
  # the resume test (which steps `initial` itself) would compile every phase again.
  return state.replace(step=jax.device_put(jnp.asarray(iteration, jnp.int32),
                                           jax.devices()[0]))


def same(first, second):
  return all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first),
                                                  jax.tree.leaves(second)))


def test_phases_and_the_decay_follow_the_global_step():
  config = tiny_config()
  phases = [aligngan.phase_of(t, config) for t in range(7)]
  assert phases == [0, 0, 1, 1, 2, 2, 2]
  assert [methods.resolve(config).step_variant(t) for t in (1, 2, 4)] == [0, 1, 2]
  factors = [float(aligngan.learning_rate_factor(jnp.asarray(t), config)) for t in (5, 6)]
  assert factors == [1.0, pytest.approx(0.1)]
  # The reference: 50 / 100 epochs of 100 iterations, decay from iteration 20,000.
  sysu = aligngan_configs.get_config("sysu")
  assert [aligngan.phase_of(t, sysu) for t in (4999, 5000, 14999, 15000)] == [0, 1, 1, 2]
  assert float(aligngan.learning_rate_factor(jnp.asarray(19999), sysu)) == 1.0
  assert float(aligngan.learning_rate_factor(jnp.asarray(20000), sysu)) == pytest.approx(0.1)


@pytest.mark.parametrize("iteration, changed", [
    (FEATURE_WARMUP_STEP, {"features"}),
    (PIXEL_WARMUP_STEP, {"generators", "d_rgb_warmup", "d_ir_warmup"}),
    (JOINT_STEP, {"generators", "d_rgb", "d_ir", "features"}),
])
def test_each_phase_updates_only_its_players(initial, step, iteration, changed):
  """D_rgb / D_ir keep fresh optimiser states until the joint phase; the encoder's SGD does not
  step in the pixel warm-up (its BatchNorm statistics do move: it runs in training mode)."""
  before = at(initial, iteration)
  after, metrics = step(before, make_batch())
  assert int(after.step) == iteration + 1
  assert set(metrics) == set(aligngan.METRICS) and int(metrics["phase"]) == iteration // 2
  for player in ("generators", "d_rgb", "d_ir", "d_rgb_warmup", "d_ir_warmup", "features"):
    old, new = getattr(before, player), getattr(after, player)
    for part in ("params", "opt_state"):
      assert same(getattr(old, part), getattr(new, part)) == (player not in changed), \
          (player, part)
  statistics_moved = not same(before.features.batch_stats, after.features.batch_stats)
  assert statistics_moved                                     # every phase runs the encoder
  generator_statistics_moved = not same(before.generators.batch_stats,
                                        after.generators.batch_stats)
  assert generator_statistics_moved == (iteration != FEATURE_WARMUP_STEP)
  assert all(np.isfinite(float(value)) for value in metrics.values())
  zero = {name for name, value in metrics.items() if float(value) == 0.0}
  pixel = {"generator_loss", "cycle_loss", "d_rgb_loss", "d_ir_loss"}
  feature = {"feature_loss", "identity_loss", "triplet_loss"}
  assert (pixel <= zero) == (iteration == FEATURE_WARMUP_STEP)
  assert (feature <= zero) == (iteration == PIXEL_WARMUP_STEP)


def test_every_rate_decays_from_the_global_iteration(initial, step):
  """The same state stepped at iteration 4 and at 6 (after the decay). The feature update
  runs first, so the encoder the pixel update sees differs; D_rgb's gradient does not depend
  on it (real RGB, fakes of the pre-update G_ir2rgb), nor does the head's (the feature update
  is its only one). Both first updates (Adam, momentum SGD) are a tenth after the decay."""
  full, _ = step(at(initial, JOINT_STEP), make_batch())
  decayed, _ = step(at(initial, DECAYED_STEP), make_batch())
  for player, part in (("d_rgb", lambda net: net.params),
                       ("features", lambda net: net.params["head"])):
    old = jax.tree.leaves(part(getattr(initial, player)))
    for before, after_full, after_decayed in zip(
        old, jax.tree.leaves(part(getattr(full, player))),
        jax.tree.leaves(part(getattr(decayed, player)))):
      np.testing.assert_allclose(np.asarray(after_decayed) - np.asarray(before),
                                 0.1 * (np.asarray(after_full) - np.asarray(before)),
                                 rtol=1e-3, atol=1e-7, err_msg=player)


def test_the_one_pass_pixel_gradients_equal_the_reference_separate_passes(method, initial):
  """One grad of L_G + L_D_rgb + L_D_ir (adversarial_scores + stop-gradients) = the reference's
  G pass (discriminators frozen) and D passes (fakes, maps and encoder frozen)."""
  config, batch = method.config, make_batch()
  state = at(initial, JOINT_STEP)
  visible = from_imagenet_normalized(batch["gan_visible"])
  infrared = from_imagenet_normalized(batch["gan_infrared"])
  labels = batch["gan_visible_labels"]
  keys = list(jax.random.split(jax.random.key(3), 2))
  params = {"generators": state.generators.params, "d_rgb": state.d_rgb.params,
            "d_ir": state.d_ir.params}
  one_pass = jax.jit(jax.grad(lambda p: aligngan.pixel_losses(
      p, state, visible, infrared, labels, joint=True, dropout_keys=keys, config=config)[0]))(
          params)

  d_rgb = lambda p, x: nnx.merge(state.d_rgb.graphdef, p)(x)
  d_ir = lambda p, x, m: nnx.merge(state.d_ir.graphdef, p)(x, m)

  def forward(generator_params):
    generators = state.generators.model(training=True, params=generator_params)
    features = state.features.model(training=True)
    fake_rgb, fake_ir = generators.g_ir2rgb(infrared), generators.g_rgb2ir(visible)
    real_maps, fake_maps = features.encoder(infrared), features.encoder(fake_ir)
    return generators, features, fake_rgb, fake_ir, real_maps, fake_maps

  def generator_loss(generator_params):
    generators, features, fake_rgb, fake_ir, real_maps, fake_maps = forward(generator_params)
    frozen = jax.lax.stop_gradient
    adversarial = 0.5 * (jnp.mean((d_rgb(frozen(params["d_rgb"]), fake_rgb) - 1) ** 2)
                         + jnp.mean((d_ir(frozen(params["d_ir"]), fake_ir, frozen(real_maps))
                                     - 1) ** 2))
    cycle = 0.5 * (jnp.mean(jnp.abs(generators.g_ir2rgb(fake_ir) - visible))
                   + jnp.mean(jnp.abs(generators.g_rgb2ir(fake_rgb) - infrared)))
    identity = 0.5 * (jnp.mean(jnp.abs(generators.g_ir2rgb(visible) - visible))
                      + jnp.mean(jnp.abs(generators.g_rgb2ir(infrared) - infrared)))
    _, _, real_embedding = features.head(real_maps, keys[0])
    _, fake_logits, fake_embedding = features.head(fake_maps, keys[1])
    triplet = lambda a, b: losses.cosine_batch_hard_triplet(a, b, b, labels, labels, labels)
    return (adversarial + 10 * cycle + 5 * identity
            + 0.1 * (triplet(fake_embedding, real_embedding)
                     + triplet(real_embedding, fake_embedding))
            + 0.1 * losses.cross_entropy(fake_logits, labels))

  # The D passes see the fakes and maps of the pre-update generator as constants.
  fake_rgb, fake_ir, real_maps, fake_maps = jax.jit(lambda p: forward(p)[2:])(
      params["generators"])
  mse = lambda scores, target: jnp.mean((scores - target) ** 2)
  d_rgb_loss = lambda p: 0.5 * (mse(d_rgb(p, visible), 1) + mse(d_rgb(p, fake_rgb), 0))
  wrong = jnp.concatenate([infrared[2:], infrared[:2]])      # cat([i[K:], i[:K]]), K = 2
  d_ir_loss = lambda p: 0.5 * (mse(d_ir(p, infrared, real_maps), 1) + 0.25 * (
      mse(d_ir(p, wrong, real_maps), 0) + mse(d_ir(p, infrared, fake_maps), 0)
      + mse(d_ir(p, fake_ir, real_maps), 0) + mse(d_ir(p, fake_ir, fake_maps), 0)))
  separate = jax.jit(lambda params: {
      "generators": jax.grad(generator_loss)(params["generators"]),
      "d_rgb": jax.grad(d_rgb_loss)(params["d_rgb"]),
      "d_ir": jax.grad(d_ir_loss)(params["d_ir"])})(params)
  for name in separate:
    for ours, theirs in zip(jax.tree.leaves(one_pass[name]), jax.tree.leaves(separate[name])):
      np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6 * float(
          np.max(np.abs(theirs)) + 1e-12), err_msg=name)
  assert any(np.any(leaf != 0) for leaf in jax.tree.leaves(one_pass["d_ir"]))


def test_running_statistics_follow_the_reference_call_order(initial, step):
  """Pixel warm-up: each generator's IN statistics from translation, cycle, identity in that
  order; the encoder's and head's BatchNorm real IR first, then the fakes."""
  batch = make_batch()
  state = at(initial, PIXEL_WARMUP_STEP)
  after, _ = step(state, batch)
  visible = from_imagenet_normalized(batch["gan_visible"])
  infrared = from_imagenet_normalized(batch["gan_infrared"])

  def generator_statistics(order):
    generators = state.generators.model(training=True)
    fake_rgb, fake_ir = generators.g_ir2rgb(infrared), generators.g_rgb2ir(visible)
    calls = {"cycle": lambda: (generators.g_ir2rgb(fake_ir), generators.g_rgb2ir(fake_rgb)),
             "identity": lambda: (generators.g_ir2rgb(visible), generators.g_rgb2ir(infrared))}
    for name in order:
      calls[name]()
    return nnx.state(generators, nnx.BatchStat)

  def close(first, second):
    return all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in
               zip(jax.tree.leaves(first), jax.tree.leaves(second)))

  assert close(after.generators.batch_stats, generator_statistics(("cycle", "identity")))
  assert not close(after.generators.batch_stats, generator_statistics(("identity", "cycle")))

  def feature_statistics(real_first):
    generators = state.generators.model(training=True)
    fake_ir = generators.g_rgb2ir(visible)
    features = state.features.model(training=True)
    images = (infrared, fake_ir) if real_first else (fake_ir, infrared)
    for image in images:
      features.head(features.encoder(image), jax.random.key(0))
    return nnx.state(features, nnx.BatchStat)

  assert close(after.features.batch_stats, feature_statistics(real_first=True))
  assert not close(after.features.batch_stats, feature_statistics(real_first=False))


def test_the_joint_feature_step_translates_first(initial, step):
  """G_rgb2ir's statistics in a joint iteration: the feature step's translation of the IDE
  batch, then the pixel step's three calls."""
  batch = make_batch()
  state = at(initial, JOINT_STEP)
  after, _ = step(state, batch)
  generators = state.generators.model(training=True)
  generators.g_rgb2ir(from_imagenet_normalized(batch["visible"]))
  visible = from_imagenet_normalized(batch["gan_visible"])
  infrared = from_imagenet_normalized(batch["gan_infrared"])
  fake_rgb, fake_ir = generators.g_ir2rgb(infrared), generators.g_rgb2ir(visible)
  generators.g_ir2rgb(fake_ir), generators.g_rgb2ir(fake_rgb)
  generators.g_ir2rgb(visible), generators.g_rgb2ir(infrared)
  for ours, expected in zip(jax.tree.leaves(after.generators.batch_stats),
                            jax.tree.leaves(nnx.state(generators, nnx.BatchStat))):
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_the_test_feature_flips_after_the_translation(method, initial):
  rng = np.random.default_rng(5)
  images = rng.normal(size=(3, 64, 32, 3)).astype(np.float32)
  # Weights far from the N(0, 0.02) start, whose near-constant translations would hide the
  # difference between flipping before and after the generator.
  keys = iter(jax.random.split(jax.random.key(7), 100))
  initial = initial.replace(generators=initial.generators.replace(params=jax.tree.map(
      lambda p: p + 0.3 * jax.random.normal(next(keys), p.shape), initial.generators.params)))
  generators = initial.generators.model(training=False)
  encoder = initial.features.model(training=False).encoder

  def pooled(x):
    return average_pool(encoder(x)) + average_pool(encoder(jnp.flip(x, axis=2)))

  x = from_imagenet_normalized(jnp.asarray(images))
  features = jax.jit(method.features, static_argnums=2)
  visible = features(initial, images, "visible")
  assert set(visible) == {"pool"}
  np.testing.assert_allclose(visible["pool"], l2_normalize(pooled(generators.g_rgb2ir(x))),
                             rtol=1e-4, atol=1e-6)
  flipped_first = l2_normalize(average_pool(encoder(generators.g_rgb2ir(x)))
                               + average_pool(encoder(generators.g_rgb2ir(jnp.flip(x, axis=2)))))
  assert not np.allclose(visible["pool"], flipped_first, atol=1e-3)
  np.testing.assert_allclose(features(initial, images, "infrared")["pool"],
                             l2_normalize(pooled(x)), rtol=1e-4, atol=1e-6)
  # "instance": the generator normalises each image by itself, not by running statistics.
  instance = methods.resolve(tiny_config(test_instance_norm="instance"))
  per_image = jax.jit(instance.features, static_argnums=2)(initial, images, "visible")
  translated = initial.generators.model(training=True).g_rgb2ir(x)
  np.testing.assert_allclose(per_image["pool"], l2_normalize(pooled(translated)), rtol=1e-4,
                             atol=1e-6)
  assert not np.allclose(per_image["pool"], visible["pool"], atol=1e-3)


def test_a_run_resumed_mid_phase_equals_an_uninterrupted_one(method, initial, step, tmp_path):
  """Six iterations across all three phases, straight or saved after the third (mid pixel
  warm-up) and restored into a fresh state: every player, optimiser state and the step."""
  batches = [make_batch(seed) for seed in range(6)]
  straight = initial
  for batch in batches:
    straight, _ = step(straight, batch)
  resumed = initial
  for batch in batches[:3]:
    resumed, _ = step(resumed, batch)
  checkpointer = Checkpointer(str(tmp_path))
  checkpointer.save(resumed)
  checkpointer.wait()
  restored = checkpointer.restore(initial)        # into the structure the run started from
  checkpointer.close()
  assert int(restored.step) == 3
  for batch in batches[3:]:
    restored, _ = step(restored, batch)
  assert same(jax.tree.leaves(straight), jax.tree.leaves(restored))


def test_bad_settings_are_refused_naming_the_field():
  for field, value, message in (
      ("eval.flip", True, r"config\.eval\.flip=True"),
      ("data.gan_ids_per_batch", 1, r"config\.data\.gan_ids_per_batch=1"),
      ("data.image_width", 16, r"64 x 16 is too small for the discriminators"),
      ("data.image_height", 62, r"multiples of 4"),
      ("aligngan.test_instance_norm", "batch", r"test_instance_norm='batch'"),
  ):
    config = tiny_config()
    block, name = field.split(".")
    config[block][name] = value
    with pytest.raises(ValueError, match=message):
      aligngan.check_config(config)
  with pytest.raises(ValueError, match=r"takes its phase.*step_variant"):
    aligngan.AlignGANMethod(tiny_config()).train_step(None, make_batch(), None)
  config = tiny_config(discriminator_layers=3)      # 4 halvings keep 4 x 2, D_ir's 5 not
  config.data.image_width = 32
  config.data.image_height = 32
  with pytest.raises(ValueError, match=r"32 x 32 is too small for D_ir"):
    aligngan.check_config(config)


def test_the_reference_config():
  config = aligngan_configs.get_config("sysu")
  assert (config.data.ids_per_batch, config.data.images_per_id) == (18, 4)
  assert (config.data.gan_ids_per_batch, config.data.gan_images_per_id) == (4, 4)
  assert (config.data.image_height, config.data.image_width, config.data.pad) == (128, 128, 0)
  assert config.data.resize_filter == "bicubic" and config.data.sampler == "aligngan"
  gan = config.aligngan
  assert (gan.feature_warmup_epochs, gan.pixel_warmup_epochs, gan.decay_epoch,
          config.train.num_epochs, config.data.batches_per_epoch) == (50, 100, 200, 251, 100)
  assert (gan.pixel_lr, gan.feature_lr, gan.encoder_lr_scale) == (2e-4, 0.2, 0.1)
  assert (gan.cycle_weight, gan.identity_mapping_weight, gan.pixel_triplet_weight,
          gan.pixel_identity_weight, gan.feature_adversarial_weight) == (10, 5, 0.1, 0.1, 0.1)
  assert config.eval.gallery_scheme == "official" and config.eval.features == ("pool",)
  for dataset in ("regdb", "llcm"):
    assert aligngan_configs.get_config(dataset).method == "aligngan"
