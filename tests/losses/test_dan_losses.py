"""DAN's losses (`vireid_jax.losses.dan`) and pseudo-label pieces (`vireid_jax.methods.dan`)
against the PyTorch transcription of the authors' code (``tests/losses/torch_dan_reference.py``:
`model.py`, `gvb_loss.py`, `memory_table.py`, `train.py`): values, gradients and the release
quirks (spec dan.md §4, §5)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vireid_jax import losses
from vireid_jax.methods import dan

torch = pytest.importorskip("torch")
from tests.losses import torch_dan_reference as reference  # noqa: E402

# Relative 1e-5; absolute 1e-5 for values below 1.
TOLERANCE = dict(rtol=1e-5, atol=1e-5)
_HIGHEST = jax.lax.Precision.HIGHEST


def unit_rows(rng, shape):
  rows = rng.normal(size=shape)
  return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


# ------------------------------------------------------------- domain-adversarial loss (§4)


def reference_discriminator(in_features, hidden=1024, seed=0):
  """The authors' ``Advers_net`` in training mode (its call counter runs), with its dropouts
  switched off so that both sides compute the same function."""
  torch.manual_seed(seed)
  net = reference.Advers_net(in_features, hidden)
  net.train()
  net.dropout1.eval()
  net.dropout2.eval()
  return net


def copied_weights(net):
  """``[(W [in, out], b [out])]`` of the three Linear layers (torch stores W as [out, in])."""
  return [(jnp.asarray(layer.weight.detach().numpy().T), jnp.asarray(layer.bias.detach().numpy()))
          for layer in (net.ad_layer1, net.ad_layer2, net.ad_layer3)]


def mlp_discriminator(weights, rows):
  """``Advers_net``'s forward without dropout, as a pure function of its weights: [N, 1]."""
  (w1, b1), (w2, b2), (w3, b3) = weights
  hidden = jax.nn.relu(jnp.matmul(rows, w1, precision=_HIGHEST) + b1)
  hidden = jax.nn.relu(jnp.matmul(hidden, w2, precision=_HIGHEST) + b2)
  return jnp.matmul(hidden, w3, precision=_HIGHEST) + b3


def _adversarial(weights, source, target, scale, reduction="sum"):
  return losses.domain_adversarial_loss(functools.partial(mlp_discriminator, weights), source,
                                        target, scale, reduction=reduction)


adversarial_value_and_grads = jax.jit(jax.value_and_grad(_adversarial, argnums=(0, 1, 2)),
                                      static_argnames="reduction")


