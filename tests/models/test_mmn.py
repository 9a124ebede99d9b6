"""MMN's network (spec mmn.md §3) and the import of checkpoints its `train.py` writes.

The PyTorch side is the transcription in ``torch_mmn_reference.py``: random weights, every
BatchNorm randomised (the MMG's one-channel ones included), saved as `train.py` saves it and
imported with ``configs/mmn.py:sysu``.
"""

import copy

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import mmn as mmn_configs
from vireid_jax import checkpoints, inference
from vireid_jax.methods import mmn as mmn_method
from vireid_jax.models.mmn import MMN, build_mmn, stripe_bounds
from vireid_jax.training import optim

torch = pytest.importorskip("torch")
from tests.models import torch_mmn_reference as reference  # noqa: E402
from tests.models.torch_reference import randomize_batchnorms, relative_error  # noqa: E402



def _images(seed, batch, height=384, width=192):
  rng = np.random.default_rng(seed)
  images = (rng.normal(size=(batch, height, width, 3)) * rng.uniform(0.3, 2.0, (batch, 1, 1, 1))
            + rng.uniform(-1.5, 1.5, (batch, 1, 1, 3))).astype(np.float32)
  return images, torch.from_numpy(images.transpose(0, 3, 1, 2).copy())


@pytest.fixture(scope="module")
def authors_checkpoint(tmp_path_factory):
  """The reference MMN (ResNet-50, 395 classes), random weights, saved as train.py saves it."""
  torch.manual_seed(0)
  net = randomize_batchnorms(reference.EmbedNet(395), seed=1, bnneck=None)
  with torch.no_grad():   # the BNNecks' β stay 0, as the reference never trains them
    for k in range(1, 5):
      getattr(net, f"bottleneck{k}").bias.zero_()
    for module in (net.encode1, net.fc1, net.encode2, net.fc2, net.decode):
      module.weight.uniform_(0.1, 0.6)
      module.bias.uniform_(-0.1, 0.1)
  net.eval()
  path = tmp_path_factory.mktemp("mmn") / "sysu_mmn_best.t"
  torch.save({"net": net.state_dict(), "cmc": np.linspace(0.5, 1, 20), "mAP": np.float64(0.4),
              "mINP": np.float64(0.3), "epoch": 40}, path)
  return net, path


def test_authors_checkpoint_gives_the_reference_features(authors_checkpoint):
  net, path = authors_checkpoint
  model = checkpoints.load_pytorch(str(path), mmn_configs.get_config("sysu"))
  assert isinstance(model, MMN) and model.num_classes == 395
  images, torch_images = _images(0, 2)
  for modal, modality in ((1, "visible"), (2, "infrared")):
    with torch.no_grad():
      pool, fc = net(torch_images, torch_images, modal)   # rows [x; M(x)]
    pool, fc = pool.numpy(), fc.numpy()
    features = inference.extract_features(model, images, modality)
    expected = {"pool": pool[:2], "bn": fc[:2], "pool_middle": pool[2:], "bn_middle": fc[2:],
                "bn_sum": fc[:2] + fc[2:]}
    assert set(features) == set(expected)
    for name, value in expected.items():
      assert relative_error(features[name], value) <= 1e-4, (modality, name)
  # bn_sum's dot products are the sum of test.py's four similarity matrices.
  query = inference.extract_features(model, images, "infrared")
  gallery = inference.extract_features(model, images, "visible")
  four = sum(np.asarray(query[q]) @ np.asarray(gallery[g]).T
             for q in ("bn", "bn_middle") for g in ("bn", "bn_middle"))
  np.testing.assert_allclose(np.asarray(query["bn_sum"]) @ np.asarray(gallery["bn_sum"]).T,
                             four, rtol=1e-5, atol=1e-6)


