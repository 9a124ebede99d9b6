"""Losses: identity cross-entropy, the AGW / CAJ triplet losses, MCJA's retrieval loss."""

from vireid_jax.losses.identity import cross_entropy
from vireid_jax.losses.metric import (
    adaptive_weighted_triplet,
    hard_mining_triplet,
    pairwise_euclidean,
    weighted_regularized_triplet,
)
from vireid_jax.losses.retrieval import cross_modality_retrieval

__all__ = [
    'adaptive_weighted_triplet',
    'cross_entropy',
    'cross_modality_retrieval',
    'hard_mining_triplet',
    'pairwise_euclidean',
    'weighted_regularized_triplet',
]
