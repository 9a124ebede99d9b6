"""AlignGAN's networks against the PyTorch transcription of the authors' `core/model.py`
(tests/models/torch_aligngan_reference.py): the layers whose semantics differ between the
frameworks, and a release of eight randomised networks imported at the reference's sizes."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import aligngan as aligngan_config
from vireid_jax import checkpoints
from vireid_jax import inference
from vireid_jax.models import layers
from vireid_jax.models.aligngan import NETWORKS, AlignGAN
from vireid_jax.models.pytorch_import import to_model_layout

torch = pytest.importorskip("torch")
from tests.models import torch_aligngan_reference as reference  # noqa: E402
from tests.models.torch_reference import relative_error  # noqa: E402

RNG = np.random.default_rng(0)


def nchw(images):
  return torch.tensor(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def nhwc(tensor):
  return tensor.detach().numpy().transpose(0, 2, 3, 1)


def per_sample_error(ours, theirs):
  """`relative_error` of whole samples (images, score maps) flattened to vectors."""
  ours = np.asarray(ours)
  return relative_error(ours.reshape(len(ours), -1), np.asarray(theirs).reshape(len(ours), -1))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


# --- layers ----------------------------------------------------------------------------------

def test_instance_norm_running_statistics_follow_pytorch():
  """Training calls normalise per instance and move the running statistics by the batch mean
  of per-instance means and *unbiased* variances; evaluation normalises with them."""
  torch_norm = torch.nn.InstanceNorm2d(4, affine=True, track_running_stats=True)
  reference.randomize(torch_norm, seed=1)
  norm = layers.InstanceNorm(4, affine=True, track_running_stats=True)
  for name, value in (("scale", torch_norm.weight), ("bias", torch_norm.bias),
                      ("mean", torch_norm.running_mean), ("var", torch_norm.running_var)):
    getattr(norm, name)[...] = jnp.asarray(value.detach().numpy())
  images = [RNG.normal(1.0, 3.0, size=(3, 5, 6, 4)).astype(np.float32) for _ in range(2)]
  for x in images:                                   # two training calls, then evaluation
    expected = nhwc(torch_norm(nchw(x)))
    assert np.allclose(np.asarray(norm(jnp.asarray(x))), expected, atol=1e-5)
  assert np.allclose(np.asarray(norm.mean[...]), torch_norm.running_mean.numpy(), atol=1e-6)
  assert np.allclose(np.asarray(norm.var[...]), torch_norm.running_var.numpy(), atol=1e-6)
  torch_norm.eval()
  norm.eval()
  expected = nhwc(torch_norm(nchw(images[0])))
  assert np.allclose(np.asarray(norm(jnp.asarray(images[0]))), expected, atol=1e-5)
  # Evaluation with running statistics is not per-instance normalisation.
  per_instance = (images[0] - images[0].mean((1, 2), keepdims=True)) / images[0].std(
      (1, 2), keepdims=True)
  assert not np.allclose(expected, per_instance, atol=1e-2)


def test_plain_instance_norm_is_per_instance_in_both_modes():
  norm = layers.InstanceNorm(3)
  x = RNG.normal(2.0, 2.0, size=(2, 4, 5, 3)).astype(np.float32)
  expected = nhwc(torch.nn.InstanceNorm2d(3)(nchw(x)))
  assert np.allclose(np.asarray(norm(jnp.asarray(x))), expected, atol=1e-5)
  norm.eval()
  assert np.allclose(np.asarray(norm(jnp.asarray(x))), expected, atol=1e-5)
  assert not nnx.state(norm)                       # no parameters, no statistics


def test_transposed_convolution_equals_pytorch():
  torch_conv = torch.nn.ConvTranspose2d(5, 3, 4, stride=2, padding=1, bias=False)
  conv = layers.ConvTranspose(5, 3, 4, stride=2, padding=1, kernel_init=layers.normal_init(0.02),
                              rngs=nnx.Rngs(0))
  conv.kernel[...] = jnp.asarray(to_model_layout(torch_conv.weight.detach().numpy(), "kernel"))
  x = RNG.normal(size=(2, 6, 7, 5)).astype(np.float32)
  out = np.asarray(conv(jnp.asarray(x)))
  assert out.shape == (2, 12, 14, 3)
  assert np.allclose(out, nhwc(torch_conv(nchw(x))), atol=1e-5)


@pytest.mark.parametrize("source, target", [((16, 16), (384, 192)), ((24, 12), (16, 16))])
def test_bilinear_resize_equals_pytorch_without_antialiasing(source, target):
  """Up (the encoder adapter) and down (D_ir's 24 → 16 feature rows, which JAX would
  antialias by default)."""
  x = RNG.normal(size=(2, *source, 3)).astype(np.float32)
  expected = nhwc(torch.nn.functional.interpolate(nchw(x), list(target), mode="bilinear"))
  out = np.asarray(layers.resize_bilinear(jnp.asarray(x), *target))
  assert np.allclose(out, expected, atol=1e-5)
  if target[0] < source[0]:
    antialiased = jax.image.resize(jnp.asarray(x), (2, *target, 3), "bilinear")
    assert not np.allclose(np.asarray(antialiased), expected, atol=1e-3)


# --- a release at the reference's sizes --------------------------------------------------------

@pytest.fixture(scope="module")
def release(tmp_path_factory):
  """The eight reference networks (ResNet-50, widths 64, 4 residual blocks) with every weight
  and statistic random, saved as `Base.save_model(250)` does, and imported."""
  networks = reference.build_networks(class_num=7)
  for seed, name in enumerate(reference.MODEL_LIST):
    reference.randomize(networks[name], seed=10 + seed)
  folder = str(tmp_path_factory.mktemp("aligngan_release"))
  reference.save_model(networks, folder, 250)
  # An older, incomplete step: the importer takes the latest complete one.
  reference.save_model({name: networks[name] for name in reference.MODEL_LIST}, folder, 100)
  os.remove(os.path.join(folder, "model-3_100.pkl"))
  model = checkpoints.load_pytorch(folder, aligngan_config.get_config("sysu"))
  return networks, model, folder


def test_release_features_equal_the_reference_test_features(release):
  networks, model, _ = release
  assert isinstance(model, AlignGAN) and model.head.classifier.out_features == 7
  images = RNG.uniform(-1, 1, size=(2, 128, 128, 3)).astype(np.float32)
  imagenet = (images + 1) / 2
  imagenet = (imagenet - np.array(reference.IMAGENET_MEAN)) / np.array(reference.IMAGENET_STD)
  for modality, torch_modality in (("visible", "rgb"), ("infrared", "ir")):
    expected = reference.test_features(networks, nchw(images), torch_modality).numpy()
    features = inference.extract_features(model, imagenet.astype(np.float32), modality)
    assert set(features) == {"pool"}
    assert relative_error(np.asarray(features["pool"]), expected) <= 1e-4, modality


def test_release_translation_and_discriminators_equal_the_reference(release):
  networks, model, _ = release
  images = RNG.uniform(-1, 1, size=(2, 128, 128, 3)).astype(np.float32)
  generator = networks["G_rgb2ir"]
  translate = nnx.jit(lambda m, x: m.translate(x))
  # eval (release statistics), train (updates them), eval again (the updated statistics).
  for training in (False, True, False):
    generator.train(training)
    model.g_rgb2ir.train() if training else model.g_rgb2ir.eval()
    with torch.no_grad():
      expected = nhwc(generator(nchw(images)))
    assert per_sample_error(translate(model, jnp.asarray(images)), expected) <= 1e-4
  assert np.allclose(np.asarray(model.g_rgb2ir.input_norm.mean[...]),
                     generator.model[1].running_mean.numpy(), atol=1e-6)

  feature_maps = RNG.normal(size=(2, 24, 12, 2048)).astype(np.float32)
  with torch.no_grad():
    for name, torch_name in (("d_rgb", "D_rgb"), ("d_rgb_warmup", "D_rgb_warmup"),
                             ("d_ir_warmup", "D_ir_warmup")):
      scores = np.asarray(nnx.jit(lambda d, x: d(x))(getattr(model, name), jnp.asarray(images)))
      assert scores.shape == (2, 4, 4, 1)
      expected = nhwc(networks[torch_name](nchw(images)))
      assert per_sample_error(scores, expected) <= 1e-4, name
    scores = np.asarray(nnx.jit(lambda d, x, m: d(x, m))(model.d_ir, jnp.asarray(images),
                                                        jnp.asarray(feature_maps)))
    expected = nhwc(networks["D_ir"](nchw(images), nchw(feature_maps)))
  assert scores.shape == (2, 4, 4, 1)
  assert per_sample_error(scores, expected) <= 1e-4


def test_export_round_trips_every_key(release):
  networks, model, _ = release
  exported = checkpoints.to_pytorch_state_dict(model)
  assert list(exported) == list(NETWORKS)
  for name, torch_name in zip(NETWORKS, reference.MODEL_LIST):
    expected = {f"module.{key}": value.numpy() for key, value in
                networks[torch_name].state_dict().items() if "num_batches_tracked" not in key}
    assert set(exported[name]) == set(expected), name
    for key, value in expected.items():
      # Equal up to the rounding of the running statistics that another test's training-mode
      # translation updated on both sides.
      assert np.allclose(exported[name][key], value, rtol=1e-6, atol=1e-7), key


def test_missing_release_file_is_named_with_the_steps_present(release):
  _, _, folder = release
  config = aligngan_config.get_config("sysu")
  config.aligngan.import_index = 100
  with pytest.raises(FileNotFoundError, match=r"model-3_100\.pkl \(d_ir\).*100 \(networks "
                                              r"\[0, 1, 2, 4, 5, 6, 7\]\), 250"):
    checkpoints.load_pytorch(folder, config)


def test_key_problems_are_listed_per_file(release, tmp_path):
  networks, _, _ = release
  state_dicts = {name: {f"module.{key}": value for key, value in
                        networks[torch_name].state_dict().items()}
                 for name, torch_name in zip(NETWORKS, reference.MODEL_LIST)}
  del state_dicts["d_ir"]["module.conv_src.weight"]
  state_dicts["head"]["module.extra.weight"] = torch.zeros(3)
  config = aligngan_config.get_config("sysu")
  with pytest.raises(ValueError) as error:
    checkpoints.load_pytorch(state_dicts, config)
  message = str(error.value)
  assert "d_ir of AlignGAN" in message and "missing (1" in message
  assert "  conv_src.weight  model [1, 1024, 3, 3]" in message
  assert "head of AlignGAN" in message and "  extra.weight  file [3]" in message
  assert "g_rgb2ir of" not in message              # the files that fit are not listed
  config.aligngan.generator_dim = 32
  with pytest.raises(ValueError, match=r"(?s)mis-shaped.*  model\.0\.weight  file "
                                       r"\[64, 3, 7, 7\], model \[32, 3, 7, 7\]"):
    checkpoints.load_pytorch(state_dicts, config)


def test_head_dropout_is_inverted_and_only_on_the_classification_path():
  from vireid_jax.models.aligngan import Head
  head = Head(16, 5, bottle_dim=8, embedding_dim=4, rngs=nnx.Rngs(0))
  maps = jnp.asarray(RNG.uniform(0.5, 1.5, size=(64, 2, 1, 16)).astype(np.float32))
  pooled, logits, embedding = head(maps, jax.random.key(1))
  with pytest.raises(ValueError, match="dropout_key"):
    head(maps)
  # The embedding and the pooled feature never see dropout; the logits do.
  head_eval = nnx.clone(head)
  head_eval.eval()
  _, logits_eval, embedding_eval = head_eval(maps)
  np.testing.assert_allclose(embedding, embedding_eval, rtol=1e-6)
  np.testing.assert_allclose(pooled, jnp.mean(maps, axis=(1, 2)), rtol=1e-6)
  assert not np.allclose(logits, logits_eval, atol=1e-3)
  # Inverted dropout at 0.5: half the entries zeroed, the rest doubled (the bottleneck's input).
  captured = {}
  original = head.bottle_linear.__call__
  head.bottle_linear = type("Capture", (), {"__call__": lambda self, x: (
      captured.setdefault("x", x), original(x))[1]})()
  head(maps, jax.random.key(2))
  dropped = np.asarray(captured["x"])
  kept = dropped != 0
  assert 0.4 < kept.mean() < 0.6
  np.testing.assert_allclose(dropped[kept], 2 * np.asarray(pooled)[kept], rtol=1e-6)


def test_the_rematerialised_encoder_gives_the_same_features_gradients_and_statistics():
  """`aligngan.remat_encoder` trades memory for compute only (issue 16 item 10)."""
  from vireid_jax.models.aligngan import Encoder
  plain = Encoder(18, 4, input_size=(32, 16), rngs=nnx.Rngs(0))
  remat = nnx.clone(plain)
  remat.remat = True
  images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (3, 16, 16, 3)), jnp.float32)

  def loss(encoder):
    return jnp.sum(encoder(images) ** 2)

  results = []
  for encoder in (plain, remat):
    encoder.train()
    value, grads = nnx.jit(nnx.value_and_grad(loss))(encoder)
    results.append((value, grads, nnx.state(encoder, nnx.BatchStat)))
  (value, grads, stats), (remat_value, remat_grads, remat_stats) = results
  np.testing.assert_allclose(remat_value, value, rtol=1e-6)
  for expected, actual in ((grads, remat_grads), (stats, remat_stats)):
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(actual)):
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
  # The statistics did move (training mode), in both.
  assert not np.allclose(jax.tree.leaves(stats)[0], 0.0)