def discriminator_inputs(rng, kind, rows=12, classes=206):
  """Source and target inputs of D: BN-neck-like 2048-d features [P] or softmax scores (the
  release's call path, one column per source class)."""
  if kind == "features":
    return [(0.05 * rng.normal(size=(rows, 2048))).astype(np.float32) for _ in range(2)]
  logits = [3.0 * rng.normal(size=(rows, classes)) for _ in range(2)]
  return [(np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype(np.float32) for z in logits]


@pytest.mark.parametrize("kind", ["features", "softmax"])
def test_domain_adversarial_loss_matches_gvb_and_advers_net(kind):
  rng = np.random.default_rng(0)
  source, target = discriminator_inputs(rng, kind)
  net = reference_discriminator(source.shape[1])
  step = 300  # D has been called twice per step before: n = 601 for this visible call
  net.iter_num = 2 * step
  visible_scale, _ = dan.grl_scales(step)

  torch_source = torch.tensor(source, requires_grad=True)
  torch_target = torch.tensor(target, requires_grad=True)
  rows = torch.cat([torch_source, torch_target], 0)
  # `train.py` passes `calc_coeff(epoch)` and the features; neither reaches the loss.
  theirs, _ = reference.GVB([rows, rows], net, reference.calc_coeff(0), GVBD=1)
  theirs.backward()
  assert net.iter_num == 2 * step + 1
  np.testing.assert_allclose(visible_scale, reference.calc_coeff(net.iter_num), rtol=1e-6)

  weights = copied_weights(net)
  ours, (weight_grads, source_grad, target_grad) = adversarial_value_and_grads(
      weights, jnp.asarray(source), jnp.asarray(target), visible_scale)
  np.testing.assert_allclose(ours, theirs.item(), **TOLERANCE)
  np.testing.assert_allclose(source_grad, torch_source.grad.numpy(), **TOLERANCE)
  np.testing.assert_allclose(target_grad, torch_target.grad.numpy(), **TOLERANCE)
  # D itself gets the plain (unreversed) gradient.
  for (our_w, our_b), layer in zip(weight_grads, (net.ad_layer1, net.ad_layer2, net.ad_layer3)):
    np.testing.assert_allclose(our_w, layer.weight.grad.numpy().T, **TOLERANCE)
    np.testing.assert_allclose(our_b, layer.bias.grad.numpy(), **TOLERANCE)

  # The features' gradient is −λ × the gradient of the same loss without the GRL.
  plain_rows = torch.cat([torch.tensor(source), torch.tensor(target)], 0).requires_grad_(True)
  hidden = net.relu1(net.ad_layer1(plain_rows))
  logits = net.ad_layer3(net.relu2(net.ad_layer2(hidden)))
  labels = torch.cat([torch.ones(len(source), 1), torch.zeros(len(target), 1)])
  torch.nn.BCELoss(reduction="sum")(torch.sigmoid(logits), labels).backward()
  plain_grad = plain_rows.grad.numpy()
  np.testing.assert_allclose(np.concatenate([source_grad, target_grad]),
                             -float(visible_scale) * plain_grad, **TOLERANCE)


def test_domain_adversarial_loss_is_a_sum_calls_the_discriminator_once_and_jits():
  rng = np.random.default_rng(1)
  source = rng.normal(size=(5, 8)).astype(np.float32)
  target = rng.normal(size=(7, 8)).astype(np.float32)
  weights = copied_weights(reference_discriminator(8, hidden=16))
  calls = []

  def discriminator(rows):
    calls.append(rows.shape)
    return mlp_discriminator(weights, rows)[:, 0]   # [N] logits are accepted too

  total = losses.domain_adversarial_loss(discriminator, source, target, 0.5)
  assert calls == [(12, 8)]
  mean = jax.jit(functools.partial(_adversarial, reduction="mean"))(weights, source, target, 0.5)
  np.testing.assert_allclose(total, 12 * mean, rtol=1e-6)
  logits = np.asarray(mlp_discriminator(weights, jnp.concatenate([source, target])))[:, 0]
  labels = np.r_[np.ones(5), np.zeros(7)]
  probabilities = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
  expected = -np.sum(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities))
  np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_grl_scales_follow_the_discriminator_call_counter():
  net = reference_discriminator(4, hidden=4)
  inputs = torch.zeros(2, 4, requires_grad=True)   # the GRL hook needs a graph
  jitted = jax.jit(dan.grl_scales)
  for step in range(6):
    net(inputs)
    visible = reference.calc_coeff(net.iter_num)
    net(inputs)
    infrared = reference.calc_coeff(net.iter_num)
    for scales in (dan.grl_scales(step), jitted(jnp.int32(step))):
      assert all(scale.dtype == jnp.float32 for scale in scales)
      np.testing.assert_allclose(scales, (visible, infrared), rtol=1e-5)
  assert float(dan.grl_scales(0)[0]) > 0.0
  late = dan.grl_scales(5000)   # n = 10001, 10002: λ ≈ tanh(5)
  np.testing.assert_allclose(late, (reference.calc_coeff(10001), reference.calc_coeff(10002)),
                             rtol=1e-5)


# ------------------------------------------------------------------------ memory loss (§5.2)


