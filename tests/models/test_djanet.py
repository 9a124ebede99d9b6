"""DJANet's layerATT module against a PyTorch transcription of the reference's (spec djanet.md
§4.3), with PyTorch's own `nn.MultiheadAttention`; NCHW there, NHWC here."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vireid_jax.models.djanet import LayerATT

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from tests.models.test_mamba import ReferenceMamba, copy_weights  # noqa: E402

CHANNELS, HEIGHT, WIDTH, D_STATE = 16, 3, 6, 4      # r = 4, E = 18 (2 heads of 9)


class ReferenceATT(nn.Module):
  def __init__(self, tap_channels, down, final):
    super().__init__()
    reduced, positions = CHANNELS // 4, HEIGHT * WIDTH
    self.narrow = nn.Conv2d(CHANNELS, reduced, 1)
    self.down = {None: None, "k6s4": nn.Conv2d(tap_channels, reduced, 6, 4, 2),
                 "k4s2": nn.Conv2d(tap_channels, reduced, 4, 2, 1)}[down]
    self.broad = nn.Conv2d(reduced, CHANNELS, 1)
    self.ln_q, self.ln_kv = nn.LayerNorm(positions), nn.LayerNorm(positions)
    self.mha = nn.MultiheadAttention(positions, positions // 9, batch_first=True)
    self.norm1, self.norm2 = nn.LayerNorm(reduced), nn.LayerNorm(reduced)
    self.mamba = ReferenceMamba(reduced, d_state=D_STATE)
    self.ffn = nn.Sequential(nn.Linear(reduced, reduced), nn.GELU(), nn.Linear(reduced, reduced))
    self.final = final

  def mamba_layer(self, t):                          # t [B, r, E]: a sequence over E
    s = t.transpose(1, 2)
    u = s + self.mamba(self.norm1(s))
    return self.ffn(self.norm2(u)).transpose(1, 2)

  def forward(self, x, s):
    batch, reduced = x.shape[0], CHANNELS // 4
    q = self.ln_q(self.narrow(x).reshape(batch, reduced, -1))
    tap = self.narrow(s) if self.down is None else self.down(s)
    kv = self.ln_kv(tap.reshape(batch, reduced, -1))
    q = q + 0.1 * kv
    q = q + self.mha(q, kv, kv)[0]
    q = q + self.mamba_layer(q) if self.final else self.mamba_layer(q)
    return self.broad(q.reshape(batch, reduced, HEIGHT, WIDTH))


def copy_att(reference, model):
  numpy = lambda tensor: jnp.asarray(tensor.detach().numpy())
  convs = [(model.narrow, reference.narrow), (model.broad, reference.broad)]
  if reference.down is not None:
    convs.append((model.down, reference.down))
  for ours, theirs in convs:
    ours.kernel[...] = numpy(theirs.weight).transpose(2, 3, 1, 0)
    ours.bias[...] = numpy(theirs.bias)
  for ours, theirs in ((model.query_norm, reference.ln_q), (model.key_norm, reference.ln_kv),
                       (model.mamba.mamba_norm, reference.norm1),
                       (model.mamba.ffn_norm, reference.norm2)):
    ours.scale[...], ours.bias[...] = numpy(theirs.weight), numpy(theirs.bias)
  model.attention.in_proj.kernel[...] = numpy(reference.mha.in_proj_weight).T
  model.attention.in_proj.bias[...] = numpy(reference.mha.in_proj_bias)
  model.attention.out_proj.kernel[...] = numpy(reference.mha.out_proj.weight).T
  model.attention.out_proj.bias[...] = numpy(reference.mha.out_proj.bias)
  for ours, theirs in ((model.mamba.ffn_in, reference.ffn[0]),
                       (model.mamba.ffn_out, reference.ffn[2])):
    ours.kernel[...], ours.bias[...] = numpy(theirs.weight).T, numpy(theirs.bias)
  copy_weights(reference.mamba, model.mamba.mamba)


@pytest.mark.parametrize("down,tap_channels,tap_scale,final", [
    ("k6s4", 8, 4, False),     # ATT_0 / ATT_1: a tap 4x the layer3 map
    ("k4s2", 12, 2, False),    # ATT_2: a tap 2x the layer3 map
    (None, CHANNELS, 1, True),  # ATT_3: the layer3 map itself through `narrow`, residual Mamba
])
def test_layer_att_equals_the_reference(down, tap_channels, tap_scale, final):
  torch.manual_seed(0)
  reference = ReferenceATT(tap_channels, down, final)
  with torch.no_grad():   # non-trivial LayerNorms and attention biases: every part matters
    for module in reference.modules():
      if isinstance(module, nn.LayerNorm):
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.3, 0.3)
    reference.mha.in_proj_bias.uniform_(-0.2, 0.2)
    reference.mha.out_proj.bias.uniform_(-0.2, 0.2)
  model = LayerATT(CHANNELS, tap_channels, HEIGHT, WIDTH, down=down, final=final,
                   d_state=D_STATE, scan_chunk_size=5, rngs=nnx.Rngs(0))
  copy_att(reference, model)
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, HEIGHT, WIDTH, CHANNELS)).astype(np.float32)
  s = rng.normal(size=(2, HEIGHT * tap_scale, WIDTH * tap_scale, tap_channels)).astype(
      np.float32)
  nchw = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())
  expected = reference(nchw(x), nchw(s)).detach().numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(model(jnp.asarray(x), jnp.asarray(s)), expected, rtol=1e-4,
                             atol=1e-5)


def test_a_tap_of_the_wrong_size_and_a_bad_embedding_are_named():
  model = LayerATT(CHANNELS, 8, HEIGHT, WIDTH, down="k6s4", final=False, d_state=D_STATE,
                   rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="reduces to a"):
    model(jnp.zeros((1, HEIGHT, WIDTH, CHANNELS)), jnp.zeros((1, 8, 8, 8)))
  with pytest.raises(ValueError, match="multiple of 9"):
    LayerATT(CHANNELS, 8, 2, 5, down="k6s4", final=False, rngs=nnx.Rngs(0))


# ------------------------------------------------------------------ the whole network

from configs import djanet as djanet_configs  # noqa: E402
from vireid_jax import checkpoints, inference  # noqa: E402
from vireid_jax.models import djanet_pytorch  # noqa: E402
from vireid_jax.models.djanet import DJANet, build_djanet  # noqa: E402
from tests.models import torch_djanet_reference as reference  # noqa: E402
from tests.models.torch_reference import relative_error  # noqa: E402

TINY_SIZE = (96, 48)




def _nchw(images):
  return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def tiny_config():
  """configs/djanet.py:synthetic (ResNet-18, width 16, 96 × 48) with Mamba d_state 4."""
  config = djanet_configs.get_config("synthetic")
  config.model.mamba_d_state = 4
  return config


@pytest.fixture(scope="module")
def authors_checkpoint(tmp_path_factory):
  """The reference embed_net (ResNet-50, 384 × 192, 395 classes), random, saved as train.py
  saves it."""
  torch.manual_seed(0)
  net = reference.randomize(reference.EmbedNet(395), seed=1).eval()
  path = tmp_path_factory.mktemp("djanet") / "sysu_djanet_best.t"
  torch.save({"net": net.state_dict(), "cmc": np.zeros(20), "mAP": np.float64(0.5),
              "mINP": np.float64(0.3), "epoch": 7}, path)
  return net, path


def test_authors_checkpoint_gives_the_reference_features_through_both_modality_paths(
    authors_checkpoint, optimized_xla):
  net, path = authors_checkpoint
  model = checkpoints.load_pytorch(str(path), djanet_configs.get_config("sysu"))
  assert isinstance(model, DJANet) and model.num_classes == 395 and model.feature_dim == 2048
  images = np.random.default_rng(0).normal(size=(2, 384, 192, 3)).astype(np.float32)
  features = {}
  for modality, modal in (("visible", 1), ("infrared", 2)):
    with torch.no_grad():
      pooled, bn = net(*[_nchw(images)] * 4, modal=modal)
    features[modality] = inference.extract_features(model, images, modality)
    assert relative_error(features[modality]["pool"], pooled.numpy()) <= 1e-4, modality
    assert relative_error(features[modality]["bn"], bn.numpy()) <= 1e-4, modality
  # The two paths differ (distinct stems), so neither comparison can pass by accident.
  assert relative_error(features["visible"]["bn"], features["infrared"]["bn"]) > 1e-2


def _tiny_reference(seed=0, image_size=TINY_SIZE):
  torch.manual_seed(seed)
  return reference.randomize(reference.EmbedNet(7, depth=18, width=16, image_size=image_size,
                                                d_state=4), seed=seed + 1)


def test_training_forward_equals_the_reference_with_per_view_stem_statistics():
  """Training mode: each stem's BatchNorm normalises its own view's n images, the shared
  ones all 4n; pooled features and logits equal the reference's."""
  net = _tiny_reference().train()
  model = checkpoints.load_pytorch(net.state_dict(), tiny_config())
  rng = np.random.default_rng(3)
  views = [rng.normal(size=(3, *TINY_SIZE, 3)).astype(np.float32) for _ in range(4)]
  # Distinct statistics per view: a shared stem BatchNorm would mix them.
  views = [view * (1 + index) + index for index, view in enumerate(views)]
  with torch.no_grad():
    pooled, logits, _ = net(*map(_nchw, views), modal=0)
  # Jitted: a third of the time of the op-by-op forward.
  outputs = nnx.jit(lambda model, views: model(**views))(
      model, dict(zip(("visible", "visible_augmented", "infrared", "infrared_augmented"),
                      map(jnp.asarray, views))))
  assert relative_error(outputs.pooled, pooled.numpy()) <= 1e-4
  # The BNNeck divides by each feature's standard deviation over only 12 rows, which
  # amplifies float32 rounding about tenfold; a wrong statistic would be off by percents.
  assert relative_error(outputs.logits, logits.numpy()) <= 5e-3
  assert outputs.layer4.shape == (12, 6, 3, 128)


