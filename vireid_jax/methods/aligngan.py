"""AlignGAN: joint pixel and feature alignment (Wang et al., ICCV 2019; spec aligngan.md).

Players (§2; `vireid_jax.models.aligngan`). The pixel alignment module: generators G_rgb2ir
and G_ir2rgb (one Adam, the reference's G_optimizer), unconditional discriminators D_rgb,
D_rgb_warmup, D_ir_warmup and the joint discriminator D_ir, which judges (IR image, encoder
feature map) pairs (one Adam each: PyTorch's Adam skips parameters without gradients, so D_rgb
and D_ir start with fresh moments and bias correction at the joint phase). The feature
alignment module: a ResNet-50 encoder (last stride 1, ImageNet start) behind the differentiable
128×128 → 384×192 adapter, and the head (dropout → bottleneck classifier; a 256-d embedding),
trained with SGD-Nesterov (momentum 0.9, weight decay 5e-4 added to the gradient), the encoder
at 0.1× the head's rate.

Notation: r, i real RGB / IR images (slot k of both of one identity, the "aligngan" sampler),
f_i = G_rgb2ir(r), f_r = G_ir2rgb(i), M = encoder maps, e / logits the head's outputs, T the
cosine batch-hard triplet (margin 1), CE cross-entropy, MSE(·, t) the LSGAN loss to target t.

Objectives (§3), weights in `config.aligngan`:
  L_G   = ½[MSE(D_rgb(f_r), 1) + MSE(D_ir(f_i, sg(M_i)), 1)]               (lambda 1)
          + 10 · ½[|G_ir2rgb(f_i) − r| + |G_rgb2ir(f_r) − i|]               (cycle_weight)
          + 5 · ½[|G_ir2rgb(r) − r| + |G_rgb2ir(i) − i|]                    (identity_weight)
          + 0.1 · [T(e(f_i); e(i)) + T(e(i); e(f_i))] + 0.1 · CE(logits(f_i), y)
  L_D_rgb = ½[MSE(D_rgb(r), 1) + MSE(D_rgb(sg(f_r)), 0)]
  L_D_ir  = ½[MSE(D_ir(i, M_i), 1) + ¼ Σ MSE(fake pair, 0)], fake pairs (roll(i, −K), M_i),
            (i, M_f), (f_i, M_i), (f_i, M_f), everything under stop-gradient; roll by K
            pairs each image with the next identity group's
  L_F   = CE(logits(sg f_i), y_r) + CE(logits(i), y_i) + T(e(f_i); e(i)) + T(e(i); e(f_i))
          + 0.1 · MSE(D_ir(i, M_f), 1)                                     (D_ir frozen)

Schedule (§4), in iterations of the GLOBAL step (one loop step = one reference iteration,
`config.data.batches_per_epoch` = 100 per loop epoch = one reference "step"):
  1. feature warm-up, epochs [0, 50): CE(logits(i), y) + T(e(i); e(i)) on the IR IDE batch,
     SGD on encoder + head (the RGB IDE batch is drawn and unused, as the reference's);
  2. pixel warm-up, epochs [50, 150): the pixel update below with D_rgb_warmup / D_ir_warmup
     (unconditional: ½[MSE(D(real), 1) + MSE(D(sg fake), 0)]) and the frozen encoder;
  3. joint, epochs [150, 251): (i) the feature update on the IDE batch (f_i from the generator
     in training mode, without gradient; M_f and M_i as two encoder calls), then (ii) the pixel
     update on the GAN batch with the just-updated encoder.
Every learning rate is ×0.1 from epoch 200 (`decay_epoch`); rates come from the global step,
not from an optimiser's own count (the encoder's SGD does not step during the pixel warm-up).
Each phase is a jitted program of its own: `step_variant(step)` names the phase and the loop
passes it to `train_step` as a static argument (one program branching with `lax.cond` ran
five times slower per joint step on CPU).

The pixel update is ONE gradient of L_G + L_D_rgb + L_D_ir with respect to {generators, D_rgb,
D_ir}, each applied with its own optimiser. `ops.adversarial_scores` gives the generator-facing
and discriminator-facing scores of one discriminator pass on the fakes; every other
discriminator input that depends on a generator is under stop-gradient. This equals the
reference's G-then-D updates because both D updates use the fakes and weights from before the
G update (`ops/minmax.py`). `ops.minmax_value_and_grad` and `ops.gradient_reversal` do not
apply: the LSGAN generator's target (1) is not the negation of the discriminator's loss, and
the feature step's adversary term is evaluated at other times than D_ir's update.

Running statistics follow the reference's call order: each generator's instance norms update
on each training call (translation, cycle, identity; G_rgb2ir also in the feature step's
translation), the encoder's BatchNorms fake-then-real in feature updates and real-then-fake in
pixel updates (the pixel warm-up included: the encoder is frozen but in training mode).

Test feature (§5.1): RGB → G_rgb2ir with running statistics ("running"; "instance" normalises
each image by itself) → x, IR → x; g(x) + g(flip(x)) normalised; key "pool", no "bn".

Deviations, documented: generator IN γ starts at 1 (PyTorch 1.1 drew U(0, 1)); BatchNorm
statistics over the whole batch (the reference's 4-GPU DataParallel used per-GPU quarters,
§4.4); both sampler streams advance in every phase (the reference's GAN loaders idle during
the feature warm-up: the same distribution of batches); the reference's image logging, which
also runs G_rgb2ir in training mode, is not reproduced.
"""

