"""DAN (Fu et al., TCSVT 2022): cross-modal cross-domain dual alignment.

Spec dan.md; reference `fuxianghuang1/DAN` at bd0ce1e9. A labelled source RGB-IR dataset and an
unlabelled target one (another dataset, or a synthetic noise / lighting / background domain:
`config.data.target`).

Model (§2). AGW's two-stream ResNet-50 without non-local blocks, with max pooling, a BNNeck
without β and a bias-free classifier over the C source identities (`models.dan`). Each step
makes two forward calls, source then target, so the trunk's BatchNorms normalise each domain
by its own statistics and the running statistics update twice. f̂ = l2(pooled) feeds every
metric loss; evaluation gives {"pool": f̂, "bn": l2(BN(pooled))}, "pool" the main number.

Objective (§3–§6), one SGD step for everything:

    L = L_id + L_tri + L_adv^v + L_adv^i + 0.1 (L_mem^v + L_mem^i) + L_mean + L_std

* L_id, L_tri: cross-entropy on the 2·P·K source logits and the batch-hard triplet (margin
  0.3) on the source f̂.
* DAA (§4): one domain discriminator D (`models.dan.DomainDiscriminator`) behind a gradient
  reversal layer scores [source RGB; target RGB] and [source IR; target IR]; summed BCE,
  factors λ from D's call counter (`grl_scales`). D's input is the BNNeck feature [P]
  (`config.dan.daa_input = "softmax"`: the classifier's softmax, the release's path).
* PLG (§5.1), once per epoch on the host (`DANMethod.begin_epoch`): source-identity centres
  per modality from evaluation-mode f̂ of the source training images, each target image
  labelled with its nearest centre (`source_centres`, `assign_pseudo_labels`; exact means and
  cosine [P], or the release's halving centres and Euclidean argmin).
* Memory (§5.2): the epoch's target plan (the sampler's, with the new pseudo-labels) as two
  memories of f̂, one row per batch slot; each target sample's row follows from the step.
  Reliable neighbours within each memory; `losses.memory_loss` with the IR memory for RGB
  samples and the RGB memory for IR samples (symmetric [P]; the release's IR neighbour term
  reads the IR memory: `config.dan.memory_symmetric = False`).
* CMA (§5.3): `losses.cross_modal_alignment` over the pseudo-labels present in both target
  halves (member-only statistics [P], or the release's visible-only reading).

Optimisation (§6): Nesterov SGD, momentum 0.9, weight decay 5e-4; the backbone at 0.01, D,
BNNeck and classifier at 0.1; constant rate (the release never applies its schedule;
`config.optim.milestones = (10,)` gives the [P] decay); 16 epochs of the source's AGW length.

Deviation (documented): the memory holds the f̂ computed for pseudo-labelling (test transform)
gathered in plan order; the release recomputes them under a fresh training augmentation.

The pure pieces:

* `grl_scales`: the gradient-reversal factors of the two discriminator calls of a step (§4.1);
* `source_centres`, `assign_pseudo_labels`: pseudo-label generation from source-identity
  centres, once per epoch on the host (§5.1);
* `reliable_neighbours`: the memory table's reliable neighbours (§5.2).

The losses are in `vireid_jax.losses.dan`. [P] marks the spec's proposed repairs (our
defaults); the release behaviour stays selectable.
"""

from __future__ import annotations

import functools

from flax import nnx
from flax import struct
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from vireid_jax import checkpoints
from vireid_jax import losses
from vireid_jax.data import sampling
from vireid_jax.data.splits import INFRARED
from vireid_jax.data.splits import VISIBLE
from vireid_jax.methods import agw
from vireid_jax.methods import base
from vireid_jax.models import dan_pytorch
from vireid_jax.models.dan import DANNetwork
from vireid_jax.models.dan import DomainDiscriminator
from vireid_jax.models.dan import build_dan_network
from vireid_jax.models.layers import l2_normalize
from vireid_jax.ops import dann_lambda
from vireid_jax.training import optim