def test_evaluation_runs_the_trunk_on_the_mean_of_both_stems():
  model = checkpoints.load_pytorch(_tiny_reference().state_dict(), tiny_config())
  images = jnp.asarray(np.random.default_rng(4).normal(size=(2, *TINY_SIZE, 3)), jnp.float32)
  evaluated = nnx.view(model, use_running_average=True)
  bn_features = nnx.jit(lambda model, images: model(infrared=images).features()["bn"])
  features = bn_features(evaluated, images)
  # Replacing the augmented stem by the plain one changes the result: both stems are used.
  evaluated.infrared_augmented_stem = evaluated.infrared_stem
  assert relative_error(bn_features(evaluated, images), features) > 1e-3


def test_export_round_trips_and_loads_into_the_reference():
  net = _tiny_reference(seed=5).eval()
  model = checkpoints.load_pytorch(net.state_dict(), tiny_config())
  exported = checkpoints.to_pytorch_state_dict(model)
  fresh = _tiny_reference(seed=9).eval()
  missing, unexpected = fresh.load_state_dict(
      {key: torch.from_numpy(value) for key, value in exported.items()}, strict=False)
  assert not unexpected
  # Only modules the reference never runs are not exported.
  assert all(djanet_pytorch._UNUSED_KEY.match(key) for key in missing), missing
  images = np.random.default_rng(6).normal(size=(2, *TINY_SIZE, 3)).astype(np.float32)
  with torch.no_grad():
    expected = net(*[_nchw(images)] * 4, modal=1)[1].numpy()
    got = fresh(*[_nchw(images)] * 4, modal=1)[1].numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_geometry_follows_the_input_size():
  def built(height, width, depth=50, channels=64):
    config = djanet_configs.get_config("sysu")
    config.model.update(depth=depth, width=channels)
    return nnx.eval_shape(lambda: build_djanet(config.model, 5, (height, width),
                                               rngs=nnx.Rngs(0)))
  model = built(384, 192)
  for fusion in model.fusions:
    assert (fusion.height, fusion.width, fusion.attention.heads, fusion.reduced) == (24, 12, 32,
                                                                                     256)
  assert [fusion.down is None for fusion in model.fusions] == [False, False, False, True]
  assert [fusion.final for fusion in model.fusions] == [False, False, False, True]
  # Non-local blocks after layer2 blocks 2, 3 and layer3 blocks 3, 4, 5, inner width C / 2.
  assert model.stages.insert_after == ((), (2, 3), (3, 4, 5), ())
  assert [block.inner_channels for block in model.stages.inserted[2]] == [512] * 3
  assert not hasattr(model.bottleneck, "bias") or model.bottleneck.bias is None
  demo = built(96, 48, depth=18, channels=16)
  assert (demo.fusions[0].height * demo.fusions[0].width, demo.fusions[0].attention.heads,
          demo.fusions[0].reduced) == (18, 2, 16)
  with pytest.raises(ValueError, match=r"256×128.*E = 16×8 = 128.*head width 9"):
    built(256, 128)
  with pytest.raises(ValueError, match=r"multiples of 16, got 100×50"):
    built(100, 50)