from __future__ import annotations

from flax import nnx
from flax import struct
import jax
import jax.numpy as jnp
import optax

from vireid_jax import checkpoints
from vireid_jax import losses
from vireid_jax import ops
from vireid_jax.methods import base
from vireid_jax.models import aligngan_pytorch
from vireid_jax.models.aligngan import AlignGAN, Encoder, Generator, Head, build_aligngan
from vireid_jax.models.aligngan import from_imagenet_normalized, test_outputs
from vireid_jax.training import optim

FEATURE_WARMUP, PIXEL_WARMUP, JOINT = 0, 1, 2
PHASES = ("feature_warmup", "pixel_warmup", "joint")
TEST_INSTANCE_NORMS = ("running", "instance")

# Every phase reports every metric (zeros for what it does not compute), so the three branches
# of the step have one output structure.
METRICS = ("loss", "phase", "learning_rate_factor",
           "feature_loss", "identity_loss", "triplet_loss", "feature_adversarial_loss",
           "accuracy",
           "generator_loss", "generator_adversarial_loss", "cycle_loss", "identity_mapping_loss",
           "pixel_triplet_loss", "pixel_identity_loss", "d_rgb_loss", "d_ir_loss")


class Generators(nnx.Module):
  """G_rgb2ir and G_ir2rgb: one player with one optimiser (the reference's G_optimizer)."""

  def __init__(self, g_rgb2ir: Generator, g_ir2rgb: Generator):
    self.g_rgb2ir = g_rgb2ir
    self.g_ir2rgb = g_ir2rgb


class FeatureModule(nnx.Module):
  """The encoder and the head: one player (the reference's ide_optimizer)."""

  def __init__(self, encoder: Encoder, head: Head):
    self.encoder = encoder
    self.head = head


@struct.dataclass
class State:
  """step: scalar int32, the global iteration; one `base.Net` per player (§4.1)."""

  step: jax.Array
  generators: base.Net
  d_rgb: base.Net
  d_ir: base.Net
  d_rgb_warmup: base.Net
  d_ir_warmup: base.Net
  features: base.Net


def iterations_per_epoch(config) -> int:
  """Loop steps per epoch: `config.train.steps_per_epoch`, else the sampler's epoch
  (`config.data.batches_per_epoch`, the reference's 100-iteration "step")."""
  steps = config.train.steps_per_epoch
  return steps if steps > 0 else config.data.batches_per_epoch


def phase_of(step: int, config) -> int:
  """FEATURE_WARMUP, PIXEL_WARMUP or JOINT at the 0-based global iteration `step` (host)."""
  per_epoch = iterations_per_epoch(config)
  gan = config.aligngan
  feature_end = gan.feature_warmup_epochs * per_epoch
  pixel_end = feature_end + gan.pixel_warmup_epochs * per_epoch
  if step < feature_end:
    return FEATURE_WARMUP
  return PIXEL_WARMUP if step < pixel_end else JOINT


def learning_rate_factor(step: jax.Array, config) -> jax.Array:
  """1, or `aligngan.decay` from epoch `aligngan.decay_epoch` on (MultiStepLR's closed form)."""
  start = config.aligngan.decay_epoch * iterations_per_epoch(config)
  return jnp.where(step >= start, config.aligngan.decay, 1.0).astype(jnp.float32)


