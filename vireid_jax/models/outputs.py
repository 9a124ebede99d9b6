"""What a re-id model returns: one pytree, the same kind of value in training and evaluation.

The model computes every output in both modes (only BatchNorm switches between batch and
running statistics); the training step reads the fields its losses need, evaluation calls
:meth:`ReidOutputs.features`. Under ``jit``, XLA drops whatever the caller does not use.
"""

from __future__ import annotations

import jax
from flax import struct

from vireid_jax.models.layers import l2_normalize


@struct.dataclass
class ReidOutputs:
  """Outputs of a BNNeck re-id network for a batch of B images.

  Richer heads (part features, auxiliary or modality classifiers, attention maps) subclass
  it (decorated with ``@flax.struct.dataclass`` too) or add fields here later, and may
  override :meth:`features` to offer more evaluation features.

  Attributes:
    pooled: ``[B, D]`` raw pooled feature, before the BNNeck and not normalised (the
      triplet loss's input; the reference's "POOL" feature before normalisation).
    bn: ``[B, D]`` raw BNNeck output, not normalised (the reference's "FC" feature before
      normalisation).
    logits: ``[B, num_classes]`` identity classifier scores of ``bn``.
  """

  pooled: jax.Array
  bn: jax.Array
  logits: jax.Array

  def features(self) -> dict[str, jax.Array]:
    """Evaluation features: ``{"pool": [B, D], "bn": [B, D]}``, each row L2-normalised."""
    return {'pool': l2_normalize(self.pooled), 'bn': l2_normalize(self.bn)}
