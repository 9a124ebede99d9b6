"""DJANet's complementary learning loss (CRSL; spec djanet.md §5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def complementary_learning_loss(feature_maps: jax.Array) -> jax.Array:
  """DJANet's L_cll on the layer4 maps: **0 for every input, with a zero gradient**.

  The reference pairs the first half of the maps (visible views) with the second half
  (infrared views) by index, weighs Huber-smoothed, histogram-entropy-based maps of each pair
  into a loss map L, and returns mean((L − mean L) / std L): the mean of a standardised array,
  which is 0 whatever L is (its gradient too). Computing L only to standardise it away would
  cost a [N/2, N/2, H, W] broadcast (the reference's shapes) for nothing, so the faithful value
  is returned directly; the arguments are still checked, so a wrongly shaped call fails here as
  it would there.

  Args:
    feature_maps: [N, H, W, C] layer4 maps of the batch, N even (visible views first).

  Returns:
    Scalar float32 zero (its gradient with respect to the maps is zero, as the reference's).

  Raises:
    ValueError: not [N, H, W, C] with N even, naming the shape.
  """
  if feature_maps.ndim != 4 or feature_maps.shape[0] % 2:
    raise ValueError(f"complementary_learning_loss needs [N, H, W, C] maps with N even (visible "
                     f"views, then infrared), got shape {feature_maps.shape}.")
  return jnp.zeros((), jnp.float32)