def test_loss_equals_one_step_of_train_py(authors_checkpoint, optimized_xla):
  net, path = authors_checkpoint
  config = mmn_configs.get_config("sysu")
  model = checkpoints.load_pytorch(str(path), config)
  model.train()
  net = copy.deepcopy(net).train()
  visible, torch_visible = _images(1, 4, 64, 32)
  infrared, torch_infrared = _images(2, 4, 64, 32)
  label1 = torch.tensor([0, 0, 1, 1])
  label2 = label1.clone()
  torch.manual_seed(3)
  dcl = reference.DCLoss(in_features=2048).train()
  outputs = net(torch_visible, torch_infrared)
  feats, logits = outputs[:4], outputs[4:]
  labels = torch.cat((label1, label1, label2, label2), 0)
  cross_entropy = torch.nn.CrossEntropyLoss()
  loss_id = sum(cross_entropy(out, labels) for out in logits) * 0.25
  lbs = torch.cat((label1, label2), 0)

  def triplet(x):
    # OriTripletLoss (margin 0.3), as `loss.py` computes it.
    n = x.size(0)
    dist = torch.pow(x, 2).sum(dim=1, keepdim=True).expand(n, n)
    dist = (dist + dist.t()).addmm(x, x.t(), beta=1, alpha=-2).clamp(min=1e-12).sqrt()
    mask = lbs.expand(n, n).eq(lbs.expand(n, n).t())
    ap = torch.stack([dist[i][mask[i]].max() for i in range(n)])
    an = torch.stack([dist[i][mask[i] == 0].min() for i in range(n)])
    return torch.nn.MarginRankingLoss(margin=0.3)(an, ap, torch.ones_like(an))

  loss_tri, loss_dcl = 0, 0
  for feat in feats:
    r, mr, i, mi = torch.chunk(feat, 4, 0)
    loss_tri = loss_tri + (triplet(torch.cat((r, i))) + triplet(torch.cat((r, mi)))
                           + triplet(torch.cat((mr, i))) + triplet(torch.cat((mr, mi)))) / 4
    loss_dcl = loss_dcl + dcl(torch.cat((mr, mi), 0))
  loss_tri, loss_dcl = loss_tri / 4, loss_dcl * 0.25 * 0.2
  batch = {"visible": visible, "infrared": infrared,
           "visible_labels": label1.numpy().astype(np.int32),
           "infrared_labels": label2.numpy().astype(np.int32)}
  projection = {key: {name: jnp.asarray(value) for name, value in group.items()}
                for key, group in dcl.projection().items()}
  # Jitted: compiling the step's forward once costs a fraction of running it op by op.
  total, metrics = nnx.jit(lambda model, projection, batch: mmn_method.loss_fn(
      model, projection, batch, config.loss))(model, projection, batch)
  expected = {"identity_loss": loss_id, "triplet_loss": loss_tri, "dcl_loss": loss_dcl,
              "loss": loss_id + loss_tri + loss_dcl}
  for name, value in expected.items():
    np.testing.assert_allclose(float(metrics[name]), value.item(), rtol=1e-4, err_msg=name)
  np.testing.assert_allclose(float(total), expected["loss"].item(), rtol=1e-4)


def test_export_round_trips_and_a_non_zero_bnneck_bias_is_refused(authors_checkpoint):
  net, path = authors_checkpoint
  model = checkpoints.load_pytorch(str(path), mmn_configs.get_config("sysu"))
  exported = checkpoints.to_pytorch_state_dict(model)
  theirs = net.state_dict()
  unused = {key for key in theirs
            if key.startswith(("visible_module.visible.layer", "thermal_module.thermal.layer",
                               "visible_module.visible.fc.", "thermal_module.thermal.fc.",
                               "base_resnet.base.conv1.", "base_resnet.base.bn1.",
                               "base_resnet.base.fc."))
            or key.endswith("num_batches_tracked")}
  assert set(exported) == set(theirs) - unused
  for key, value in exported.items():
    np.testing.assert_array_equal(value, theirs[key].numpy(), err_msg=key)
  exported["bottleneck3.bias"] = np.full_like(exported["bottleneck3.bias"], 0.5)
  with pytest.raises(ValueError, match=r'"bottleneck3\.bias" \(a BNNeck β\) is non-zero'):
    checkpoints.load_pytorch(exported, mmn_configs.get_config("sysu"))