def check_config(config) -> None:
  """Refuses settings the method cannot run, naming the field."""
  data, gan = config.data, config.aligngan
  if config.eval.get("flip", False):
    raise ValueError("config.eval.flip=True: AlignGAN's test feature flips after the RGB→IR "
                     "translation (models/aligngan.py test_outputs); the evaluator's flip would "
                     "flip before it. Set --config.eval.flip=False.")
  if data.gan_ids_per_batch < 2:
    raise ValueError(f"config.data.gan_ids_per_batch={data.gan_ids_per_batch}: the joint "
                     "discriminator's wrong-identity pairs roll the GAN batch by one identity "
                     "group, so it needs at least 2 identities.")
  if gan.test_instance_norm not in TEST_INSTANCE_NORMS:
    raise ValueError(f"config.aligngan.test_instance_norm={gan.test_instance_norm!r}: expected "
                     f"one of {TEST_INSTANCE_NORMS}.")
  height, width = data.image_height, data.image_width
  if height % 4 or width % 4:
    raise ValueError(f"config.data.image_height x image_width = {height} x {width}: the "
                     "generators halve the size twice and double it back, so both must be "
                     "multiples of 4.")
  # PyTorch's instance norm, like ours, needs more than one position: the last normalised map
  # of each discriminator (after L + 1 halvings, or D_ir's 5) must keep two.
  halved = lambda size, times: size >> times
  for name, times in (("the discriminators", gan.discriminator_layers + 1), ("D_ir", 5)):
    if halved(height, times) * halved(width, times) < 2:
      raise ValueError(f"config.data.image_height x image_width = {height} x {width} is too "
                       f"small for {name}: halved {times} times (config.aligngan."
                       f"discriminator_layers={gan.discriminator_layers} + 1; D_ir always 5) it "
                       "must keep at least 2 positions for the instance norm.")


def _complete(metrics: dict, **known) -> dict:
  values = dict(metrics, **known)
  return {name: jnp.asarray(values.get(name, 0.0), jnp.float32) for name in METRICS}


def _keys(config, step, count: int) -> list[jax.Array]:
  """`count` dropout keys of this step, from the config seed (a resumed run draws the same)."""
  key = jax.random.fold_in(jax.random.key(config.seed), step)
  return list(jax.random.split(key, count))


def _cross_modal_triplet(anchors_embedding, other_embedding, anchor_labels, other_labels,
                         margin):
  """T(a; o) = the cosine batch-hard triplet with positives and negatives both from `o`."""
  return losses.cosine_batch_hard_triplet(anchors_embedding, other_embedding, other_embedding,
                                          anchor_labels, other_labels, other_labels,
                                          margin=margin)


def feature_warmup_loss(features: FeatureModule, infrared, labels, dropout_key, gan_config):
  """CE(logits(i), y) + T(e(i); e(i)) on the infrared IDE batch (`core/warmup.py`)."""
  _, logits, embedding = features.head(features.encoder(infrared), dropout_key)
  identity = losses.cross_entropy(logits, labels)
  triplet = _cross_modal_triplet(embedding, embedding, labels, labels, gan_config.margin)
  loss = identity + triplet
  accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
  return loss, {"loss": loss, "feature_loss": loss, "identity_loss": identity,
                "triplet_loss": triplet, "accuracy": accuracy}


def feature_loss(features: FeatureModule, fake_infrared, infrared, visible_labels,
                 infrared_labels, d_ir: nnx.Module, dropout_keys, gan_config):
  """L_F (§3.8): the fake IR images are constants; D_ir is a fixed function here.

  Encoder and head run on the fakes first, then on the real IR images (two calls each, so
  BatchNorm statistics are per call and update in the reference's order).
  """
  fake_maps = features.encoder(fake_infrared)
  real_maps = features.encoder(infrared)
  _, fake_logits, fake_embedding = features.head(fake_maps, dropout_keys[0])
  _, real_logits, real_embedding = features.head(real_maps, dropout_keys[1])
  identity = (losses.cross_entropy(fake_logits, visible_labels)
              + losses.cross_entropy(real_logits, infrared_labels))
  triplet = (_cross_modal_triplet(fake_embedding, real_embedding, visible_labels,
                                  infrared_labels, gan_config.margin)
             + _cross_modal_triplet(real_embedding, fake_embedding, infrared_labels,
                                    visible_labels, gan_config.margin))
  adversarial = ops.lsgan_loss(d_ir(infrared, fake_maps), 1.0)
  loss = (gan_config.feature_identity_weight * identity
          + gan_config.feature_triplet_weight * triplet
          + gan_config.feature_adversarial_weight * adversarial)
  accuracy = jnp.mean(jnp.argmax(real_logits, axis=-1) == infrared_labels)
  return loss, {"feature_loss": loss, "identity_loss": identity, "triplet_loss": triplet,
                "feature_adversarial_loss": adversarial, "accuracy": accuracy}


