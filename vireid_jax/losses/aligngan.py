"""AlignGAN's losses (spec aligngan.md §3): the cross-modality cosine triplet, the LSGAN
objectives of its discriminators and generators, and the L1 of its cycle / identity terms.

Reference: `tools/loss2.py` (``TripletLoss``, metric 'cosine', ``soft_bh=[0, 0]``),
`tools/metric.py` (``cosine``), `core/train.py`, `core/warmup.py`, `core/base.py`.

These are pure functions of scores / embeddings / images; routing gradients between the
players (which inputs are stop-gradient for which network) is the caller's job, see
:mod:`vireid_jax.ops.minmax`. The method assembles (§3.7, §3.8)::

    L_G = lsgan_generator_loss(D_rgb(f_r), D_ir(f_i, sg(M_i)))
          + 10 · ½[l1_loss(G_i2r(f_i), r) + l1_loss(G_r2i(f_r), i)]      # L_cyc
          + 5 · ½[l1_loss(G_i2r(r), r) + l1_loss(G_r2i(i), i)]           # L_idt
          + 0.1 · [cosine_batch_hard_triplet(e(f_i), e(i), e(i), y_r, y_i, y_i)
                   + cosine_batch_hard_triplet(e(i), e(f_i), e(f_i), y_r, y_i, y_i)]
          + 0.1 · cross_entropy(logits(f_i), y_r)
    L_F = L_cls + L_tri + 0.1 · lsgan_generator_loss(D_ir(i, M_f))

Scores are NHWC patch maps ([B, 4, 4, 1]) where the reference has [B, 1, 4, 4]; every loss
here is a mean over all elements, so the layout does not matter.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vireid_jax.ops.minmax import lsgan_loss


def _cosine_similarity(first: jax.Array, second: jax.Array) -> jax.Array:
  """``[M, D] × [N, D] → [M, N]``: ``a·b / (‖a‖ ‖b‖)`` with no epsilon (`tools/metric.py`).

  A zero vector gives NaN, as in the reference. The dot products use HIGHEST precision so
  that accelerators do not round the float32 inputs to TF32 / bfloat16.
  """
  dots = jnp.matmul(first, second.T, precision=jax.lax.Precision.HIGHEST)
  first_norms = jnp.sqrt(jnp.sum(first * first, axis=1))
  second_norms = jnp.sqrt(jnp.sum(second * second, axis=1))
  return dots / (first_norms[:, None] * second_norms[None, :])


def cosine_batch_hard_triplet(
    anchors: jax.Array,
    positives: jax.Array,
    negatives: jax.Array,
    anchor_labels: jax.Array,
    positive_labels: jax.Array,
    negative_labels: jax.Array,
    margin: float = 1.0,
) -> jax.Array:
  """AlignGAN's batch-hard triplet loss on cosine similarities (§3.4, `tools/loss2.py`).

  With S⁺ = cos(anchors, positives) and S⁻ = cos(anchors, negatives):

  * s⁺_k = min_{j: positive_labels_j = anchor_labels_k} S⁺_kj (least similar positive),
  * s⁻_k = max_{j: negative_labels_j ≠ anchor_labels_k} S⁻_kj (most similar negative),
  * ``L = mean_k max(0, s⁻_k − s⁺_k + margin)``
    (``nn.MarginRankingLoss(margin)(s⁻, s⁺, −1)``; at a hinge of exactly 0 the gradient
    passes, as through PyTorch's ``clamp(min=0)``).

  Positives and negatives are separate candidate sets (of any sizes P and N); AlignGAN
  passes the same set twice (P = N = the other modality, or A = P = N within IR in the
  feature warm-up, where each anchor is its own candidate positive with similarity ≈ 1).
  Nothing is detached: gradients reach all three sets.

  Edge cases, as in the reference: the reference masks by adding ±9999999 to the excluded
  similarities before sorting, so an anchor without a positive gets s⁺ ≈ 1e7 (without a
  negative, s⁻ ≈ −1e7) and its hinge is 0 with zero gradient, while it still counts in the
  mean's denominator. Here the excluded entries are ±inf, which gives the same value and
  gradient for any margin below ~1e7. Where several candidates tie for the hardest one,
  the reference's ``torch.sort`` sends the gradient to one of them, ``jnp.min`` / ``jnp.max``
  split it equally. Exact ties practically only come from duplicated embeddings (the same
  image drawn twice), and then the split gives the same gradient to the anchor and to the
  network's parameters.

  Args:
    anchors: ``[A, D]`` embeddings (computed in float32).
    positives: ``[P, D]`` positive candidates.
    negatives: ``[N, D]`` negative candidates.
    anchor_labels: ``[A]`` integer identities.
    positive_labels: ``[P]``.
    negative_labels: ``[N]``.
    margin: the ranking margin (1.0 in AlignGAN).

  Returns:
    The float32 scalar loss.

  Raises:
    ValueError: an embedding set is not 2-D, or a label vector does not match its set.
  """
  sets = (("anchors", anchors, anchor_labels), ("positives", positives, positive_labels),
          ("negatives", negatives, negative_labels))
  for name, embeddings, labels in sets:
    if jnp.ndim(embeddings) != 2 or jnp.shape(labels) != jnp.shape(embeddings)[:1]:
      raise ValueError(f"{name} must be [n, D] with [n] labels, got shapes "
                       f"{jnp.shape(embeddings)} and {jnp.shape(labels)}.")
  anchors, positives, negatives = (
      jnp.asarray(x, jnp.float32) for x in (anchors, positives, negatives))
  anchor_labels, positive_labels, negative_labels = (
      jnp.asarray(x) for x in (anchor_labels, positive_labels, negative_labels))

  positive_similarity = _cosine_similarity(anchors, positives)
  is_positive = anchor_labels[:, None] == positive_labels[None, :]
  hardest_positive = jnp.min(jnp.where(is_positive, positive_similarity, jnp.inf), axis=1)

  negative_similarity = _cosine_similarity(anchors, negatives)
  is_negative = anchor_labels[:, None] != negative_labels[None, :]
  hardest_negative = jnp.max(jnp.where(is_negative, negative_similarity, -jnp.inf), axis=1)

  # −inf (never inf − inf) when a set is empty for an anchor: a zero hinge, no NaN.
  hinge = hardest_negative - hardest_positive + margin
  # PyTorch's clamp(min=0) passes the gradient at exactly 0 (jax.nn.relu does not): kept, so
  # that boundary anchors (e.g. s⁺ = 1, s⁻ = 0, margin 1) get the reference's gradient.
  return jnp.mean(jnp.where(hinge >= 0.0, hinge, 0.0))


def lsgan_discriminator_loss(real_scores: jax.Array, fake_scores: jax.Array) -> jax.Array:
  """An unconditional discriminator's LSGAN loss (§3.6): ``½[MSE(real, 1) + MSE(fake, 0)]``.

  D_rgb (joint phase) and D_rgb_warm / D_ir_warm (pixel warm-up). The fakes' scores must
  not reach the generator: compute them on ``stop_gradient`` fakes, or take the
  discriminator-facing output of :func:`~vireid_jax.ops.adversarial_scores`.

  Args:
    real_scores: D's scores on real images, e.g. ``[B, 4, 4, 1]``.
    fake_scores: D's scores on generated images, any shape.

  Returns:
    The scalar loss.
  """
  return 0.5 * (lsgan_loss(real_scores, 1.0) + lsgan_loss(fake_scores, 0.0))


def lsgan_generator_loss(*fake_scores: jax.Array) -> jax.Array:
  """The LSGAN "make it look real" loss, averaged over discriminators (§3.7, §3.8).

  ``mean_k MSE(fake_scores_k, 1)``: with two arguments the generators' adversarial term
  ``½[MSE(D_rgb(f_r), 1) + MSE(D_ir(f_i, sg(M_i)), 1)]`` (the warm-up uses the
  unconditional D_rgb_warm / D_ir_warm); with one argument the feature step's
  ``MSE(D_ir(i, M_f), 1)``, where the encoder plays the generator. The discriminators are
  frozen in these terms (``stop_gradient`` of their parameters, or the generator-facing
  output of :func:`~vireid_jax.ops.adversarial_scores`).

  Args:
    *fake_scores: one or more score arrays, each of any shape (e.g. ``[B, 4, 4, 1]``); each
      is averaged over its own elements before the mean over arguments.

  Returns:
    The scalar loss.

  Raises:
    ValueError: no score array is given.
  """
  if not fake_scores:
    raise ValueError("lsgan_generator_loss needs at least one score array.")
  return sum(lsgan_loss(scores, 1.0) for scores in fake_scores) / len(fake_scores)


def joint_discriminator_loss(
    real: jax.Array,
    wrong_image: jax.Array,
    real_image_fake_feature: jax.Array,
    fake_image_real_feature: jax.Array,
    fake_image_fake_feature: jax.Array,
) -> jax.Array:
  """The conditional D_ir's loss over one real and four fake pairs (§3.5, `core/train.py`).

  ``½[MSE(real, 1) + ¼ Σ_k MSE(fake_k, 0)]`` with the scores of D_ir on

  * ``real``: (i, M_i);
  * ``wrong_image``: (roll(i), M_i), the real-IR batch rolled so that image k is the one
    four places later, ``jnp.roll(i, -4, axis=0)`` (`core/base.py` ``generate_wrong_images``:
    ``cat([images[4:], images[:4]])``; 4 = K, the images per identity of the P×K batch, so
    each feature map meets an image of the next identity);
  * ``real_image_fake_feature``: (i, M_f);
  * ``fake_image_real_feature``: (f_i, M_i);
  * ``fake_image_fake_feature``: (f_i, M_f).

  All images and feature maps are constants here (``stop_gradient``; computed before the
  generator update); only D_ir's parameters get gradients.

  Args:
    real: scores of the real pair, e.g. ``[B, 4, 4, 1]``.
    wrong_image: scores of the wrong-identity pair.
    real_image_fake_feature: scores of (real image, fake feature).
    fake_image_real_feature: scores of (fake image, real feature).
    fake_image_fake_feature: scores of (fake image, fake feature).

  Returns:
    The scalar loss.
  """
  fakes = (wrong_image, real_image_fake_feature, fake_image_real_feature,
           fake_image_fake_feature)
  fake_loss = sum(lsgan_loss(scores, 0.0) for scores in fakes) / 4.0
  return 0.5 * (lsgan_loss(real, 1.0) + fake_loss)


def l1_loss(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """``mean |predictions − targets|`` over all elements (``nn.L1Loss``, §3.2).

  AlignGAN's cycle loss is ``½[l1_loss(G_i2r(f_i), r) + l1_loss(G_r2i(f_r), i)]`` and its
  identity-mapping loss ``½[l1_loss(G_i2r(r), r) + l1_loss(G_r2i(i), i)]``; the targets are
  the real images (no gradient needed into them, none given to constants).

  Args:
    predictions: e.g. reconstructed images ``[B, H, W, 3]``.
    targets: same shape.

  Returns:
    The scalar loss.

  Raises:
    ValueError: the shapes differ (the reference's ``L1Loss`` would broadcast with a warning).
  """
  if jnp.shape(predictions) != jnp.shape(targets):
    raise ValueError(f"l1_loss needs one shape, got {jnp.shape(predictions)} and "
                     f"{jnp.shape(targets)}.")
  return jnp.mean(jnp.abs(predictions - targets))