def grl_scales(step: jax.typing.ArrayLike,
               *,
               alpha: float = 10.0,
               max_iter: float = 10000.0) -> tuple[jax.Array, jax.Array]:
  """The GRL factors (λ_visible, λ_infrared) of training step ``step`` (0-based) (§4.1).

  The reference's discriminator (`model.py` ``Advers_net``) increments its call counter n
  before each training-mode call and uses λ(n) = 2/(1 + exp(−alpha·n/max_iter)) − 1
  (``calc_coeff``). It is called twice per step, visible first (`train.py`), so step s uses
  n = 2s + 1 and n = 2s + 2: λ is already > 0 at step 0.

  Args:
    step: the 0-based step, a Python number or a (traced) integer / float scalar, so the
      factors can be computed inside a jitted step.
    alpha: the schedule's steepness (10).
    max_iter: the counter scale (10000).

  Returns:
    Two float32 scalars.
  """
  step = jnp.asarray(step, jnp.float32)
  visible_calls = 2.0 * step + 1.0
  infrared_calls = 2.0 * step + 2.0
  # 2/(1 + exp(−γp)) − 1 = tanh(γp/2), accurate (relative) for small n, as dann_lambda computes it.
  return (dann_lambda(visible_calls / max_iter, gamma=alpha).astype(jnp.float32),
          dann_lambda(infrared_calls / max_iter, gamma=alpha).astype(jnp.float32))


def source_centres(features: np.ndarray,
                   labels: np.ndarray,
                   num_classes: int,
                   *,
                   mode: str,
                   images_per_id: int = 4) -> np.ndarray:
  """Per-identity source centres of one modality (§5.1), host-side.

  * ``"mean"`` [P]: the mean of each identity's rows, L2-normalised.
  * ``"release"`` (`train.py`, the epoch loop's centre pass): the rows are the source plan in
    its order, consecutive chunks of ``images_per_id`` rows being one identity's images (the
    sampler's K images of one of the 3 distinct identities of a 12-image batch; the chunk's
    identity is the label of its first row, the reference's ``label1[j * 4]``). Starting from
    0, each chunk updates c_id ← (c_id + mean of the chunk)/2 in plan order, so an identity
    visited once ends with half its mean. Not normalised.

  An identity without rows keeps a zero centre.

  Args:
    features: ``[N, D]`` eval-mode features (numpy or jax).
    labels: ``[N]`` int identities in [0, num_classes).
    num_classes: C.
    mode: ``"mean"`` or ``"release"`` (``config.dan.plg``).
    images_per_id: K, the chunk length of ``"release"`` (4).

  Returns:
    ``[C, D]`` float32 numpy centres.

  Raises:
    ValueError: an unknown ``mode``, labels out of range, mismatched shapes, or (release) N
      not a multiple of ``images_per_id``.
  """
  if mode not in ("mean", "release"):
    raise ValueError(f"config.dan.plg must be 'mean' or 'release', got {mode!r}.")
  features = np.asarray(features, np.float64)
  labels = np.asarray(labels).astype(np.int64)
  if features.ndim != 2 or labels.shape != features.shape[:1]:
    raise ValueError(f"source_centres expects features [N, D] and labels [N], got "
                     f"{features.shape} and {labels.shape}.")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                     f"[{labels.min()}, {labels.max()}].")
  centres = np.zeros((num_classes, features.shape[1]), np.float64)

  if mode == "mean":
    counts = np.bincount(labels, minlength=num_classes)
    np.add.at(centres, labels, features)
    seen = counts > 0
    centres[seen] /= counts[seen, None]
    norms = np.linalg.norm(centres, axis=1, keepdims=True)
    centres = np.divide(centres, norms, out=np.zeros_like(centres), where=norms > 0)
    return centres.astype(np.float32)

  if len(labels) % images_per_id:
    raise ValueError(f"plg='release' reads the source plan in chunks of images_per_id="
                     f"{images_per_id} rows; got {len(labels)} rows.")
  chunk_means = features.reshape(-1, images_per_id, features.shape[1]).mean(axis=1)
  # The halving average depends on the visiting order: a sequential loop (a few hundred
  # chunks per epoch).
  for identity, chunk_mean in zip(labels[::images_per_id], chunk_means):
    centres[identity] = (centres[identity] + chunk_mean) / 2.0
  return centres.astype(np.float32)