def _discriminate(net: base.Net):
  """`(params, *inputs) -> scores` of a discriminator network (no statistics to update)."""
  def apply(params, *inputs):
    return nnx.merge(net.graphdef, params, net.batch_stats)(*inputs)
  return apply


def _infrared_adversary(params: dict, state: State, joint: bool, infrared, fake_infrared,
                        real_maps, fake_maps, wrong_shift: int):
  """D_ir's two losses: (MSE(D(f_i, ·), 1) for the generators, L_D_ir), from the joint D_ir
  (conditional, §3.5) or, in the warm-up, D_ir_warmup (unconditional, §3.6)."""
  if not joint:
    d_ir = _discriminate(state.d_ir_warmup)
    d_fake, g_fake = ops.adversarial_scores(d_ir, params["d_ir"], fake_infrared)
    return (losses.lsgan_generator_loss(g_fake),
            losses.lsgan_discriminator_loss(d_ir(params["d_ir"], infrared), d_fake))
  d_ir = _discriminate(state.d_ir)
  real_maps = jax.lax.stop_gradient(real_maps)
  fake_maps = jax.lax.stop_gradient(fake_maps)
  # One pass on (f_i, sg M_i): the generators' term and the discriminator's fake pair 3.
  d_fake, g_fake = ops.adversarial_scores(d_ir, params["d_ir"], fake_infrared, real_maps)
  # The IR image of the next identity group: the reference's cat([i[K:], i[:K]]).
  wrong_infrared = jnp.roll(infrared, -wrong_shift, axis=0)
  d_ir_loss = losses.joint_discriminator_loss(
      d_ir(params["d_ir"], infrared, real_maps),
      d_ir(params["d_ir"], wrong_infrared, real_maps),
      d_ir(params["d_ir"], infrared, fake_maps),
      d_fake,
      d_ir(params["d_ir"], jax.lax.stop_gradient(fake_infrared), fake_maps))
  return losses.lsgan_generator_loss(g_fake), d_ir_loss


def pixel_losses(params: dict, state: State, visible, infrared, labels, *, joint: bool,
                 dropout_keys, config):
  """L_G + L_D_rgb + L_D_ir of one GAN batch, as a function of the pixel players' params.

  Args:
    params: {"generators", "d_rgb", "d_ir"}, the parameters differentiated: D_rgb's and the
      joint D_ir's with `joint`, else D_rgb_warmup's and D_ir_warmup's.
    state: the method state (the encoder and head, frozen; every player's statistics).
    visible, infrared: [B, H, W, 3] in [−1, 1]; labels [B], slot k of both of one identity.
    joint: the joint phase's discriminators, or the warm-up's.

  Returns:
    (total, (metrics, generator statistics, encoder and head statistics)).
  """
  gan = config.aligngan
  d_rgb = _discriminate(state.d_rgb if joint else state.d_rgb_warmup)
  generators = state.generators.model(training=True, params=params["generators"])
  features = state.features.model(training=True)

  fake_rgb = generators.g_ir2rgb(infrared)
  fake_infrared = generators.g_rgb2ir(visible)
  real_maps = features.encoder(infrared)
  fake_maps = features.encoder(fake_infrared)

  # One D pass on each fake: the D-facing scores train D, the G-facing scores train G.
  d_rgb_fake, g_rgb_fake = ops.adversarial_scores(d_rgb, params["d_rgb"], fake_rgb)
  g_ir_adversarial, d_ir_loss = _infrared_adversary(
      params, state, joint, infrared, fake_infrared, real_maps, fake_maps,
      config.data.gan_images_per_id)
  adversarial = 0.5 * (losses.lsgan_generator_loss(g_rgb_fake) + g_ir_adversarial)
  cycle = 0.5 * (losses.l1_loss(generators.g_ir2rgb(fake_infrared), visible)
                 + losses.l1_loss(generators.g_rgb2ir(fake_rgb), infrared))
  identity_mapping = 0.5 * (losses.l1_loss(generators.g_ir2rgb(visible), visible)
                            + losses.l1_loss(generators.g_rgb2ir(infrared), infrared))
  _, _, real_embedding = features.head(real_maps, dropout_keys[0])
  _, fake_logits, fake_embedding = features.head(fake_maps, dropout_keys[1])
  pixel_triplet = (_cross_modal_triplet(fake_embedding, real_embedding, labels, labels,
                                        gan.margin)
                   + _cross_modal_triplet(real_embedding, fake_embedding, labels, labels,
                                          gan.margin))
  pixel_identity = losses.cross_entropy(fake_logits, labels)
  generator_loss = (adversarial + gan.cycle_weight * cycle
                    + gan.identity_mapping_weight * identity_mapping
                    + gan.pixel_triplet_weight * pixel_triplet
                    + gan.pixel_identity_weight * pixel_identity)
  d_rgb_loss = losses.lsgan_discriminator_loss(d_rgb(params["d_rgb"], visible), d_rgb_fake)

  total = generator_loss + d_rgb_loss + d_ir_loss
  metrics = {"generator_loss": generator_loss, "generator_adversarial_loss": adversarial,
             "cycle_loss": cycle, "identity_mapping_loss": identity_mapping,
             "pixel_triplet_loss": pixel_triplet, "pixel_identity_loss": pixel_identity,
             "d_rgb_loss": d_rgb_loss, "d_ir_loss": d_ir_loss}
  return total, (metrics, nnx.state(generators, nnx.BatchStat),
                 nnx.state(features, nnx.BatchStat))