def memory_table(rng, rows=40, dim=16, classes=4):
  """A filled reference table: RGB / IR memories clustered by pseudo-label (so that reliable
  neighbours often, not always, share the label) and their neighbours."""
  rgb_labels = rng.integers(0, classes, size=rows)
  ir_labels = rng.integers(0, classes, size=rows)
  centres = rng.normal(size=(classes, dim))
  rgb = unit_rows(rng, (rows, dim)) + 0.4 * centres[rgb_labels]
  ir = unit_rows(rng, (rows, dim)) + 0.4 * centres[ir_labels]
  rgb, ir = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (rgb, ir))
  table = reference.MemoryTable()
  table.update(torch.tensor(rgb, dtype=torch.float32), torch.tensor(ir, dtype=torch.float32),
               torch.tensor(rgb_labels), torch.tensor(ir_labels))
  table.update_reliables()
  return table


memory_value_and_grads = jax.jit(jax.value_and_grad(losses.memory_loss, argnums=(0, 3, 4)),
                                 static_argnames=("instance_weight", "temperature"))

# (reference modal, our memories): positive memory, neighbour memory, neighbours, labels.
BRANCHES = {
    "rgb": (0, lambda t: (t.nir_vectors, t.nir_vectors, t.vis_reliables, t.label)),
    "release_ir": (1, lambda t: (t.rgb_vectors, t.nir_vectors, t.nir_reliables, t.label2)),
    "symmetric_ir": ("symmetric",
                     lambda t: (t.rgb_vectors, t.rgb_vectors, t.nir_reliables, t.label2)),
}


@pytest.mark.parametrize("branch, instance_weight, temperature",
                         [("rgb", 0.4, 1.0), ("release_ir", 0.4, 1.0),
                          ("symmetric_ir", 0.4, 1.0), ("rgb", 0.3, 0.1)])
def test_memory_loss_matches_loss_fn(branch, instance_weight, temperature):
  rng = np.random.default_rng(2)
  table = memory_table(rng)
  modal, memories = BRANCHES[branch]
  positive, neighbour, neighbours, memory_labels = memories(table)
  rows = rng.choice(len(memory_labels), size=12, replace=False)
  labels = memory_labels.numpy()[rows]          # a sample carries its row's pseudo-label
  labels[:2] = (labels[:2] + 1) % 4             # … except two, whose masks differ
  features = unit_rows(rng, (12, positive.shape[1]))
  same_label = memory_labels.numpy()[neighbours.numpy()[rows]] == labels[:, None]
  assert 0 < same_label.sum() < same_label.size   # the neighbour mask both keeps and drops

  torch_features = torch.tensor(features, requires_grad=True)
  theirs = reference.loss_fn(torch_features, torch.tensor(rows), torch.tensor(labels), table,
                             t=temperature, ld=instance_weight, modal=modal)
  theirs.backward()

  ours, (feature_grad, positive_grad, neighbour_grad) = memory_value_and_grads(
      jnp.asarray(features), jnp.asarray(rows), jnp.asarray(labels), jnp.asarray(positive.numpy()),
      jnp.asarray(neighbour.numpy()), jnp.asarray(neighbours.numpy()),
      jnp.asarray(memory_labels.numpy()), instance_weight=instance_weight,
      temperature=temperature)
  np.testing.assert_allclose(ours, theirs.item(), **TOLERANCE)
  np.testing.assert_allclose(feature_grad, torch_features.grad.numpy(), **TOLERANCE)
  # The memories are constants.
  assert not np.any(positive_grad) and not np.any(neighbour_grad)


def test_reliable_neighbours_match_the_memory_table_and_skip_the_row_itself():
  rng = np.random.default_rng(3)
  table = memory_table(rng, rows=30)
  for memory, theirs in ((table.rgb_vectors, table.vis_reliables),
                         (table.nir_vectors, table.nir_reliables)):
    ours = dan.reliable_neighbours(memory.numpy(), k=5)
    assert ours.shape == (30, 5) and ours.dtype == np.int32
    np.testing.assert_array_equal(ours, theirs.numpy())
    assert not np.any(ours == np.arange(30)[:, None])
  with pytest.raises(ValueError, match="M > k"):
    dan.reliable_neighbours(np.zeros((5, 3)), k=5)


