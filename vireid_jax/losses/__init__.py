"""Losses: identity cross-entropy and the AGW / CAJ triplet losses."""

from vireid_jax.losses.identity import cross_entropy
from vireid_jax.losses.metric import (
    adaptive_weighted_triplet,
    hard_mining_triplet,
    pairwise_euclidean,
    weighted_regularized_triplet,
)

__all__ = [
    'adaptive_weighted_triplet',
    'cross_entropy',
    'hard_mining_triplet',
    'pairwise_euclidean',
    'weighted_regularized_triplet',
]