class AlignGANMethod(base.Method):
  """AlignGAN's three-phase, multi-player training as one jitted step (`lax.switch`)."""

  model_type = AlignGAN
  load_pytorch = staticmethod(aligngan_pytorch.load_pytorch)
  to_pytorch_state_dict = staticmethod(aligngan_pytorch.to_pytorch_state_dict)
  load_pytorch_takes_config = True

  def create_state(self, data_info: base.DataInfo) -> State:
    """All eight networks (the encoder from ImageNet) and six optimisers, at step 0."""
    config = self.config
    check_config(config)
    gan = config.aligngan
    model = checkpoints.init_pretrained(
        build_aligngan(config, data_info.num_classes, rngs=nnx.Rngs(config.seed)), config.model)
    # Unit learning rates: `train_step` scales each update by the rate of the global step.
    adam = optax.chain(optax.scale_by_adam(b1=gan.pixel_beta1, b2=gan.pixel_beta2,
                                           eps=gan.pixel_eps), optax.scale(-1.0))
    sgd = optim.grouped(
        lambda scale: optax.chain(optax.add_decayed_weights(gan.feature_weight_decay),
                                  optax.trace(decay=gan.feature_momentum, nesterov=True),
                                  optax.scale(-scale)),
        (optim.ParamGroup("head", r"^head\.", 1.0),
         optim.ParamGroup("encoder", None, gan.encoder_lr_scale)))
    return State(
        step=base.initial_step(),
        generators=base.Net.create(Generators(model.g_rgb2ir, model.g_ir2rgb), adam),
        d_rgb=base.Net.create(model.d_rgb, adam),
        d_ir=base.Net.create(model.d_ir, adam),
        d_rgb_warmup=base.Net.create(model.d_rgb_warmup, adam),
        d_ir_warmup=base.Net.create(model.d_ir_warmup, adam),
        features=base.Net.create(FeatureModule(model.encoder, model.head), sgd))

  def step_variant(self, step: int) -> int:
    """The phase of the 0-based global step (host int): each phase is a program of its own."""
    return phase_of(step, self.config)

  def train_step(self, state: State, batch: dict, phase: int) -> tuple[State, dict]:
    """One reference iteration of phase `phase` (`step_variant(state.step)`, a Python int:
    each phase is a program of its own); advances `step` once.

    Feature warm-up: the feature update. Pixel warm-up: the pixel update. Joint: the feature
    update, then the pixel update with the just-updated encoder.
    """
    if phase not in (FEATURE_WARMUP, PIXEL_WARMUP, JOINT):
      raise ValueError(f"AlignGAN's train_step takes its phase, one of "
                       f"{list(range(len(PHASES)))} ({PHASES}): `step_variant(step)`; got "
                       f"{phase!r}.")
    config = self.config
    factor = learning_rate_factor(state.step, config)
    keys = _keys(config, state.step, 4)
    metrics = {}
    if phase != PIXEL_WARMUP:
      state, feature_metrics = self._feature_update(state, batch, joint=phase == JOINT,
                                                    factor=factor, dropout_keys=keys[0:2])
      metrics.update(feature_metrics)
    if phase != FEATURE_WARMUP:
      state, pixel_metrics = self._pixel_update(state, batch, joint=phase == JOINT,
                                                factor=factor, dropout_keys=keys[2:4])
      metrics.update(pixel_metrics)
    total = metrics.get("feature_loss", 0.0) + metrics.get("generator_loss", 0.0)
    return state.replace(step=state.step + 1), _complete(
        metrics, loss=total, phase=phase, learning_rate_factor=factor)

  def _feature_update(self, state: State, batch: dict, *, joint: bool, factor, dropout_keys):
    """One SGD update of encoder + head: the IR-only warm-up objective, or L_F (joint (i)):
    f_i = G_rgb2ir(r) in training mode without gradient (its IN statistics update), D_ir
    frozen."""
    gan = self.config.aligngan
    infrared, labels = from_imagenet_normalized(batch["infrared"]), batch["infrared_labels"]
    learning_rate = gan.feature_lr * factor
    if not joint:
      features, metrics = state.features.minimize(
          lambda model: feature_warmup_loss(model, infrared, labels, dropout_keys[0], gan),
          learning_rate=learning_rate)
      return state.replace(features=features), metrics
    generators = state.generators.model(training=True)
    fake_infrared = jax.lax.stop_gradient(
        generators.g_rgb2ir(from_imagenet_normalized(batch["visible"])))
    d_ir = state.d_ir.model(training=True, params=jax.lax.stop_gradient(state.d_ir.params))
    features, metrics = state.features.minimize(
        lambda model: feature_loss(model, fake_infrared, infrared, batch["visible_labels"],
                                   labels, d_ir, dropout_keys, gan),
        learning_rate=learning_rate)
    return state.replace(features=features, generators=state.generators.replace(
        batch_stats=nnx.state(generators, nnx.BatchStat))), metrics

  def _pixel_update(self, state: State, batch: dict, *, joint: bool, factor, dropout_keys):
    """One gradient of L_G + L_D_rgb + L_D_ir; each player's own optimiser applies its part.
    The encoder and head are frozen (their statistics update). `joint` picks D_rgb and D_ir,
    else D_rgb_warmup and D_ir_warmup."""
    learning_rate = self.config.aligngan.pixel_lr * factor
    d_rgb, d_ir = ("d_rgb", "d_ir") if joint else ("d_rgb_warmup", "d_ir_warmup")
    params = {"generators": state.generators.params, "d_rgb": getattr(state, d_rgb).params,
              "d_ir": getattr(state, d_ir).params}
    grads, (metrics, generator_stats, feature_stats) = jax.grad(pixel_losses, has_aux=True)(
        params, state, from_imagenet_normalized(batch["gan_visible"]),
        from_imagenet_normalized(batch["gan_infrared"]), batch["gan_visible_labels"],
        joint=joint, dropout_keys=dropout_keys, config=self.config)
    return state.replace(
        generators=state.generators.apply_gradients(grads["generators"], generator_stats,
                                                    learning_rate=learning_rate),
        features=state.features.replace(batch_stats=feature_stats),
        **{name: getattr(state, name).apply_gradients(grads[key], learning_rate=learning_rate)
           for name, key in ((d_rgb, "d_rgb"), (d_ir, "d_ir"))}), metrics

  def features(self, state: State, images: jax.Array, modality: str) -> dict:
    """{"pool"}: the test feature (§5.1) of ImageNet-normalised images [B, H, W, 3]."""
    base.check_modality(modality)
    generators = state.generators.model(
        training=self.config.aligngan.test_instance_norm == "instance")
    features = state.features.model(training=False)
    return test_outputs(generators.g_rgb2ir, features.encoder, images,
                        translate=modality == "visible").features()

  def model(self, state: State) -> AlignGAN:
    """The eight networks of `state` as one `AlignGAN` (for export and inference)."""
    generators = state.generators.model(training=False)
    features = state.features.model(training=False)
    return AlignGAN(g_rgb2ir=generators.g_rgb2ir, g_ir2rgb=generators.g_ir2rgb,
                    d_rgb=state.d_rgb.model(training=False), d_ir=state.d_ir.model(training=False),
                    d_rgb_warmup=state.d_rgb_warmup.model(training=False),
                    d_ir_warmup=state.d_ir_warmup.model(training=False),
                    encoder=features.encoder, head=features.head)


METHOD = AlignGANMethod