# ------------------------------------------------------------- cross-modal alignment (§5.3)

CMA_LABELS = {
    # visible (RGB) labels, infrared labels; 12 rows each as in the reference batch.
    "aligned": ([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2], [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]),
    "partial_overlap": ([2, 0, 0, 1, 0, 1, 1, 1, 2, 0, 2, 2], [1, 1, 1, 1, 3, 3, 3, 3, 2, 2, 5, 5]),
    "one_member": ([0, 0, 0, 0, 7, 1, 1, 1, 1, 2, 2, 2], [7, 7, 7, 0, 0, 0, 0, 2, 2, 2, 2, 4]),
    "no_shared_class": ([0] * 6 + [1] * 6, [2] * 6 + [3] * 6),
    "unlabelled": ([-1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2], [-1, -1, -1, 0, 0, 0, 1, 1, 2, 2, 2, 2]),
}


def _weighted_cma(visible, infrared, visible_labels, infrared_labels, weights, variant):
  mean_loss, std_loss = losses.cross_modal_alignment(visible, infrared, visible_labels,
                                                     infrared_labels, variant=variant)
  return weights[0] * mean_loss + weights[1] * std_loss


cma_value_and_grads = jax.jit(jax.value_and_grad(_weighted_cma, argnums=(0, 1)),
                              static_argnames="variant")


def our_cma(visible, infrared, visible_labels, infrared_labels, variant):
  """``[(value, visible grad, infrared grad)]`` for L_mean and L_std."""
  results = []
  for weights in ([1.0, 0.0], [0.0, 1.0]):
    value, grads = cma_value_and_grads(
        jnp.asarray(visible), jnp.asarray(infrared), jnp.asarray(visible_labels),
        jnp.asarray(infrared_labels), jnp.asarray(weights), variant=variant)
    results.append((np.asarray(value), *map(np.asarray, grads)))
  return results


def their_cma(visible, infrared, visible_labels, infrared_labels, variant):
  torch_visible = torch.tensor(visible, requires_grad=True)
  torch_infrared = torch.tensor(infrared, requires_grad=True)
  visible_labels, infrared_labels = torch.tensor(visible_labels), torch.tensor(infrared_labels)
  if variant == "release":
    # `norm_feat2` = [target RGB; target IR], as the target forward returns it.
    terms = reference.release_cma(torch.cat([torch_visible, torch_infrared]), visible_labels,
                                  infrared_labels)
  else:
    terms = reference.corrected_cma(torch_visible, torch_infrared, visible_labels,
                                    infrared_labels)
  results = []
  for term in terms:
    if not torch.is_tensor(term) or not term.requires_grad:   # no shared class: a constant 0
      results.append((0.0, np.zeros_like(visible), np.zeros_like(infrared)))
      continue
    grads = torch.autograd.grad(term, (torch_visible, torch_infrared), retain_graph=True,
                                allow_unused=True)
    results.append((term.item(), *(np.zeros_like(x) if g is None else g.numpy()
                                   for g, x in zip(grads, (visible, infrared)))))
  return results


@pytest.mark.parametrize("variant", ["corrected", "release"])
@pytest.mark.parametrize("case", sorted(CMA_LABELS))
def test_cross_modal_alignment_matches_the_reference(case, variant):
  rng = np.random.default_rng(4)
  visible_labels, infrared_labels = (np.asarray(y) for y in CMA_LABELS[case])
  visible, infrared = unit_rows(rng, (12, 8)), unit_rows(rng, (12, 8))
  ours = our_cma(visible, infrared, visible_labels, infrared_labels, variant)
  theirs = their_cma(visible, infrared, visible_labels, infrared_labels, variant)
  for (value, visible_grad, infrared_grad), (their_value, *their_grads) in zip(ours, theirs):
    np.testing.assert_allclose(value, their_value, **TOLERANCE)
    assert np.all(np.isfinite(visible_grad)) and np.all(np.isfinite(infrared_grad))
    np.testing.assert_allclose(visible_grad, their_grads[0], **TOLERANCE)
    np.testing.assert_allclose(infrared_grad, their_grads[1], **TOLERANCE)
    if variant == "release":   # the IR half is never read
      assert not np.any(infrared_grad)
  if case == "no_shared_class" or (case == "aligned" and variant == "release"):
    # No shared class; or the release's masks coincide: exactly 0, with zero gradients.
    for value, visible_grad, infrared_grad in ours:
      assert value == 0.0 and not np.any(visible_grad) and not np.any(infrared_grad)


