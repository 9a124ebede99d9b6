"""DAN's losses (spec dan.md §4, §5.2, §5.3): the domain-adversarial BCE behind a gradient
reversal layer, the memory "soft identity" loss with reliable neighbours, and the
class-conditional cross-modal moment alignment.

Reference: `fuxianghuang1/DAN` at bd0ce1e9 — `model.py` (``Advers_net``, ``calc_coeff``,
``grl_hook``), `gvb_loss.py` (``GVB``), `memory_table.py` (``MemoryTable``) and `train.py`
(``loss_fn``, the ``loss_mean`` / ``loss_va`` loop of ``train``). [P] marks the spec's
proposed repairs (our defaults); the release behaviour stays selectable.

The method assembles per iteration (§6), with x̂ the L2-normalised pooled target features::

    L = L_id + L_tri
        + domain_adversarial_loss(D, u_src_rgb, u_tgt_rgb, λ_v)       # visible
        + domain_adversarial_loss(D, u_src_ir, u_tgt_ir, λ_i)         # infrared
        + 0.1 · memory_loss(x̂_rgb, …) + 0.1 · memory_loss(x̂_ir, …)
        + L_mean + L_std                                               # cross_modal_alignment

with (λ_v, λ_i) = `vireid_jax.methods.dan.grl_scales(step)`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from vireid_jax.ops import gradient_reversal

_HIGHEST = jax.lax.Precision.HIGHEST


def _safe_sqrt(x: jax.Array) -> jax.Array:
  """``sqrt(x)`` for ``x ≥ 0`` with gradient 0 (not inf / NaN) where ``x == 0``.

  The double ``where``: the inner one keeps the untaken branch's sqrt away from 0, so its
  infinite derivative never meets the zero cotangent (inf · 0 = NaN).
  """
  positive = x > 0.0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _safe_norm(x: jax.Array, axis: int = -1) -> jax.Array:
  """Euclidean norm over ``axis``; 0 with gradient 0 at the zero vector (like ``torch.norm``'s
  subgradient there)."""
  return _safe_sqrt(jnp.sum(x * x, axis=axis))


# ----------------------------------------------------------------- domain-adversarial (§4)


def domain_adversarial_loss(
    discriminator: Callable[[jax.Array], jax.Array],
    source: jax.Array,
    target: jax.Array,
    grl_scale: jax.typing.ArrayLike,
    *,
    reduction: str = "sum",
) -> jax.Array:
  """One modality's domain loss behind a gradient reversal layer (§4.1; `gvb_loss.py` ``GVB``).

  ``u = GRL_λ([source; target])``, ``z = D(u)`` (one call on all rows, so D's batch-dependent
  layers, if any, see both domains together as in the reference), and

      L = Σ_n BCE(σ(z_n), y_n),   y = 1 for the source rows, 0 for the target rows,

  summed over rows like the reference's ``torch.sum(nn.BCELoss(reduction='none')(…))``
  (``reduction="mean"`` divides by N, the spec's stability option). The BCE is evaluated in
  the logits form ``softplus(−z)`` (y = 1) / ``softplus(z)`` (y = 0), which equals PyTorch's
  ``BCELoss(sigmoid(z))`` (its log clamped at −100) for |z| < 17; beyond that the float32
  sigmoid saturates and the reference's term sticks at 100 (and loses precision on the way,
  ~1e-4 relative at |z| = 10), while the logits form stays exact and keeps its gradient.

  The GRL (`vireid_jax.ops.gradient_reversal`) is the identity forwards and multiplies the
  gradient reaching ``source`` / ``target`` by ``−grl_scale``; D's own parameters get the
  plain gradient, so one backward pass trains D to separate the domains and the features to
  confuse it. The reference's GVB entropy weighting is computed there but unused, so it is
  not reproduced. Unlike the reference, which labels the first ``N // 2`` rows as source,
  the two sets may have different sizes.

  Args:
    discriminator: any callable ``[N, D'] → [N]`` or ``[N, 1]`` logits (e.g. an NNX module in
      training mode, or a partial of a pure function of its weights).
    source: ``[S, D']`` source-domain inputs of D (BN-neck features [P], or softmax scores in
      the release's call path).
    target: ``[T, D']`` target-domain inputs.
    grl_scale: the GRL factor λ, a scalar (may be traced; see `methods.dan.grl_scales`).
    reduction: ``"sum"`` (the reference) or ``"mean"`` (÷ N = S + T).

  Returns:
    The float32 scalar loss.

  Raises:
    ValueError: an unknown ``reduction``, inputs that are not 2-D with equal widths, or
      logits that are not one per row.
  """
  if reduction not in ("sum", "mean"):
    raise ValueError(f"config.dan.adversarial_reduction must be 'sum' or 'mean', got "
                     f"{reduction!r}.")
  if jnp.ndim(source) != 2 or jnp.ndim(target) != 2 or \
      jnp.shape(source)[1] != jnp.shape(target)[1]:
    raise ValueError(f"source and target must be [S, D] and [T, D], got shapes "
                     f"{jnp.shape(source)} and {jnp.shape(target)}.")
  num_source, num_target = jnp.shape(source)[0], jnp.shape(target)[0]
  rows = gradient_reversal(jnp.concatenate([source, target], axis=0), grl_scale)
  logits = discriminator(rows)
  if jnp.shape(logits) not in ((num_source + num_target,), (num_source + num_target, 1)):
    raise ValueError(f"the discriminator must return one logit per row ([N] or [N, 1] with "
                     f"N = {num_source + num_target}), got shape {jnp.shape(logits)}.")
  logits = jnp.reshape(logits, (-1,)).astype(jnp.float32)
  is_source = jnp.arange(num_source + num_target) < num_source
  # −log σ(z) = softplus(−z), −log(1 − σ(z)) = softplus(z).
  per_row = jax.nn.softplus(jnp.where(is_source, -logits, logits))
  total = jnp.sum(per_row)
  return total if reduction == "sum" else total / (num_source + num_target)


# ----------------------------------------------------------------------- memory loss (§5.2)


def memory_loss(
    features: jax.Array,
    rows: jax.Array,
    labels: jax.Array,
    positive_memory: jax.Array,
    neighbour_memory: jax.Array,
    neighbours: jax.Array,
    memory_labels: jax.Array,
    *,
    instance_weight: float = 0.4,
    temperature: float = 1.0,
) -> jax.Array:
  """The memory "soft identity" loss of one modality (§5.2; `train.py` ``loss_fn``,
  `memory_table.py`).

  For sample b with feature x, memory row j = ``rows[b]`` and pseudo-label ŷ = ``labels[b]``:

      P_pos(x, r) = softmax_r(x · positive_memoryᵀ / t)
      P_nb(x, r)  = softmax_r(x · neighbour_memoryᵀ / t)
      L(x) = −λ · log P_pos(x, j)
             − (1 − λ)/k · Σ_{r ∈ neighbours[j]} 1[memory_labels[r] = ŷ] · log P_nb(x, r)

  and the loss is the mean of L over the B samples. k (the neighbour count, 5) divides even
  when few neighbours share the label, as in the reference (``len(reliables)``). The memories
  are constants (the reference fills them under ``no_grad`` once per epoch): they are
  ``stop_gradient``-ed, only ``features`` gets a gradient.

  Which memory goes where (M^v / M^i the RGB / IR memories, R^v / R^i their reliable
  neighbours, ŷ^v / ŷ^i their pseudo-labels):

  * RGB sample (``modal=0``): ``positive_memory = neighbour_memory = M^i``,
    ``neighbours = R^v``, ``memory_labels = ŷ^v``.
  * IR sample, release (``modal=1``): ``positive_memory = M^v``, ``neighbour_memory = M^i``
    (the reference's ``nir_reliables_probability`` reads ``nir_vectors``), ``neighbours = R^i``,
    ``memory_labels = ŷ^i``.
  * IR sample, symmetric [P]: as the release but ``neighbour_memory = M^v``.

  Args:
    features: ``[B, D]`` training-mode L2-normalised features.
    rows: ``[B]`` int, each sample's memory row (its position in the epoch's plan).
    labels: ``[B]`` int pseudo-labels of the samples.
    positive_memory: ``[M, D]`` memory whose row ``rows[b]`` is the positive.
    neighbour_memory: ``[M, D]`` memory of the neighbour term's softmax.
    neighbours: ``[M, k]`` int reliable neighbours (`methods.dan.reliable_neighbours`).
    memory_labels: ``[M]`` int pseudo-labels of the memory rows the neighbours index.
    instance_weight: λ (0.4).
    temperature: t (1; the reference's loss_fn passes 1 although the table's methods
      default to 0.1).

  Returns:
    The float32 scalar loss.

  Raises:
    ValueError: inconsistent shapes.
  """
  if jnp.ndim(features) != 2 or jnp.ndim(positive_memory) != 2:
    raise ValueError(f"memory_loss expects features [B, D] and memories [M, D]; got "
                     f"{jnp.shape(features)} and {jnp.shape(positive_memory)}.")
  num_samples, dim = jnp.shape(features)
  num_rows = jnp.shape(positive_memory)[0]
  if (jnp.shape(rows) != (num_samples,) or jnp.shape(labels) != (num_samples,)
      or jnp.shape(positive_memory) != (num_rows, dim)
      or jnp.shape(neighbour_memory) != (num_rows, dim)
      or jnp.ndim(neighbours) != 2 or jnp.shape(neighbours)[0] != num_rows
      or jnp.shape(memory_labels) != (num_rows,)):
    raise ValueError(
        "memory_loss expects features [B, D], rows [B], labels [B], memories [M, D], "
        f"neighbours [M, k], memory_labels [M]; got {jnp.shape(features)}, {jnp.shape(rows)}, "
        f"{jnp.shape(labels)}, {jnp.shape(positive_memory)}, {jnp.shape(neighbour_memory)}, "
        f"{jnp.shape(neighbours)}, {jnp.shape(memory_labels)}.")
  num_neighbours = jnp.shape(neighbours)[1]
  features = jnp.asarray(features, jnp.float32)
  positive_memory = jax.lax.stop_gradient(jnp.asarray(positive_memory, jnp.float32))
  neighbour_memory = jax.lax.stop_gradient(jnp.asarray(neighbour_memory, jnp.float32))
  rows = jnp.asarray(rows)

  positive_log_probs = jax.nn.log_softmax(
      jnp.matmul(features, positive_memory.T, precision=_HIGHEST) / temperature, axis=1)
  instance_term = jnp.take_along_axis(positive_log_probs, rows[:, None], axis=1)[:, 0]

  neighbour_log_probs = jax.nn.log_softmax(
      jnp.matmul(features, neighbour_memory.T, precision=_HIGHEST) / temperature, axis=1)
  sample_neighbours = jnp.asarray(neighbours)[rows]                       # [B, k]
  same_label = jnp.asarray(memory_labels)[sample_neighbours] == jnp.asarray(labels)[:, None]
  neighbour_terms = jnp.take_along_axis(neighbour_log_probs, sample_neighbours, axis=1)
  neighbour_term = jnp.sum(jnp.where(same_label, neighbour_terms, 0.0), axis=1) / num_neighbours

  per_sample = -instance_weight * instance_term - (1.0 - instance_weight) * neighbour_term
  return jnp.mean(per_sample)


# ----------------------------------------------------------- cross-modal alignment (§5.3)


def cross_modal_alignment(
    visible: jax.Array,
    infrared: jax.Array,
    visible_labels: jax.Array,
    infrared_labels: jax.Array,
    *,
    variant: str = "corrected",
) -> tuple[jax.Array, jax.Array]:
  """Class-conditional first / second moment alignment across modalities (§5.3).

  Over the pseudo-labels c present in both halves of the target batch (negative labels, −1 =
  unlabelled, never count):

      L_mean = Σ_c ‖μᵛ_c − μⁱ_c‖₂,   L_std = Σ_c ‖σᵛ_c − σⁱ_c‖₂

  (per-dimension mean / standard deviation, summed over classes, weight 1 each).

  * ``"corrected"`` [P]: μᵛ_c, σᵛ_c from the visible rows labelled c, μⁱ_c, σⁱ_c from the
    infrared rows labelled c; σ is the unbiased std, and a class enters L_std only with ≥ 2
    rows in each half (duplicated images count as rows).
  * ``"release"`` (`train.py`, ``loss_mean`` / ``loss_va``): BOTH statistics come from the
    visible rows X [B, D] — A = 1[visible_labels = c] ⊙ X and B' = 1[infrared_labels = c] ⊙ X
    (the IR labels mask the RGB rows); μ = ``A.mean(0)`` (the members' sum ÷ B) and
    σ = ``A.std(0)`` (unbiased, over all B rows, zeros included). ``infrared`` is never
    read; identical label vectors give exactly 0.

  Jittable: the classes are found by comparing the labels with each other (the candidate
  classes are the visible labels, each counted at its first occurrence), no fixed class
  count. Gradients are finite everywhere; where a norm or a std is exactly 0 its gradient
  is 0 (the reference's std gives NaN there).

  Args:
    visible: ``[Bv, D]`` L2-normalised features of the target RGB half.
    infrared: ``[Bi, D]`` the target IR half (unread by ``"release"``).
    visible_labels: ``[Bv]`` int pseudo-labels.
    infrared_labels: ``[Bi]`` int pseudo-labels (``"release"``: Bi = Bv).
    variant: ``"corrected"`` [P] or ``"release"``.

  Returns:
    ``(L_mean, L_std)``, float32 scalars.

  Raises:
    ValueError: an unknown ``variant``, or inconsistent shapes.
  """
  if variant not in ("corrected", "release"):
    raise ValueError(f"config.dan.cma must be 'corrected' or 'release', got {variant!r}.")
  if (jnp.ndim(visible) != 2 or jnp.ndim(infrared) != 2
      or jnp.shape(visible)[1] != jnp.shape(infrared)[1]
      or jnp.shape(visible_labels) != jnp.shape(visible)[:1]
      or jnp.shape(infrared_labels) != jnp.shape(infrared)[:1]):
    raise ValueError(f"cross_modal_alignment expects visible [Bv, D], infrared [Bi, D] and "
                     f"their [Bv], [Bi] labels; got {jnp.shape(visible)}, "
                     f"{jnp.shape(infrared)}, {jnp.shape(visible_labels)}, "
                     f"{jnp.shape(infrared_labels)}.")
  if variant == "release" and jnp.shape(infrared_labels) != jnp.shape(visible_labels):
    raise ValueError("cross_modal_alignment(variant='release') masks the visible rows with the "
                     "infrared labels, so both label vectors must have the same length; got "
                     f"{jnp.shape(visible_labels)} and {jnp.shape(infrared_labels)}.")
  visible = jnp.asarray(visible, jnp.float32)
  infrared = jnp.asarray(infrared, jnp.float32)
  visible_labels = jnp.asarray(visible_labels)
  infrared_labels = jnp.asarray(infrared_labels)

  # Candidate class j = visible_labels[j]; it counts once (at its first occurrence), if it is
  # a real label and also occurs in the infrared half.
  num_visible = visible_labels.shape[0]
  same_visible = visible_labels[:, None] == visible_labels[None, :]          # [Bv, Bv]
  earlier = jnp.tril(jnp.ones((num_visible, num_visible), bool), k=-1)
  first_occurrence = ~jnp.any(same_visible & earlier, axis=1)
  in_infrared = visible_labels[:, None] == infrared_labels[None, :]          # [Bv, Bi]
  shared = first_occurrence & (visible_labels >= 0) & jnp.any(in_infrared, axis=1)

  if variant == "release":
    # infrared_labels mask the visible rows here (the reference's `bpre`). Where both masks
    # select the same rows the terms are exactly 0 by construction (the means' difference
    # from the masks' difference, the stds' difference by a `where`), not up to the rounding
    # of two separately compiled reductions.
    mask_difference = same_visible.astype(jnp.float32) - in_infrared.astype(jnp.float32)
    mean_difference = jnp.matmul(mask_difference, visible, precision=_HIGHEST) / num_visible
    same_masks = jnp.all(same_visible == in_infrared, axis=1)
    first_std = _zero_filled_std(visible, same_visible)
    second_std = jnp.where(same_masks[:, None], first_std,
                           _zero_filled_std(visible, in_infrared))
    std_counts = shared
  else:
    first_mean, first_std, first_count = _member_moments(visible, same_visible)
    second_mean, second_std, second_count = _member_moments(infrared, in_infrared)
    mean_difference = first_mean - second_mean
    std_counts = shared & (first_count >= 2) & (second_count >= 2)

  mean_loss = jnp.sum(jnp.where(shared, _safe_norm(mean_difference), 0.0))
  std_loss = jnp.sum(jnp.where(std_counts, _safe_norm(first_std - second_std), 0.0))
  return mean_loss, std_loss


def _zero_filled_std(rows: jax.Array, masks: jax.Array) -> jax.Array:
  """Per mask j: the unbiased std over ALL N rows of ``masks[j] ⊙ rows`` (non-members as zero
  rows), the reference's ``(mask * X).std(0)``. ``[J, N] → [J, D]``."""
  num_rows = rows.shape[0]
  masked = jnp.where(masks[:, :, None], rows[None, :, :], 0.0)               # [J, N, D]
  mean = jnp.sum(masked, axis=1) / num_rows
  # N = 1 would be 0/0 in the reference; a std of 0 here.
  variance = jnp.sum((masked - mean[:, None, :]) ** 2, axis=1) / max(num_rows - 1, 1)
  return _safe_sqrt(variance)


def _member_moments(rows: jax.Array,
                    masks: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per mask j: mean and unbiased std over the member rows only, and the member count.
  ``[J, N] → [J, D], [J, D], [J]``; the statistics of a mask with < 2 members are finite
  placeholders (the caller skips them)."""
  count = jnp.sum(masks, axis=1)
  member_rows = jnp.where(masks[:, :, None], rows[None, :, :], 0.0)          # [J, N, D]
  mean = jnp.sum(member_rows, axis=1) / jnp.maximum(count, 1)[:, None]
  deviations = jnp.where(masks[:, :, None], rows[None, :, :] - mean[:, None, :], 0.0)
  variance = jnp.sum(deviations ** 2, axis=1) / jnp.maximum(count - 1, 1)[:, None]
  return mean, _safe_sqrt(variance), count