def assign_pseudo_labels(features: np.ndarray, centres: np.ndarray, *, mode: str) -> np.ndarray:
  """Pseudo-labels of target images: the nearest same-modality source centre (§5.1).

  * ``"mean"`` [P]: argmax cosine similarity; zero centres (identities without rows) are
    never chosen (if every centre is zero, every label is 0).
  * ``"release"`` (`train.py`: ``argmax(-cdist(feat, center))``): argmin Euclidean distance
    with the zero centres included, so an image farther from every seen centre than from
    the origin goes to the first unseen identity.

  Ties go to the lowest index (distances in float64 on the host).

  Args:
    features: ``[N, D]`` eval-mode target features (numpy or jax).
    centres: ``[C, D]`` from `source_centres`.
    mode: ``"mean"`` or ``"release"`` (``config.dan.plg``).

  Returns:
    ``[N]`` int32 numpy labels in [0, C).

  Raises:
    ValueError: an unknown ``mode`` or mismatched shapes.
  """
  if mode not in ("mean", "release"):
    raise ValueError(f"config.dan.plg must be 'mean' or 'release', got {mode!r}.")
  features = np.asarray(features, np.float64)
  centres = np.asarray(centres, np.float64)
  if features.ndim != 2 or centres.ndim != 2 or features.shape[1] != centres.shape[1]:
    raise ValueError(f"assign_pseudo_labels expects features [N, D] and centres [C, D], got "
                     f"{features.shape} and {centres.shape}.")
  centre_norms = np.linalg.norm(centres, axis=1)
  if mode == "mean":
    feature_norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit_features = np.divide(features, feature_norms, out=np.zeros_like(features),
                              where=feature_norms > 0)
    unit_centres = np.divide(centres, centre_norms[:, None], out=np.zeros_like(centres),
                             where=centre_norms[:, None] > 0)
    cosine = unit_features @ unit_centres.T
    cosine[:, centre_norms == 0] = -np.inf
    return np.argmax(cosine, axis=1).astype(np.int32)
  # ‖f − c‖² up to the per-row constant ‖f‖², which does not change the argmin (and keeps
  # the zero centres' entries exactly tied).
  partial_distances = centre_norms[None, :] ** 2 - 2.0 * features @ centres.T
  return np.argmin(partial_distances, axis=1).astype(np.int32)


def reliable_neighbours(memory: np.ndarray, k: int = 5, *, block_rows: int = 1024) -> np.ndarray:
  """Each memory row's k reliable neighbours (§5.2; `memory_table.py` ``update_reliables``).

  ``argsort(cdist(memory, memory), axis=1)[:, 1:k + 1]``: the k nearest rows by Euclidean
  distance after skipping the first entry of the sorted list, which is normally the row
  itself (distance 0). Host-side, distances in float64, stable sort: ties go to the lower
  index, so with an exact duplicate of row j at a lower index the duplicate takes the
  skipped place and j itself appears among its neighbours.

  Args:
    memory: ``[M, D]`` memory features (numpy or jax).
    k: the number of neighbours (5).
    block_rows: rows whose distances are computed at once (memory use, not the result).

  Returns:
    ``[M, k]`` int32 numpy row indices.

  Raises:
    ValueError: ``memory`` is not 2-D or has ≤ k rows.
  """
  memory = np.asarray(memory, np.float64)
  if memory.ndim != 2 or memory.shape[0] <= k:
    raise ValueError(f"reliable_neighbours needs a [M, D] memory with M > k = {k}, got shape "
                     f"{memory.shape}.")
  squared_norms = np.sum(memory * memory, axis=1)
  neighbours = np.empty((len(memory), k), np.int32)
  # Blocks of rows: a SYSU-MM01 source plan makes M ≈ 22,000, whose whole distance matrix
  # (and its argsort) would take 4 GB each.
  for start in range(0, len(memory), block_rows):
    stop = min(start + block_rows, len(memory))
    squared_distances = (squared_norms[start:stop, None] + squared_norms[None, :]
                         - 2.0 * memory[start:stop] @ memory.T)
    # Rounding can leave tiny negatives (and the row's own distance at ±1e-16): clamp like
    # cdist, so that exact ties stay ties.
    squared_distances = np.maximum(squared_distances, 0.0)
    # The k + 1 first entries of a stable argsort: every row at or below the (k + 1)-th
    # smallest distance (ties at the boundary included), ordered by (distance, index).
    boundary = np.partition(squared_distances, k, axis=1)[:, k]
    for row, (distances, limit) in enumerate(zip(squared_distances, boundary)):
      candidates = np.flatnonzero(distances <= limit)
      order = candidates[np.argsort(distances[candidates], kind="stable")]
      neighbours[start + row] = order[1:k + 1]
  return neighbours


# --- The method ---

