"""CAJ: Channel Augmented Joint learning (Ye et al., ICCV 2021; spec baseline_data_eval.md).

Input (§3.3). Every sampled visible/infrared pair gives three views: the visible image (view A),
an independently cropped, erased and channel-exchanged copy of it (view B: one of R, G, B in
all three channels) and the infrared image with channel-adaptive grey; all three with CAJ's
rectangle erasing (`config.data.augmentation = "caj"`: batch keys "visible",
"visible_augmented", "infrared").

Model (§4.6). AGW's network unchanged (`vireid_jax.models.agw.AGW`): the visible stem takes A
and B together, so its BatchNorm normalises both (2·P·K rows); the shared stages see all
3·P·K rows [A | B | IR], with labels [l_vis | l_vis | l_ir].

Objective (§5.5–5.7). L = identity_weight · CE over the 3·P·K logits
  + triplet_weight · ADP(pooled features; α = adp_alpha, γ = adp_gamma, squared)
  + kl_weight · KL_T(view-A logits ‖ infrared logits),
the adaptive-weight triplet with CAJ's squared, clamped margin
(`losses.adaptive_weighted_triplet`) and the temperature-3 softened KL
(`losses.softened_kl_divergence`). The reference's `--kl` is 0 and its README does not set it:
the KL term is computed (and logged) but adds nothing by default.

Optimisation (§6). AGW's: SGD with Nesterov momentum and weight decay 5e-4, the BNNeck and
classifier at the base rate and everything else at a tenth, warm-up over 10 epochs and steps at
20 and 50, for 100 epochs (AGW: 81). Evaluation (§7.1, `testa.py`) averages the features of
each image and its mirror image and re-normalises them (`config.eval.flip`).

The authors' checkpoint (`train_ext.py` saves AGW's `{'net', ...}` dict) loads through AGW's key
map (`vireid_jax.checkpoints.load_pytorch` with `config.method = "caj"`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vireid_jax import losses
from vireid_jax.methods import agw
from vireid_jax.methods import base
from vireid_jax.models import agw_pytorch
from vireid_jax.models.agw import AGW


def loss_fn(model: AGW, batch: dict, loss_config) -> tuple[jax.Array, dict]:
  """CE + ADP triplet + weighted KL on one [A | B | IR] batch.

  Args:
    model: AGW in training mode.
    batch: "visible" (view A), "visible_augmented" (view B), "infrared" [n, H, W, 3] float32;
      "visible_labels", "infrared_labels" [n] int32.
    loss_config: `config.loss` (identity_weight, triplet_weight, adp_alpha, adp_gamma,
      adp_square, kl_weight, kl_temperature).

  Returns:
    (total loss, {"loss", "identity_loss", "triplet_loss", "kl_loss", "accuracy"}); "kl_loss"
    is the KL term before its weight.
  """
  if "visible_augmented" not in batch:
    raise ValueError("CAJ trains on the channel-exchanged view B (batch key "
                     "'visible_augmented'), which the pipeline only makes with "
                     "config.data.augmentation = \"caj\".")
  count = batch["visible"].shape[0]
  # One visible-stem call for A and B: its BatchNorm normalises the two views together.
  outputs = model(visible=jnp.concatenate([batch["visible"], batch["visible_augmented"]]),
                  infrared=batch["infrared"])
  labels = jnp.concatenate([batch["visible_labels"], batch["visible_labels"],
                            batch["infrared_labels"]])
  identity_loss = losses.cross_entropy(outputs.logits, labels)
  triplet_loss = losses.adaptive_weighted_triplet(
      outputs.pooled, labels, alpha=loss_config.adp_alpha, gamma=loss_config.adp_gamma,
      square=loss_config.adp_square)
  kl_loss = losses.softened_kl_divergence(outputs.logits[:count], outputs.logits[2 * count:],
                                          temperature=loss_config.kl_temperature)
  total = (loss_config.identity_weight * identity_loss
           + loss_config.triplet_weight * triplet_loss + loss_config.kl_weight * kl_loss)
  accuracy = jnp.mean(jnp.argmax(outputs.logits, axis=-1) == labels)
  return total, {"loss": total, "identity_loss": identity_loss, "triplet_loss": triplet_loss,
                 "kl_loss": kl_loss, "accuracy": accuracy}


class CAJMethod(base.Method):
  """CAJ: AGW's network and optimiser, one SGD update per step on three views."""

  # The authors' checkpoint is an AGW checkpoint.
  model_type = AGW
  load_pytorch = staticmethod(agw_pytorch.load_pytorch)
  to_pytorch_state_dict = staticmethod(agw_pytorch.to_pytorch_state_dict)

  def __init__(self, config):
    super().__init__(config)
    if config.data.augmentation != "caj":
      raise ValueError(f"config.data.augmentation={config.data.augmentation!r}: CAJ trains on "
                       "the visible, channel-exchanged and infrared views that \"caj\" makes; "
                       "set config.data.augmentation = \"caj\" (configs/caj.py).")

  def create_state(self, data_info: base.DataInfo) -> base.NetState:
    return agw.create_state(self.config, data_info)

  def train_step(self, state: base.NetState, batch: dict) -> tuple[base.NetState, dict]:
    """One SGD update over the whole model; pure, so it can be jitted and sharded."""
    return base.minimize_step(state, lambda model: loss_fn(model, batch, self.config.loss))

  def features(self, state: base.NetState, images: jax.Array, modality: str) -> dict:
    """AGW's {"pool", "bn"} (the loop averages them with the mirror image's when
    `config.eval.flip`)."""
    return agw.features(state, images, modality)


METHOD = CAJMethod
