"""MCJA: Multi-level Cross-modality Joint Alignment (Liang et al., TCSVT 2024; spec mcja.md).

MCJA aligns the modalities at three levels.

Images (§1). The Visible-Infrared Modality Coordinator (VIMC) draws one of four branches for
every visible image (hue jitter, weighted greyscale, channel CutMix, spectrum jitter; each
applied with probability 1/2); infrared images skip it. Then flip, pad 10 with 127, crop,
erasing. `config.data.augmentation = "mcja"`, `config.data.vimc_branches` switches the
branches, `config.data.sampler = "mcja"` draws P identities × K images of any modality.

Features (§2–3). One modality-agnostic ResNet-50 (`vireid_jax.models.mcja.MCJA`) sees both
modalities in one mixed batch, with Modality Distribution Adapters after the last (0, 2, 3, 0)
blocks of its stages, GeM pooling, a BNNeck and a bias-free classifier.

Objective (§4–5). On the post-BNNeck embedding e of the whole batch,
  L = identity_weight · CE(classifier(e), y) + retrieval_weight · L_CMR(e, y, m),
both weights 1: the cross-modality retrieval loss regresses the soft ranks of each query's
cross-modal gallery onto 1 (positives) and G (negatives)
(`vireid_jax.losses.cross_modality_retrieval`). No triplet loss.

Optimisation (§8). Adam (0.9, 0.999, eps 1e-8) at 3.5e-4 over every parameter, with PyTorch's
coupled L2 decay 5e-4; ×0.1 after epochs 80 and 120 of 140 (RegDB: 300 epochs, constant); no
warm-up. At test time (§6) the "bn" feature, cosine, and Multi-Spectral Enhanced Ranking
(`config.eval.rerank = "mser"`).

Departures of the reference from the paper, kept here: the CMR targets are the two extreme
ranks, not a ranking (§4.1); ranks are not normalised by G, so the loss sits near (G − 1)/2
(§4.1); the channel CutMix box swaps height and width (`config.data.vimc_cutmix_hw_swap`,
§1.2); the MDA's `mda_ratio` has no effect (§2.2). Departures of ours: apex fp16 training is
float32 (`config.model.dtype` = "bfloat16" is the option); a batch in which no query has both
positives and negatives gives a zero loss where the reference would crash (§4.1); the
reference's choice of the best epoch on the test set is not made (`config.eval.select`).
"""

from __future__ import annotations

from flax import nnx
import jax
import jax.numpy as jnp

from vireid_jax import checkpoints
from vireid_jax import losses
from vireid_jax.methods import base
from vireid_jax.models import mcja_pytorch
from vireid_jax.models.mcja import MCJA
from vireid_jax.models.mcja import build_mcja
from vireid_jax.training import optim


def loss_fn(model: MCJA, batch: dict, loss_config) -> tuple[jax.Array, dict]:
  """CE + CMR on one modality-agnostic batch.

  Args:
    model: MCJA in training mode (the BNNeck normalises with the whole mixed batch).
    batch: "images" [B, H, W, 3] float32 of both modalities, "labels" [B] int32,
      "modalities" [B] int32 (0 visible, 1 infrared).
    loss_config: `config.loss` (identity_weight, retrieval_weight,
      retrieval_regularization_strength).

  Returns:
    (total loss, {"loss", "identity_loss", "retrieval_loss", "accuracy"}).
  """
  outputs = model(batch["images"])
  labels = batch["labels"]
  # Both losses see the post-BNNeck embedding e (mcja §3): CE through the classifier, CMR on e.
  identity_loss = losses.cross_entropy(outputs.logits, labels)
  retrieval_loss = losses.cross_modality_retrieval(
      outputs.bn, labels, batch["modalities"],
      regularization_strength=loss_config.retrieval_regularization_strength)
  total = (loss_config.identity_weight * identity_loss
           + loss_config.retrieval_weight * retrieval_loss)
  accuracy = jnp.mean(jnp.argmax(outputs.logits, axis=-1) == labels)
  return total, {"loss": total, "identity_loss": identity_loss,
                 "retrieval_loss": retrieval_loss, "accuracy": accuracy}


class MCJAMethod(base.Method):
  """MCJA: one network, one Adam update per step."""

  # The authors' checkpoints (`vireid_jax.checkpoints.load_pytorch` / `to_pytorch_state_dict`).
  model_type = MCJA
  load_pytorch = staticmethod(mcja_pytorch.load_pytorch)
  to_pytorch_state_dict = staticmethod(mcja_pytorch.to_pytorch_state_dict)

  def __init__(self, config):
    super().__init__(config)
    if config.data.sampler != "mcja":
      raise ValueError(f"config.data.sampler={config.data.sampler!r}: MCJA trains on mixed "
                       "P x K batches of both modalities; set it to \"mcja\" (configs/mcja.py).")

  def create_state(self, data_info: base.DataInfo) -> base.NetState:
    """The initial state; a pure function of the config (same seed → same state)."""
    config = self.config
    # Unless config.model.pretrained is "none", the ResNet parts start from ImageNet
    # (the MDAs and the head stay random).
    model = checkpoints.init_pretrained(
        build_mcja(config.model, data_info.num_classes, rngs=nnx.Rngs(config.seed)),
        config.model)
    # One group: every trained parameter at the base rate, each with the coupled decay.
    tx = optim.build(config.optim, data_info.steps_per_epoch)
    return base.NetState(step=base.initial_step(), net=base.Net.create(model, tx))

  def train_step(self, state: base.NetState, batch: dict) -> tuple[base.NetState, dict]:
    """One Adam update of the whole network; pure, so it can be jitted and sharded."""
    return base.minimize_step(state, lambda model: loss_fn(model, batch, self.config.loss))

  def features(self, state: base.NetState, images: jax.Array, modality: str) -> dict:
    """Evaluation features {"pool", "bn"}: [B, D] L2-normalised; the same for both modalities."""
    base.check_modality(modality)
    return state.net.model(training=False)(images).features()


METHOD = MCJAMethod