# Values of the method's string fields (config.dan.*), for the error messages.
CHOICES = {"daa_input": ("bn", "softmax"), "adversarial_reduction": ("sum", "mean"),
           "plg": ("mean", "release"), "cma": ("corrected", "release"),
           "memory_symmetric": (True, False)}


def check_config(config) -> None:
  """Refuses settings DAN cannot run, naming the field (`ValueError`)."""
  for field, choices in CHOICES.items():
    value = config.dan[field]
    if value not in choices or (isinstance(value, bool) != isinstance(choices[0], bool)):
      raise ValueError(f"config.dan.{field}={value!r}: expected one of {list(choices)}.")
  if not config.data.target.get("dataset"):
    raise ValueError("DAN adapts to an unlabelled target dataset: set config.data.target."
                     "dataset (and its root), e.g. --config configs/dan.py:sysu_to_regdb.")
  if config.data.sampler != "domain_adaptation":
    raise ValueError(f"config.data.sampler={config.data.sampler!r}: DAN trains on the "
                     "'domain_adaptation' sampler's source and target streams.")
  if config.eval.flip:
    raise ValueError("config.eval.flip=True: DAN's evaluation does not flip (set it False).")


@struct.dataclass
class TargetMemory:
  """One modality's memory of the epoch's target plan (§5.2): row b·P·K + s = slot s of
  batch b.

  Attributes:
    features: [R, D] evaluation-mode f̂ of the planned images (R = steps per epoch · P · K).
    labels: [R] int32 their pseudo-labels.
    neighbours: [R, k] int32 each row's reliable neighbours (`reliable_neighbours`).
  """

  features: jax.Array
  labels: jax.Array
  neighbours: jax.Array


@struct.dataclass
class State:
  """DAN's whole state.

  Attributes:
    step: scalar int32, steps taken.
    net: the re-id network (AGW, max pooling) with its two-group SGD.
    discriminator: D with its SGD (the head's rate).
    target_labels: [num_target] int32 pseudo-labels of the target's training images in split
      order (-1 before the first labelling), what `epoch_inputs` hands the sampler.
    visible_memory, infrared_memory: the epoch's memories.
    label_counts: [3] int32 pseudo-labels in use: visible, infrared, in both.
  """

  step: jax.Array
  net: base.Net
  discriminator: base.Net
  target_labels: jax.Array
  visible_memory: TargetMemory
  infrared_memory: TargetMemory
  label_counts: jax.Array