def test_release_cma_is_exactly_zero_with_identical_label_vectors():
  rng = np.random.default_rng(11)
  for _ in range(4):
    labels = rng.integers(0, 4, size=12)
    visible, infrared = unit_rows(rng, (12, 8)), unit_rows(rng, (12, 8))
    for value, visible_grad, infrared_grad in our_cma(visible, infrared, labels, labels,
                                                      "release"):
      assert value == 0.0 and not np.any(visible_grad) and not np.any(infrared_grad)


def test_corrected_cma_counts_a_one_member_class_in_the_mean_only():
  rng = np.random.default_rng(5)
  visible_labels, infrared_labels = (np.asarray(y) for y in CMA_LABELS["one_member"])
  visible, infrared = unit_rows(rng, (12, 8)), unit_rows(rng, (12, 8))
  (mean_loss, *_), (std_loss, *_) = our_cma(visible, infrared, visible_labels, infrared_labels,
                                            "corrected")
  expected_mean, expected_std = 0.0, 0.0
  for c in (0, 2, 7):   # shared; class 7 has one visible member
    members_v, members_i = visible[visible_labels == c], infrared[infrared_labels == c]
    expected_mean += np.linalg.norm(members_v.mean(0) - members_i.mean(0))
    if c != 7:
      expected_std += np.linalg.norm(members_v.std(0, ddof=1) - members_i.std(0, ddof=1))
  np.testing.assert_allclose((mean_loss, std_loss), (expected_mean, expected_std), rtol=1e-5)


def test_release_cma_reads_only_the_visible_rows():
  rng = np.random.default_rng(6)
  visible_labels, infrared_labels = (np.asarray(y) for y in CMA_LABELS["partial_overlap"])
  visible = unit_rows(rng, (12, 8))
  first, second = (
      [value for value, *_ in our_cma(visible, unit_rows(rng, (12, 8)), visible_labels,
                                      infrared_labels, "release")]
      for _ in range(2))
  np.testing.assert_array_equal(first, second)
  assert first[0] > 0.0 and first[1] > 0.0


def test_cma_gradients_stay_finite_when_a_std_is_zero():
  """Duplicated rows (an image drawn twice, features of the test transform) make a class's std
  exactly 0, where sqrt has no derivative: the gradient must stay finite."""
  rng = np.random.default_rng(7)
  visible_labels = np.asarray([0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3])
  infrared_labels = np.asarray([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3])
  visible, infrared = unit_rows(rng, (12, 8)), unit_rows(rng, (12, 8))
  visible[1] = visible[0]                 # class 0: σᵛ = 0 in every dimension
  infrared[1] = infrared[2] = infrared[0]  # … and σⁱ = 0: ‖σᵛ − σⁱ‖ = 0 as well
  for variant in ("corrected", "release"):
    for value, visible_grad, infrared_grad in our_cma(visible, infrared, visible_labels,
                                                      infrared_labels, variant):
      assert np.isfinite(value)
      assert np.all(np.isfinite(visible_grad)) and np.all(np.isfinite(infrared_grad))


# ------------------------------------------------------------------ pseudo labels (§5.1)


def source_plan(rng, dim=8):
  """A release-style source plan for 7 identities: 4 batches of 3 distinct ids × 4 images, id 4
  visited once, ids 5 and 6 never (their features live in dimensions 0–5 only)."""
  batch_ids = [[0, 1, 2], [3, 0, 1], [0, 4, 2], [1, 3, 0]]
  labels = [np.repeat(ids, 4) for ids in batch_ids]
  features = [np.concatenate([unit_rows(rng, (12, dim - 2)), np.zeros((12, 2))], axis=1)
              .astype(np.float32) for _ in batch_ids]
  return features, labels


