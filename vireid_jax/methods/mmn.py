"""MMN: Middle Modality Network (Zhang et al., ACM MM 2021; spec mmn.md).

Model (§3). A two-stream ResNet-50 (one stem per modality, shared layer1–4, last stride 1;
no non-local blocks and no GeM, although the reference's arguments say "on") with a
middle-modality generator: per pixel, per modality, 1×1 convolutions map each normalised image
to one grey channel, a one-channel BatchNorm normalises it over that modality's images, and a
shared 1×1 decoder maps it back to three channels: the "middle modality" image M, which goes
through the stem of the modality it came from, behind the originals. The trunk sees
[RGB | M_rgb | IR | M_ir]; its layer4 map is cut into 4 horizontal stripes, each average-pooled
and given its own BNNeck and classifier (`vireid_jax.models.mmn`).

Objective (§4). L = L_id + L_tri + L_dcl:
  L_id  = ¼ Σ_k CE(logits_k, [l_vis; l_vis; l_ir; l_ir]);
  L_tri = ¼ Σ_k ¼ [T(R, I) + T(R, M_I) + T(M_R, I) + T(M_R, M_I)], T the batch-hard triplet
          (margin `loss.triplet_margin`, 0.3) on the two sets' pre-BN stripe features with
          labels [l_vis; l_ir] (these four pairs only);
  L_dcl = δ · ¼ Σ_k DCL([M_R; M_I]), δ = `loss.dcl_weight` (0.2): the distance between the
          projections of index-paired middle images of the two modalities
          (`losses.distribution_consistency_loss`). The projection head is random and never
          trained (the reference builds it outside the network and never gives it to the
          optimiser); it lives in the state, so checkpoints carry it.

Optimisation (§6). AGW's SGD: the 4 BNNecks and classifiers at the base rate, everything else
(stems, trunk, MMG) at a tenth, weight decay 5e-4, warm-up over 10 epochs, steps at 20 and 50,
81 epochs; P × K = 4 × 4 pairs per batch with LLCM-style erasing. Evaluation uses the "bn"
feature of the original images; "bn_sum" is the reference `test.py`'s sum of its four
similarity matrices (originals and middle images on both sides).
"""

from __future__ import annotations

import math
from typing import Any

from flax import nnx
from flax import struct
import jax
import jax.numpy as jnp

from vireid_jax import checkpoints
from vireid_jax import losses
from vireid_jax.losses.distribution import init_projection
from vireid_jax.methods import base
from vireid_jax.models import mmn_pytorch
from vireid_jax.models.mmn import MMN
from vireid_jax.models.mmn import build_mmn
from vireid_jax.models.mmn import stripe_bounds
from vireid_jax.training import optim

# The 4 BNNecks and classifiers learn at the base rate; the stems, trunk and MMG at
# `backbone_lr_scale` times it (spec §6).
HEAD = r"^(bottlenecks|classifiers)\."


def parameter_groups(optim_config) -> tuple[optim.ParamGroup, ...]:
  return (optim.ParamGroup("head", HEAD, 1.0),
          optim.ParamGroup("backbone", None, optim_config.backbone_lr_scale))


@struct.dataclass
class State:
  """step: scalar int32 updates applied; net: MMN and its SGD; projection: DCL's fixed random
  projection head (`losses.distribution_consistency_loss`), never updated."""

  step: jax.Array
  net: base.Net
  projection: Any