def test_a_checkpoint_of_another_size_names_the_image_size_fields():
  net = _tiny_reference(image_size=(144, 96))          # E = 9 × 6 = 54
  with pytest.raises(ValueError, match=r"(?s)mis-shaped.*layerATT0\.ln_1\.weight.*"
                                       r"config\.data\.image_height/width"):
    checkpoints.load_pytorch(net.state_dict(), tiny_config())


def test_agw_and_djanet_checkpoints_are_told_apart():
  from configs import synthetic as agw_configs
  from tests.models.torch_reference import EmbedNet as AGWEmbedNet
  agw = AGWEmbedNet(7, depth=18, width=16, with_fc=False).state_dict()
  with pytest.raises(ValueError, match=r"(?s)missing.*layerATT0\.attn\.in_proj_weight.*"
                                       r"visible_moduleA\.visible\.conv1\.weight"):
    checkpoints.load_pytorch(agw, tiny_config())
  with pytest.raises(ValueError, match=r"(?s)unexpected.*layerATT3\.mamba_broad\.weight"):
    checkpoints.load_pytorch(_tiny_reference().state_dict(), agw_configs.get_config())


def test_a_whole_config_is_needed_for_the_input_size():
  with pytest.raises(ValueError, match="data.image_height/width"):
    checkpoints.load_pytorch(_tiny_reference().state_dict(),
                             type("Only", (), {"method": "djanet", "model": tiny_config().model})())
