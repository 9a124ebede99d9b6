"""DAN's networks (spec dan.md §2, §4): AGW's two-stream ResNet with max pooling, and the
domain discriminator.

The re-id network is :class:`~vireid_jax.models.agw.AGW` with ``non_local=False`` and
``pooling='max'`` (the reference ``embed_net`` of ``model.py`` pools with
``AdaptiveMaxPool2d`` whatever its ``gm_pool`` argument says): separate visible and thermal
stems, a shared layer1–4 with last stride 1, a BNNeck with γ ~ N(1, 0.01) and no β, a bias-free
classifier over the source identities. The release's GVB leftovers (``reduction``, ``bridge``,
``bottleneck2``, ``classifier2``) are not modelled (§2.2): its training code cannot run them.

:class:`DomainDiscriminator` is ``Advers_net``: Linear(in→1024) → ReLU → Dropout(0.5) →
Linear(1024→1024) → ReLU → Dropout(0.5) → Linear(1024→1), kaiming-normal weights (fan in,
gain √2) and zero biases (``init_weights``). The gradient reversal in front of it is
``vireid_jax.ops.gradient_reversal`` (``losses.domain_adversarial_loss``), not part of the
module; the sigmoid is in the loss (its logits form).
"""

from __future__ import annotations

from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp

from vireid_jax.models.agw import AGW

# PyTorch's kaiming_normal_ defaults: fan in, leaky-ReLU gain with slope 0, i.e. N(0, 2/fan_in),
# untruncated.
_KAIMING_NORMAL = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")


class DomainDiscriminator(nnx.Module):
  """The three-layer domain classifier D of DAN's adversarial alignment (§4.1).

  Attributes:
    hidden1, hidden2: Linear in→hidden and hidden→hidden, each followed by ReLU and dropout.
    score: Linear hidden→1, the source-vs-target logit.
    dropout: the dropout rate of both hidden layers (0.5).
  """

  def __init__(self, in_features: int, *, hidden: int = 1024, dropout: float = 0.5,
               rngs: nnx.Rngs):
    linear = lambda fan_in, fan_out: nnx.Linear(
        fan_in, fan_out, kernel_init=_KAIMING_NORMAL, bias_init=nnx.initializers.zeros_init(),
        rngs=rngs)
    self.hidden1 = linear(in_features, hidden)
    self.hidden2 = linear(hidden, hidden)
    self.score = linear(hidden, 1)
    self.dropout = dropout

  def __call__(self, rows: jax.Array, *, dropout_key: jax.Array | None = None) -> jax.Array:
    """Source-vs-target logits.

    Args:
      rows: [N, in_features] (float32).
      dropout_key: a PRNG key for the two dropouts (training), or None for none (evaluation).
        Inverted dropout, as PyTorch's.

    Returns:
      [N] logits (sigmoid → probability of the source domain).
    """
    keys = [None, None] if dropout_key is None else list(jax.random.split(dropout_key))
    x = rows.astype(jnp.float32)
    for layer, key in ((self.hidden1, keys[0]), (self.hidden2, keys[1])):
      x = jax.nn.relu(layer(x))
      if key is not None and self.dropout > 0:
        keep = jax.random.bernoulli(key, 1.0 - self.dropout, x.shape)
        x = jnp.where(keep, x / (1.0 - self.dropout), 0.0)
    return self.score(x)[:, 0]


class DANNetwork(AGW):
  """DAN's re-id network: an :class:`AGW` (``non_local=False``, ``pooling='max'``) whose
  reference checkpoint has DAN's keys (`models.dan_pytorch`); a class of its own so that
  `vireid_jax.checkpoints.to_pytorch_state_dict` exports it under them."""


def build_dan_network(model_config: Any, num_classes: int, *, rngs: nnx.Rngs) -> DANNetwork:
  """DAN's re-id network: AGW from ``config.model`` (``configs/dan.py`` sets ``non_local``
  False and ``pooling`` "max"; a config that does not is refused, naming the field)."""
  if model_config.non_local or model_config.pooling != "max":
    raise ValueError(
        f"DAN's network has no non-local blocks and max pooling (dan.md §2.1); got "
        f"config.model.non_local={model_config.non_local!r}, "
        f"config.model.pooling={model_config.pooling!r} (configs/dan.py sets False and 'max').")
  return DANNetwork(
      num_classes, depth=model_config.depth, width=model_config.width,
      last_stride=model_config.last_stride, non_local=False, pooling="max",
      dtype=jnp.dtype(model_config.dtype), rngs=rngs)
