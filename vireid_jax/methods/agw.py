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
from flax import struct
import jax
import jax.numpy as jnp

from vireid_jax import checkpoints
from vireid_jax import losses
from vireid_jax.data.splits import MODALITY_NAMES
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


def build_model(model_config, num_classes: int, seed: int) -> AGW:
  """AGW from `config.model`; unless `pretrained` is "none", its stems and stages take the
  ImageNet weights of that torchvision ResNet file (the non-local blocks and the head stay
  random)."""
  model = build_agw(model_config, num_classes, rngs=nnx.Rngs(seed))
  pretrained = checkpoints.pretrained_path(model_config)
  if pretrained is not None:
    model = checkpoints.init_backbone_from_torchvision(model, pretrained)
  return model


@struct.dataclass
class State:
  """step: scalar int32 updates applied; net: the AGW network and its SGD."""

  step: jax.Array
  net: base.Net


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


class AGWMethod(base.Method):
  """AGW: one network, one SGD update per step."""

  # The reference's released checkpoints (`vireid_jax.checkpoints.load_pytorch`).
  load_pytorch = staticmethod(agw_pytorch.load_pytorch)

  def __init__(self, config):
    super().__init__(config)
    if config.loss.triplet not in TRIPLET_LOSSES:
      raise ValueError(f"config.loss.triplet={config.loss.triplet!r}: expected one of "
                       f"{sorted(TRIPLET_LOSSES)} (\"wrt\": AGW, \"hard\": the base method).")

  def create_state(self, data_info: base.DataInfo) -> State:
    """The initial state; a pure function of the config (same seed → same state)."""
    config = self.config
    model = build_model(config.model, data_info.num_classes, config.seed)
    tx = optim.sgd(config.optim, data_info.steps_per_epoch, parameter_groups(config.optim))
    return State(step=base.initial_step(), net=base.Net.create(model, tx))

  def train_step(self, state: State, batch: dict) -> tuple[State, dict]:
    """One SGD update over the whole model; pure, so it can be jitted and sharded."""
    model = state.net.model(training=True)
    # nnx.grad differentiates with respect to the parameters and carries the BatchNorm
    # statistics that the forward pass updates out of the gradient's trace.
    grads, metrics = nnx.grad(lambda model: loss_fn(model, batch, self.config.loss),
                              has_aux=True)(model)
    net = state.net.apply_gradients(grads, nnx.state(model, nnx.BatchStat))
    return state.replace(step=state.step + 1, net=net), metrics

  def features(self, state: State, images: jax.Array, modality: str) -> dict:
    """Evaluation features {"pool", "bn"}: [B, D] L2-normalised, from the modality's stem."""
    if modality not in MODALITY_NAMES:
      raise ValueError(f"modality must be one of {MODALITY_NAMES}, got {modality!r}")
    model = state.net.model(training=False)
    return model(**{modality: images}).features()


METHOD = AGWMethod
