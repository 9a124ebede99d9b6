"""AGW: the two-stream cross-modality baseline (Ye et al., TPAMI 2021; spec baseline §4–6).

Model. Each modality has its own ResNet stem (conv1, bn1, ReLU, max-pool); layer1–layer4 are
shared, with non-local attention blocks after the last two blocks of layer2 and the last three
of layer3. Visible and infrared stem outputs are concatenated, visible first, so the shared
BatchNorms see the mixed batch. Features are pooled by GeM (p = 3), then a BNNeck (BatchNorm
with a frozen zero bias) feeds a bias-free identity classifier.

Objective. L = L_id + L_tri: softmax cross-entropy on the BNNeck logits, plus a triplet loss on
the pre-BN pooled features of the whole visible + infrared batch: the weighted regularised
triplet (`config.loss.triplet = "wrt"`, AGW) or the batch-hard triplet with margin
`config.loss.triplet_margin` ("hard", the reference's `--method base`, margin 0.3, together
with `model.non_local=False` and `model.pooling="avg"`; spec baseline §4.6, §5.4).

Optimisation. SGD with Nesterov momentum, weight decay 5e-4, the BNNeck and classifier at the
base learning rate and the rest at a tenth of it, per-epoch warm-up and step decay
(`vireid_jax.training.optim`).
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from vireid_jax import checkpoints
from vireid_jax import losses
from vireid_jax.methods import base
from vireid_jax.models.agw import AGW
from vireid_jax.models import agw_pytorch
from vireid_jax.models.agw import build_agw
from vireid_jax.training import optim

# The BNNeck and the classifier learn at the base rate; everything else (both stems, the
# shared stages and their non-local blocks) at `backbone_lr_scale` times it (spec §6).
HEAD = r"^(bottleneck|classifier)\."


def parameter_groups(optim_config) -> tuple[optim.ParamGroup, ...]:
  return (optim.ParamGroup("head", HEAD, 1.0),
          optim.ParamGroup("backbone", None, optim_config.backbone_lr_scale))


# config.loss.triplet -> (pooled features [N, D], labels [N], config.loss) -> scalar.
TRIPLET_LOSSES = {
    "wrt": lambda pooled, labels, loss_config: losses.weighted_regularized_triplet(pooled,
                                                                                 labels),
    "hard": lambda pooled, labels, loss_config: losses.hard_mining_triplet(
        pooled, labels, margin=loss_config.triplet_margin),
}


def loss_fn(model: AGW, batch: dict, loss_config) -> tuple[jax.Array, dict]:
  """L_id + L_tri on one cross-modality batch.

  Args:
    model: AGW in training mode.
    batch: "visible", "infrared" [B, H, W, 3] float32; "visible_labels", "infrared_labels" [B].
    loss_config: `config.loss` (term weights, triplet, triplet_margin).

  Returns:
    (total loss, per-term metrics).
  """
  outputs = model(visible=batch["visible"], infrared=batch["infrared"])
  labels = jnp.concatenate([batch["visible_labels"], batch["infrared_labels"]])
  identity_loss = losses.cross_entropy(outputs.logits, labels)
  triplet_loss = TRIPLET_LOSSES[loss_config.triplet](outputs.pooled, labels, loss_config)
  total = loss_config.identity_weight * identity_loss + loss_config.triplet_weight * triplet_loss
  accuracy = jnp.mean(jnp.argmax(outputs.logits, axis=-1) == labels)
  return total, {"loss": total, "identity_loss": identity_loss, "triplet_loss": triplet_loss,
                 "accuracy": accuracy}


def create_state(config, data_info: base.DataInfo) -> base.NetState:
  """AGW's network (ImageNet stems and stages unless `config.model.pretrained` is "none"; the
  non-local blocks and the head random) with its two-group SGD; a pure function of the config.
  Also CAJ's."""
  model = checkpoints.init_pretrained(
      build_agw(config.model, data_info.num_classes, rngs=nnx.Rngs(config.seed)), config.model)
  tx = optim.build(config.optim, data_info.steps_per_epoch, parameter_groups(config.optim))
  return base.NetState(step=base.initial_step(), net=base.Net.create(model, tx))


def features(state: base.NetState, images: jax.Array, modality: str) -> dict:
  """Evaluation features {"pool", "bn"}: [B, D] L2-normalised, from the modality's stem."""
  base.check_modality(modality)
  return state.net.model(training=False)(**{modality: images}).features()


class AGWMethod(base.Method):
  """AGW: one network, one SGD update per step."""

  # The reference's released checkpoints (`vireid_jax.checkpoints.load_pytorch` /
  # `to_pytorch_state_dict`).
  model_type = AGW
  load_pytorch = staticmethod(agw_pytorch.load_pytorch)
  to_pytorch_state_dict = staticmethod(agw_pytorch.to_pytorch_state_dict)

  def __init__(self, config):
    super().__init__(config)
    if config.loss.triplet not in TRIPLET_LOSSES:
      raise ValueError(f"config.loss.triplet={config.loss.triplet!r}: expected one of "
                       f"{sorted(TRIPLET_LOSSES)} (\"wrt\": AGW, \"hard\": the base method).")

  def create_state(self, data_info: base.DataInfo) -> base.NetState:
    return create_state(self.config, data_info)

  def train_step(self, state: base.NetState, batch: dict) -> tuple[base.NetState, dict]:
    """One SGD update over the whole model; pure, so it can be jitted and sharded."""
    return base.minimize_step(state, lambda model: loss_fn(model, batch, self.config.loss))

  def features(self, state: base.NetState, images: jax.Array, modality: str) -> dict:
    return features(state, images, modality)


METHOD = AGWMethod