def test_release_source_centres_halve_in_plan_order():
  rng = np.random.default_rng(8)
  feature_batches, label_batches = source_plan(rng)
  theirs = reference.release_centres([torch.tensor(f) for f in feature_batches],
                                     [torch.tensor(y) for y in label_batches], 7, 8)
  features, labels = np.concatenate(feature_batches), np.concatenate(label_batches)
  ours = dan.source_centres(features, labels, 7, mode="release")
  assert ours.shape == (7, 8) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, theirs.numpy(), **TOLERANCE)
  # id 4, seen once (batch 2, chunk 1), ends with half its mean; ids 5 and 6 stay 0.
  np.testing.assert_allclose(ours[4], 0.5 * feature_batches[2][4:8].mean(0), **TOLERANCE)
  assert not np.any(ours[5:])


def test_mean_source_centres_are_normalised_class_means():
  rng = np.random.default_rng(9)
  features, labels = (np.concatenate(x) for x in source_plan(rng))
  ours = dan.source_centres(features, labels, 7, mode="mean")
  for c in range(5):
    mean = features[labels == c].mean(0)
    np.testing.assert_allclose(ours[c], mean / np.linalg.norm(mean), **TOLERANCE)
  assert not np.any(ours[5:])


def test_pseudo_labels_match_the_release_and_the_cosine_rule():
  rng = np.random.default_rng(10)
  feature_batches, label_batches = source_plan(rng)
  centres = dan.source_centres(np.concatenate(feature_batches), np.concatenate(label_batches),
                               7, mode="release")
  targets = unit_rows(rng, (20, 8))
  targets[0] = np.eye(8)[7]   # orthogonal to every seen centre: nearer to the origin

  theirs = reference.release_pseudo_labels(torch.tensor(targets), torch.tensor(centres))
  ours = dan.assign_pseudo_labels(targets, centres, mode="release")
  assert ours.dtype == np.int32
  np.testing.assert_array_equal(ours, theirs.numpy())
  assert ours[0] == 5   # the first unseen identity (a zero centre; 6 ties, lower index wins)

  cosine_labels = dan.assign_pseudo_labels(targets, centres, mode="mean")
  unit_centres = torch.nn.functional.normalize(torch.tensor(centres, dtype=torch.float64), dim=1)
  similarity = torch.tensor(targets, dtype=torch.float64) @ unit_centres.T
  similarity[:, 5:] = -float("inf")
  np.testing.assert_array_equal(cosine_labels, similarity.argmax(dim=1).numpy())
  assert np.all(cosine_labels < 5)   # zero centres are never chosen


# ----------------------------------------------------------------------------- bad values


def test_bad_values_name_their_config_keys():
  rows = np.zeros((4, 3), np.float32)
  labels = np.zeros(4, np.int32)
  with pytest.raises(ValueError, match=r"config\.dan\.adversarial_reduction"):
    losses.domain_adversarial_loss(lambda x: x[:, 0], rows, rows, 1.0, reduction="average")
  with pytest.raises(ValueError, match=r"config\.dan\.cma"):
    losses.cross_modal_alignment(rows, rows, labels, labels, variant="fixed")
  with pytest.raises(ValueError, match="same length"):
    losses.cross_modal_alignment(rows, rows[:3], labels, labels[:3], variant="release")
  for function in (functools.partial(dan.source_centres, rows, labels, 2),
                   functools.partial(dan.assign_pseudo_labels, rows, rows)):
    with pytest.raises(ValueError, match=r"config\.dan\.plg"):
      function(mode="kmeans")
  with pytest.raises(ValueError, match="chunks of images_per_id=4"):
    dan.source_centres(rows[:3], labels[:3], 2, mode="release")
  with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
    dan.source_centres(rows, labels + 2, 2, mode="mean")