def loss_fn(model, discriminator, batch: dict, state: State, config) -> tuple[jax.Array, dict]:
  """The total loss of one step (module doc) and its terms.

  Args:
    model: the re-id network in training mode.
    discriminator: D.
    batch: source "visible", "infrared" [B, H, W, 3] with "visible_labels",
      "infrared_labels" [B]; target "target_visible", "target_infrared" [Bt, H, W, 3] with
      their pseudo-labels "target_visible_labels", "target_infrared_labels" [Bt].
    state: for the step and the memories.
    config: the experiment config (`config.dan`, `config.loss`, `config.seed`).
  """
  dan, weights = config.dan, config.loss
  source = model(visible=batch["visible"], infrared=batch["infrared"])
  target = model(visible=batch["target_visible"], infrared=batch["target_infrared"])
  labels = jnp.concatenate([batch["visible_labels"], batch["infrared_labels"]])
  source_features, target_features = l2_normalize(source.pooled), l2_normalize(target.pooled)
  identity_loss = losses.cross_entropy(source.logits, labels)
  triplet_loss = losses.hard_mining_triplet(source_features, labels,
                                            margin=weights.triplet_margin)

  source_rows = batch["visible"].shape[0]
  target_rows = batch["target_visible"].shape[0]
  if dan.daa_input == "bn":
    source_inputs, target_inputs = source.bn, target.bn
  else:
    source_inputs = jax.nn.softmax(source.logits, axis=-1)
    target_inputs = jax.nn.softmax(target.logits, axis=-1)
  visible_scale, infrared_scale = grl_scales(state.step, alpha=dan.grl_alpha,
                                             max_iter=dan.grl_max_iter)
  visible_key, infrared_key = jax.random.split(
      jax.random.fold_in(jax.random.key(config.seed), state.step))
  adversarial = {}
  for name, scale, key, source_part, target_part in (
      ("visible", visible_scale, visible_key, slice(None, source_rows),
       slice(None, target_rows)),
      ("infrared", infrared_scale, infrared_key, slice(source_rows, None),
       slice(target_rows, None))):
    adversarial[name] = losses.domain_adversarial_loss(
        functools.partial(discriminator, dropout_key=key), source_inputs[source_part],
        target_inputs[target_part], scale, reduction=dan.adversarial_reduction)

  visible_features = target_features[:target_rows]
  infrared_features = target_features[target_rows:]
  visible_labels = batch["target_visible_labels"]
  infrared_labels = batch["target_infrared_labels"]
  steps_per_epoch = state.visible_memory.features.shape[0] // target_rows
  rows = (state.step % steps_per_epoch) * target_rows + jnp.arange(target_rows)
  visible_memory, infrared_memory = state.visible_memory, state.infrared_memory
  memory = functools.partial(losses.memory_loss, instance_weight=dan.memory_instance_weight,
                             temperature=dan.memory_temperature)
  # RGB samples: the IR memory's row and neighbours (by the RGB memory's neighbour lists).
  visible_memory_loss = memory(visible_features, rows, visible_labels, infrared_memory.features,
                               infrared_memory.features, visible_memory.neighbours,
                               visible_memory.labels)
  infrared_memory_loss = memory(
      infrared_features, rows, infrared_labels, visible_memory.features,
      visible_memory.features if dan.memory_symmetric else infrared_memory.features,
      infrared_memory.neighbours, infrared_memory.labels)
  mean_loss, std_loss = losses.cross_modal_alignment(visible_features, infrared_features,
                                                     visible_labels, infrared_labels,
                                                     variant=dan.cma)

  total = (weights.identity_weight * identity_loss + weights.triplet_weight * triplet_loss
           + weights.adversarial_weight * (adversarial["visible"] + adversarial["infrared"])
           + weights.memory_weight * (visible_memory_loss + infrared_memory_loss)
           + weights.cma_mean_weight * mean_loss + weights.cma_std_weight * std_loss)
  accuracy = jnp.mean(jnp.argmax(source.logits, axis=-1) == labels)
  return total, {
      "loss": total, "identity_loss": identity_loss, "triplet_loss": triplet_loss,
      "adversarial_visible": adversarial["visible"],
      "adversarial_infrared": adversarial["infrared"],
      "memory_visible": visible_memory_loss, "memory_infrared": infrared_memory_loss,
      "cma_mean": mean_loss, "cma_std": std_loss, "grl_scale": visible_scale,
      "accuracy": accuracy, "pseudo_labels_visible": state.label_counts[0],
      "pseudo_labels_infrared": state.label_counts[1],
      "pseudo_labels_shared": state.label_counts[2]}


