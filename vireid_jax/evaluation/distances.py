"""Pairwise distances between query and gallery features, in jnp.

Every function here is pure and shape-polymorphic, so the evaluation engine can call
it inside its own jit on one block of queries at a time (the full query x gallery matrix
never has to exist at once). Matrix products request full float32 precision: the
default GPU precision (TF32) would perturb the rankings the metrics are computed from.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vireid_jax.models.layers import l2_normalize

# Distances selectable by `config.eval.distance`.
DISTANCES = ("cosine", "euclidean")


def _inner_products(query_features: jax.Array, gallery_features: jax.Array) -> jax.Array:
  return jnp.matmul(query_features, gallery_features.T, precision=jax.lax.Precision.HIGHEST)


@jax.jit
def negative_cosine_distance(query_features: jax.Array, gallery_features: jax.Array) -> jax.Array:
  """Distance = -(Q Gᵀ): cosine distance order for L2-normalised features.

  The features are used as given: the models already L2-normalise their
  evaluation features (spec §7.1), and this is the reference's `-np.matmul`.

  Args:
    query_features: [num_query, D].
    gallery_features: [num_gallery, D].

  Returns:
    [num_query, num_gallery] distances, smaller = closer.
  """
  return -_inner_products(query_features, gallery_features)


def squared_euclidean_distance(x: jax.Array, y: jax.Array) -> jax.Array:
  """|x_i - y_j|² as |x_i|² + |y_j|² - 2 x_i·y_j (the re-ranking papers' formula).

  Not clamped at 0, like the references: rounding can leave tiny negative values
  (e.g. on the diagonal), which only matter for ties.

  Args:
    x: [M, D].
    y: [N, D].

  Returns:
    [M, N].
  """
  return (
      jnp.sum(x * x, axis=1)[:, None]
      + jnp.sum(y * y, axis=1)[None, :]
      - 2.0 * _inner_products(x, y)
  )


def pairwise_distance(
    query_features: jax.Array, gallery_features: jax.Array, kind: str
) -> jax.Array:
  """Distances of `kind` between every query and every gallery item.

  * "cosine": -cos(q, g), computed as -(q̂ · ĝ) on L2-normalised copies, so it is
    the cosine whatever the features' norms (for the models' already normalised
    features this is the reference's -(Q Gᵀ), up to float rounding).
  * "euclidean": |q - g|, on the features as given (the official SYSU-MM01 MATLAB
    code's `pdist2`); the square root is kept so the values are true distances.
    On L2-normalised features it ranks exactly like "cosine".

  Args:
    query_features: [num_query, D].
    gallery_features: [num_gallery, D].
    kind: one of `DISTANCES`.

  Returns:
    [num_query, num_gallery] distances, smaller = closer.
  """
  if kind == "cosine":
    return -_inner_products(l2_normalize(query_features), l2_normalize(gallery_features))
  if kind == "euclidean":
    return jnp.sqrt(jnp.maximum(squared_euclidean_distance(query_features, gallery_features), 0.0))
  raise ValueError(f"Unknown distance {kind!r}; expected one of {DISTANCES}.")