# ------------------------------------------------------------------------- model quirks


def tiny_model_config(**fields):
  model = mmn_configs.get_config("synthetic").model
  model.width = 8
  model.update(fields)
  return model


def test_stripes_follow_torch_chunk_and_too_few_name_the_height():
  assert stripe_bounds(24, 4) == ((0, 6), (6, 12), (12, 18), (18, 24))   # 384 x 192 input
  assert stripe_bounds(18, 4) == ((0, 5), (5, 10), (10, 15), (15, 18))   # 288 x 144 input
  with pytest.raises(ValueError, match="6 rows high cuts into 3 stripes"):
    stripe_bounds(6, 4)


@pytest.mark.parametrize("field,value", [("non_local", True), ("pooling", "gem")])
def test_non_local_blocks_or_gem_are_refused(field, value):
  with pytest.raises(ValueError, match="config.model.non_local=False"):
    build_mmn(tiny_model_config(**{field: value}), 4, rngs=nnx.Rngs(0))


def test_mmg_starts_at_the_constant_and_normalises_each_modality_alone():
  model = build_mmn(tiny_model_config(), 4, rngs=nnx.Rngs(0))
  for module in (model.visible_encoder.encode, model.visible_encoder.fc,
                 model.infrared_encoder.encode, model.infrared_encoder.fc, model.decoder):
    np.testing.assert_allclose(module.kernel[...], 0.333)
    np.testing.assert_array_equal(module.bias[...], 0.0)
  np.testing.assert_array_equal(model.visible_encoder.bn.scale[...], 1.0)
  rng = np.random.default_rng(0)
  visible = jnp.asarray(rng.normal(size=(3, 64, 32, 3)) + 2.0, jnp.float32)
  infrared = jnp.asarray(rng.normal(size=(3, 64, 32, 3)) - 1.0, jnp.float32)
  model(visible=visible, infrared=infrared)
  # Each encoder's BatchNorm statistics come from its own modality's images only.
  for encoder, images in ((model.visible_encoder, visible), (model.infrared_encoder, infrared)):
    grey = jnp.maximum(0.0, encoder.fc(jnp.maximum(0.0, encoder.encode(images))))
    np.testing.assert_allclose(encoder.bn.mean[...], 0.1 * jnp.mean(grey), rtol=1e-5)


def test_middle_images_go_through_their_source_stem_behind_the_originals():
  model = build_mmn(tiny_model_config(), 4, rngs=nnx.Rngs(0))
  model.eval()
  images = jnp.asarray(np.random.default_rng(1).normal(size=(2, 64, 32, 3)), jnp.float32)
  outputs = model(infrared=images)
  middle = model.middle_images(images, "infrared")
  x = model.stages(model.infrared_stem(jnp.concatenate([images, middle])))
  expected = jnp.mean(x[:, :x.shape[1] // 4], axis=(1, 2))
  np.testing.assert_allclose(outputs.pooled[0], expected, rtol=1e-5, atol=1e-6)
  # The visible stem gives other features.
  assert not np.allclose(model(visible=images).pooled, outputs.pooled)


def test_mmg_learns_in_the_backbone_group_and_the_heads_at_the_base_rate():
  model = build_mmn(tiny_model_config(), 4, rngs=nnx.Rngs(0))
  labels = optim.group_labels(mmn_method.parameter_groups(
      mmn_configs.get_config("synthetic").optim))(nnx.state(model, nnx.Param))
  assert labels["visible_encoder"]["encode"]["kernel"] == "backbone"
  assert labels["decoder"]["kernel"] == "backbone"
  assert labels["bottlenecks"][2]["scale"] == "head"
  assert labels["classifiers"][0]["kernel"] == "head"
  assert labels["stages"]["layers"][3][1]["conv1"]["kernel"] == "backbone"
