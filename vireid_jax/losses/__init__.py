"""Losses: identity cross-entropy and CAJ's softened KL, the AGW / CAJ triplet losses, MCJA's
retrieval loss, MMN's distribution consistency loss, DJANet's (identically zero) complementary
learning loss, AlignGAN's cosine triplet, LSGAN objectives and L1, DAN's domain-adversarial
BCE, memory loss and cross-modal moment alignment."""

from vireid_jax.losses.aligngan import (
    cosine_batch_hard_triplet,
    joint_discriminator_loss,
    l1_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from vireid_jax.losses.complementary import complementary_learning_loss
from vireid_jax.losses.dan import (
    cross_modal_alignment,
    domain_adversarial_loss,
    memory_loss,
)
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
    'cosine_batch_hard_triplet',
    'cross_entropy',
    'cross_modal_alignment',
    'cross_modality_retrieval',
    'distribution_consistency_loss',
    'domain_adversarial_loss',
    'hard_mining_triplet',
    'joint_discriminator_loss',
    'l1_loss',
    'lsgan_discriminator_loss',
    'lsgan_generator_loss',
    'memory_loss',
    'pairwise_euclidean',
    'softened_kl_divergence',
    'weighted_regularized_triplet',
]