def loss_fn(model: MMN, projection, batch: dict, loss_config) -> tuple[jax.Array, dict]:
  """L_id + L_tri + L_dcl on one batch of index-paired visible and infrared images.

  Args:
    model: MMN in training mode.
    projection: DCL's projection head (arrays; no gradient reaches them).
    batch: "visible", "infrared" [n, H, W, 3] float32; "visible_labels", "infrared_labels" [n]
      (slot i of both of one identity).
    loss_config: `config.loss` (triplet_margin, dcl_weight, dcl_groups).

  Returns:
    (total, {"loss", "identity_loss", "triplet_loss", "dcl_loss" (with its weight δ),
    "accuracy" (of stripe 1's classifier, as the reference logs it)}).
  """
  visible_labels, infrared_labels = batch["visible_labels"], batch["infrared_labels"]
  outputs = model(visible=batch["visible"], infrared=batch["infrared"])
  labels = jnp.concatenate([visible_labels, visible_labels, infrared_labels, infrared_labels])
  identity_loss = jnp.mean(jnp.stack([losses.cross_entropy(logits, labels)
                                      for logits in outputs.logits]))
  pair_labels = jnp.concatenate([visible_labels, infrared_labels])
  projection = jax.lax.stop_gradient(projection)
  triplet_terms, dcl_terms = [], []
  for stripe in outputs.pooled:
    rgb, middle_rgb, ir, middle_ir = jnp.split(stripe, 4)
    triplet = lambda a, b: losses.hard_mining_triplet(jnp.concatenate([a, b]), pair_labels,
                                                      margin=loss_config.triplet_margin)
    triplet_terms.append((triplet(rgb, ir) + triplet(rgb, middle_ir) + triplet(middle_rgb, ir)
                          + triplet(middle_rgb, middle_ir)) / 4)
    dcl_terms.append(losses.distribution_consistency_loss(
        jnp.concatenate([middle_rgb, middle_ir]), projection,
        num_groups=loss_config.dcl_groups))
  triplet_loss = jnp.mean(jnp.stack(triplet_terms))
  dcl_loss = loss_config.dcl_weight * jnp.mean(jnp.stack(dcl_terms))
  total = identity_loss + triplet_loss + dcl_loss
  accuracy = jnp.mean(jnp.argmax(outputs.logits[0], axis=-1) == labels)
  return total, {"loss": total, "identity_loss": identity_loss, "triplet_loss": triplet_loss,
                 "dcl_loss": dcl_loss, "accuracy": accuracy}


class MMNMethod(base.Method):
  """MMN: one network, one SGD update per step; the DCL head rides along unchanged."""

  model_type = MMN
  load_pytorch = staticmethod(mmn_pytorch.load_pytorch)
  to_pytorch_state_dict = staticmethod(mmn_pytorch.to_pytorch_state_dict)

  def __init__(self, config):
    super().__init__(config)
    # Whether layer4's map cuts into the stripes, before any data is built: the ResNet halves
    # the height four times (rounding up) and divides it by last_stride.
    stripe_bounds(math.ceil(config.data.image_height / (16 * config.model.last_stride)),
                  config.model.num_stripes)

  def create_state(self, data_info: base.DataInfo) -> State:
    """The initial state; a pure function of the config (same seed → same state)."""
    config = self.config
    model = checkpoints.init_pretrained(
        build_mmn(config.model, data_info.num_classes, rngs=nnx.Rngs(config.seed)),
        config.model)
    tx = optim.build(config.optim, data_info.steps_per_epoch, parameter_groups(config.optim))
    # PyTorch's default init of the head, from the seed (a stream of its own).
    projection = init_projection(jax.random.fold_in(jax.random.key(config.seed), 1),
                                 model.feature_dim, config.loss.dcl_dim)
    return State(step=base.initial_step(), net=base.Net.create(model, tx),
                 projection=projection)

  def train_step(self, state: State, batch: dict) -> tuple[State, dict]:
    """One SGD update of the network; pure, so it can be jitted and sharded."""
    return base.minimize_step(
        state, lambda model: loss_fn(model, state.projection, batch, self.config.loss))

  def features(self, state: State, images: jax.Array, modality: str) -> dict:
    """{"pool", "bn", "pool_middle", "bn_middle", "bn_sum"} of one modality's images [B, ...]
    (`vireid_jax.models.mmn.StripeOutputs.features`)."""
    base.check_modality(modality)
    return state.net.model(training=False)(**{modality: images}).features()


METHOD = MMNMethod
