"""DJANet: Dual-level Joint Align Network (spec djanet.md; the authors' `model/`).

DJANet aligns the modalities on images and on features.

Images (§1–3). Offline, every infrared photo of SYSU-MM01 (train, val and test identities) is
translated to a visible-looking image by a one-step diffusion model (CycleGAN-Turbo); the run
reads that translated copy (`vireid_jax.data.translation`, data/README.md). No translator is
ported: it is an input. RegDB and LLCM are used untranslated. Each sampled pair gives four
views with channel-level augmentations (`config.data.augmentation = "djanet"`): V1 (random
greyscale), V2 (channel exchange), T1 (channel-adaptive grey), T2 (brightness, channel scale);
P × K = 24 × 4 per modality (`sampler = "djanet"`).

Features (§4, `vireid_jax.models.djanet.DJANet`). Each view has its own ResNet stem; the four
outputs share layer1–4 with non-local blocks (inner width C / 2). Between layer3 and layer4 a
chain of four layerATT modules fuses the layer3 map with the stem, layer1, layer2 and layer3
taps: LayerNorm, multi-head attention across channels, then a Mamba selective scan over the
spatial positions (`ops.selective_scan`). GeM (p = 3), a BNNeck and a bias-free classifier
follow. At test time an image goes through both stems of its modality, averaged.

Objective (§5), labels [y_v; y_v; y_i; y_i] over the 4n views:
  L = identity_weight · CE(logits) + triplet_weight · L_tri(f; margin 0.7)
      + complementary_weight · L_cll(layer4 maps),
all weights 1, the batch-hard triplet on the pre-BN GeM features f mining across views and
modalities.

Optimisation (§6). SGD (momentum 0.9, Nesterov, weight decay 5e-4 on every parameter: PyTorch's
SGD ignores mamba_ssm's no-decay marks on A_log and D), BNNeck + classifier at 0.1, the rest at
0.01; per-epoch multiplier 0.1 + 0.09·e for e < 10 (`optim.warmup_style =
"linear_from_factor"`), ×0.1 at epochs 25, 50, 75, 100, 125; 150 epochs.

Facts of the reference kept here (§0): the CLIP backbone in its repository is never used (the
trunk is torchvision's ResNet-50); the complementary loss is identically zero with a zero
gradient (it returns the mean of a standardised array), so `losses.complementary_learning_loss`
returns that constant without computing the maps; there is no skip connection from layer3
around the chain; test features average the two stems of the image's modality. Departures of
ours: no fp16 autocast (`config.model.dtype = "bfloat16"` is the option); evaluation is clean
(the reference's `eval_metrics.py` adds constants to CMC, AP and INP, §8.4); RegDB's visible
images go through the visible stems (its `test.py` swaps them); the reference's choice of the
best epoch on the test split is not made (`config.eval.select`).
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from vireid_jax import checkpoints
from vireid_jax import losses
from vireid_jax.methods import agw
from vireid_jax.methods import base
from vireid_jax.models import djanet_pytorch
from vireid_jax.models.djanet import VIEWS, DJANet, build_djanet, layer3_geometry
from vireid_jax.training import optim


def check_views(batch: dict) -> None:
  """Raises a ValueError naming `config.data.augmentation` when a view is missing."""
  missing = [view for view in VIEWS if view not in batch]
  if missing:
    raise ValueError(f"DJANet trains on four views per pair; the batch lacks {missing}. Set "
                     "config.data.augmentation = \"djanet\" (configs/djanet.py).")


def loss_fn(model: DJANet, batch: dict, loss_config) -> tuple[jax.Array, dict]:
  """CE + batch-hard triplet + complementary loss on the four views.

  Args:
    model: DJANet in training mode.
    batch: the four views [n, H, W, 3] float32 ("visible", "visible_augmented", "infrared",
      "infrared_augmented"); "visible_labels", "infrared_labels" [n].
    loss_config: `config.loss` (identity_weight, triplet_weight, triplet_margin,
      complementary_weight).

  Returns:
    (total loss, {"loss", "identity_loss", "triplet_loss", "complementary_loss", "accuracy"}).
  """
  check_views(batch)
  outputs = model(**{view: batch[view] for view in VIEWS})
  visible_labels, infrared_labels = batch["visible_labels"], batch["infrared_labels"]
  labels = jnp.concatenate([visible_labels, visible_labels, infrared_labels, infrared_labels])
  identity_loss = losses.cross_entropy(outputs.logits, labels)
  # Mining spans all four views and both modalities (spec §5).
  triplet_loss = losses.hard_mining_triplet(outputs.pooled, labels,
                                            margin=loss_config.triplet_margin)
  complementary_loss = losses.complementary_learning_loss(outputs.layer4)
  total = (loss_config.identity_weight * identity_loss
           + loss_config.triplet_weight * triplet_loss
           + loss_config.complementary_weight * complementary_loss)
  accuracy = jnp.mean(jnp.argmax(outputs.logits, axis=-1) == labels)
  return total, {"loss": total, "identity_loss": identity_loss, "triplet_loss": triplet_loss,
                 "complementary_loss": complementary_loss, "accuracy": accuracy}


class DJANetMethod(base.Method):
  """DJANet: one network, one SGD update per step."""

  # The authors' checkpoints (`vireid_jax.checkpoints.load_pytorch` / `to_pytorch_state_dict`).
  model_type = DJANet
  load_pytorch = staticmethod(djanet_pytorch.load_pytorch)
  to_pytorch_state_dict = staticmethod(djanet_pytorch.to_pytorch_state_dict)
  load_pytorch_reads_image_size = True

  def __init__(self, config):
    super().__init__(config)
    if config.data.augmentation != "djanet":
      raise ValueError(f"config.data.augmentation={config.data.augmentation!r}: DJANet trains "
                       "on four views per pair; set it to \"djanet\" (configs/djanet.py).")
    # Whether the network can reduce the image size, before any data is built.
    layer3_geometry(config.data.image_height, config.data.image_width,
                    config.model.att_head_dim)

  def create_state(self, data_info: base.DataInfo) -> base.NetState:
    """DJANet's network (ImageNet stems and stages unless `config.model.pretrained` is "none";
    the non-local blocks, the chain and the head random) with AGW's two-group SGD."""
    config = self.config
    image_size = (config.data.image_height, config.data.image_width)
    model = checkpoints.init_pretrained(
        build_djanet(config.model, data_info.num_classes, image_size,
                     rngs=nnx.Rngs(config.seed)), config.model)
    tx = optim.build(config.optim, data_info.steps_per_epoch,
                     agw.parameter_groups(config.optim))
    return base.NetState(step=base.initial_step(), net=base.Net.create(model, tx))

  def train_step(self, state: base.NetState, batch: dict) -> tuple[base.NetState, dict]:
    """One SGD update of the whole network; pure, so it can be jitted and sharded."""
    return base.minimize_step(state, lambda model: loss_fn(model, batch, self.config.loss))

  def features(self, state: base.NetState, images: jax.Array, modality: str) -> dict:
    """{"pool", "bn", "pool_bn_sum", "pool_bn_weighted"} of images through both stems of
    their modality (`DJANetOutputs.features`)."""
    return agw.features(state, images, modality)


METHOD = DJANetMethod
