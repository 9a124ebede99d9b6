"""Losses: identity cross-entropy and CAJ's softened KL, the AGW / CAJ triplet losses, MCJA's
retrieval loss, MMN's distribution consistency loss, DJANet's (identically zero) complementary
learning loss."""

from vireid_jax.losses.complementary import complementary_learning_loss
from vireid_jax.losses.distribution import distribution_consistency_loss
from vireid_jax.losses.identity import cross_entropy, softened_kl_divergence
from vireid_jax.losses.metric import (
    adaptive_weighted_triplet,
    hard_mining_triplet,
    pairwise_euclidean,
    weighted_regularized_triplet,
)
from vireid_jax.losses.retrieval import cross_modality_retrieval

__all__ = [
    'adaptive_weighted_triplet',
    'complementary_learning_loss',
    'cross_entropy',
    'cross_modality_retrieval',
    'distribution_consistency_loss',
    'hard_mining_triplet',
    'pairwise_euclidean',
    'softened_kl_divergence',
    'weighted_regularized_triplet',
]