class DANMethod(base.Method):
  """DAN: source supervision, DAA, PLG with a memory, and CMA in one SGD step per batch."""

  uses_target = True
  model_type = DANNetwork
  load_pytorch = staticmethod(dan_pytorch.load_pytorch)
  to_pytorch_state_dict = staticmethod(dan_pytorch.to_pytorch_state_dict)

  def __init__(self, config):
    super().__init__(config)
    check_config(config)

  def create_state(self, data_info: base.DataInfo) -> State:
    config = self.config
    rngs = nnx.Rngs(config.seed)
    model = checkpoints.init_pretrained(
        build_dan_network(config.model, data_info.num_classes, rngs=rngs), config.model)
    discriminator = DomainDiscriminator(
        model.feature_dim if config.dan.daa_input == "bn" else data_info.num_classes,
        hidden=config.dan.discriminator_hidden, dropout=config.dan.discriminator_dropout,
        rngs=rngs)
    steps = data_info.steps_per_epoch
    # D learns at the base rate with the BNNeck and classifier (its own SGD: the same rule).
    net = base.Net.create(model, optim.build(config.optim, steps,
                                             agw.parameter_groups(config.optim)))
    discriminator_net = base.Net.create(discriminator, optim.build(config.optim, steps))
    rows = steps * config.data.ids_per_batch * config.data.images_per_id
    empty = lambda: TargetMemory(
        features=jnp.zeros((rows, model.feature_dim), jnp.float32),
        labels=jnp.full((rows,), -1, jnp.int32),
        neighbours=jnp.zeros((rows, config.dan.reliable_neighbours), jnp.int32))
    return State(step=base.initial_step(), net=net, discriminator=discriminator_net,
                 target_labels=jnp.full((data_info.num_target,), -1, jnp.int32),
                 visible_memory=empty(), infrared_memory=empty(),
                 label_counts=jnp.zeros((3,), jnp.int32))

  def begin_epoch(self, state: State, epoch: int, context: base.EpochContext) -> State:
    """Pseudo-labels, the epoch's target plan and its memories (§5.1–5.2), on the host."""
    config, dan = self.config, self.config.dan
    source, target = context.train, context.target
    num_classes = int(state.net.params["classifier"]["kernel"].shape[-1])
    sampler = sampling.get_sampler(config.data.sampler)
    plan = lambda labels: {stream.name: stream for stream in sampler.streams(
        source, config.data, seed=config.seed, epoch=epoch, target=target,
        epoch_inputs={"target_labels": labels})}
    target_features = np.zeros((len(target), state.visible_memory.features.shape[1]),
                               np.float32)
    target_labels = np.full(len(target), -1, np.int32)
    for modality, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
      positions = np.flatnonzero(source.modalities == modality)
      features = np.asarray(context.features(state, source.images[positions], name)["pool"])
      if dan.plg == "release":
        # The release averages over its source plan (which the target labels do not change):
        # K rows of one identity at a time.
        source_plan = plan(np.asarray(state.target_labels))[name].indices.reshape(-1)
        rank = np.searchsorted(positions, source_plan)
        centres = source_centres(features[rank], source.labels[source_plan], num_classes,
                                 mode="release", images_per_id=config.data.images_per_id)
      else:
        centres = source_centres(features, source.labels[positions], num_classes, mode="mean")
      positions = np.flatnonzero(target.modalities == modality)
      target_features[positions] = np.asarray(
          context.features(state, target.images[positions], name)["pool"])
      target_labels[positions] = assign_pseudo_labels(target_features[positions], centres,
                                                      mode=dan.plg)
    # The plan the loop feeds this epoch: the sampler's, with these labels.
    streams = plan(target_labels)
    rows = state.visible_memory.features.shape[0]
    memories = []
    for name in ("target_visible", "target_infrared"):
      planned = streams[name].indices.reshape(-1)[:rows]
      features = target_features[planned]
      memories.append(TargetMemory(
          features=jnp.asarray(features), labels=jnp.asarray(target_labels[planned]),
          neighbours=jnp.asarray(reliable_neighbours(features, dan.reliable_neighbours))))
    present = [set(np.unique(target_labels[target.modalities == modality]).tolist())
               for modality in (VISIBLE, INFRARED)]
    counts = (len(present[0]), len(present[1]), len(present[0] & present[1]))
    purity = label_purity(target_labels, target.person_ids)
    tqdm.tqdm.write(f"epoch {epoch}: pseudo-labels over {num_classes} source identities: "
                    f"{counts[0]} visible, {counts[1]} infrared, {counts[2]} in both; "
                    f"purity {purity:.1%}")
    return state.replace(target_labels=jnp.asarray(target_labels), visible_memory=memories[0],
                         infrared_memory=memories[1],
                         label_counts=jnp.asarray(counts, jnp.int32))

  def epoch_inputs(self, state: State) -> dict:
    return {"target_labels": state.target_labels}

  def train_step(self, state: State, batch: dict) -> tuple[State, dict]:
    """One SGD step of the network and D on the gradient of the total loss (GRL inside)."""
    model = state.net.model(training=True)
    discriminator = state.discriminator.model(training=True)
    (model_grads, discriminator_grads), metrics = nnx.grad(
        lambda model, discriminator: loss_fn(model, discriminator, batch, state, self.config),
        argnums=(0, 1), has_aux=True)(model, discriminator)
    net = state.net.apply_gradients(model_grads, nnx.state(model, nnx.BatchStat))
    discriminator_net = state.discriminator.apply_gradients(discriminator_grads)
    return state.replace(step=state.step + 1, net=net, discriminator=discriminator_net), metrics

  def features(self, state: State, images: jax.Array, modality: str) -> dict:
    return agw.features(state, images, modality)


def label_purity(labels: np.ndarray, person_ids: np.ndarray) -> float:
  """Diagnostics only: the share of labelled images whose pseudo-label's most frequent true
  identity is theirs (1 = every pseudo-class is one person)."""
  labelled = labels >= 0
  if not labelled.any():
    return 0.0
  agree = 0
  for label in np.unique(labels[labelled]):
    ids = person_ids[labels == label]
    agree += np.bincount(np.unique(ids, return_inverse=True)[1]).max()
  return agree / int(labelled.sum())


METHOD = DANMethod
