"""`python -m vireid_jax.export`: StableHLO and ONNX artifacts of a checkpoint's evaluation
feature, loaded back and compared with the model's features, on a machine without TensorFlow.

One tiny AGW (non-local blocks, GeM, BNNeck, running statistics off their initial values) is
checkpointed into a workdir as training would, then the export command runs in a subprocess
that cannot import TensorFlow; the tests load what it wrote.
"""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vireid_jax import checkpoints
from vireid_jax import evaluation
from vireid_jax import export
from vireid_jax import inference
from vireid_jax import methods
from vireid_jax.evaluation.features import prepare_images
from vireid_jax.training import orbax_checkpoints
from vireid_jax.training import workdir_config
from vireid_jax.training.context import DataInfo

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_SIZE = (32, 16)
# Not the loader's probe value (2): the classifier's rows are read off the checkpoint.
NUM_CLASSES = 7
STEP = 5
MODALITY = "infrared"
# The export extra (`make test` installs it); without it only the StableHLO file is checked.
HAVE_ONNX = all(importlib.util.find_spec(name) for name in ("jax2onnx", "onnxruntime"))
FORMATS = export.FORMATS if HAVE_ONNX else ("stablehlo",)

# Runs the export command where `import tensorflow` (and TFDS) fails, as in a JAX-only install.
EXPORT_WITHOUT_TENSORFLOW = """
import runpy, sys
for name in ("tensorflow", "tensorflow_datasets"):
  sys.modules[name] = None   # any import of them raises ImportError
import vireid_jax.checkpoints, vireid_jax.evaluation, vireid_jax.inference   # what a user loads
sys.argv = ["vireid_jax.export"] + sys.argv[1:]
runpy.run_module("vireid_jax.export", run_name="__main__", alter_sys=True)
"""


def tiny_config():
  from configs import synthetic
  config = synthetic.get_config()
  config.model.depth, config.model.width = 18, 8
  config.model.non_local, config.model.pooling = True, "gem"
  config.data.image_height, config.data.image_width = IMAGE_SIZE
  return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(config, method, state, workdir): a tiny AGW checkpointed at step STEP."""
  config = tiny_config()
  method = methods.resolve(config)
  info = DataInfo(num_classes=NUM_CLASSES, num_visible=4, num_infrared=4, steps_per_epoch=2)
  state = jax.jit(lambda: method.create_state(info))()
  # Running statistics off (0, 1), so that a restore that missed them would show.
  rng = np.random.default_rng(0)
  batch_stats = jax.tree_util.tree_map_with_path(
      lambda path, x: jnp.asarray(rng.normal(0.0, 0.1, x.shape) if "mean" in str(path)
                                  else rng.uniform(0.5, 1.5, x.shape), x.dtype),
      state.net.batch_stats)
  state = state.replace(step=jnp.asarray(STEP, jnp.int32),
                        net=state.net.replace(batch_stats=batch_stats))
  workdir = str(tmp_path_factory.mktemp("workdir"))
  workdir_config.check_or_record(config, workdir)
  checkpointer = orbax_checkpoints.Checkpointer.for_workdir(workdir)
  checkpointer.save(state)
  checkpointer.wait()
  checkpointer.close()
  return config, method, state, workdir


@pytest.fixture(scope="module")
def loaded(trained):
  """The workdir's model as `load_model_for_inference` reads it (config from config.json)."""
  return inference.load_model_for_inference(trained[3])


def reference_features(trained, pixels, modality=MODALITY):
  """The features evaluation computes, straight from the in-memory state."""
  config, method, state, _ = trained
  features = jax.jit(lambda images: method.features(state, prepare_images(images), modality))
  return np.asarray(features(pixels)[config.eval.main_feature])


def pixels(count, seed):
  return np.random.default_rng(seed).integers(0, 256, (count, *IMAGE_SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
  """The files `python -m vireid_jax.export` wrote for the workdir, without TensorFlow."""
  output_dir = str(tmp_path_factory.mktemp("exported"))
  completed = subprocess.run(
      [sys.executable, "-c", EXPORT_WITHOUT_TENSORFLOW, f"--checkpoint={trained[3]}",
       f"--modality={MODALITY}", f"--output_dir={output_dir}", f"--formats={','.join(FORMATS)}"],
      cwd=REPO_ROOT, capture_output=True, text=True,
      env=dict(os.environ, CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu"))
  assert completed.returncode == 0, completed.stderr[-3000:]
  return output_dir, completed.stdout


def test_the_command_writes_both_artifacts_and_their_contract(exported):
  output_dir, stdout = exported
  written = {kind: MODALITY + export.SUFFIXES[kind] for kind in (*FORMATS, "contract")}
  for kind, name in written.items():
    assert f"{kind}: {os.path.join(output_dir, name)}" in stdout
  assert sorted(os.listdir(output_dir)) == sorted(written.values())   # no temporary files left
  with open(os.path.join(output_dir, MODALITY + ".json"), encoding="utf-8") as file:
    contract = json.load(file)
  assert contract["input"]["shape"] == ["b", *IMAGE_SIZE, 3]
  assert contract["input"]["dtype"] == "uint8"
  # AGW's BNNeck feature: width 8 -> layer4 has 8 * 8 = 64 channels.
  assert contract["output"]["shape"] == ["b", 64]
  assert (contract["feature"], contract["step"], contract["modality"]) == ("bn", STEP, MODALITY)


@pytest.mark.parametrize("batch", [1, 7])
def test_stablehlo_artifact_reproduces_the_features(trained, exported, batch):
  with open(os.path.join(exported[0], MODALITY + ".jax_export"), "rb") as file:
    artifact = jax.export.deserialize(bytearray(file.read()))
  (images_aval,) = artifact.in_avals
  assert not isinstance(images_aval.shape[0], int)   # the batch dimension is symbolic
  assert images_aval.shape[1:] == (*IMAGE_SIZE, 3) and images_aval.dtype == jnp.uint8
  images = pixels(batch, seed=batch)
  expected = reference_features(trained, images)
  assert batch == 1 or np.abs(expected - expected[:1]).max() > 1e-3   # features follow images
  np.testing.assert_allclose(np.asarray(artifact.call(images)), expected, rtol=1e-4,
                             atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("batch", [1, 7])
def test_onnx_model_reproduces_the_features(trained, exported, batch):
  if not HAVE_ONNX:
    pytest.skip("jax2onnx / onnxruntime not installed (the export extra; make test installs it)")
  import onnxruntime
  session = onnxruntime.InferenceSession(os.path.join(exported[0], MODALITY + ".onnx"),
                                         providers=["CPUExecutionProvider"])
  (images_input,) = session.get_inputs()
  assert images_input.name == export.INPUT_NAME and images_input.type == "tensor(uint8)"
  images = pixels(batch, seed=10 + batch)
  (features,) = session.run([export.OUTPUT_NAME], {export.INPUT_NAME: images})
  expected = reference_features(trained, images)
  assert features.shape == expected.shape
  np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_the_stem_max_pool_is_rewritten_exactly():
  # ONNX gets the max-pool as a maximum of strided slices: the same numbers, odd sizes too.
  from vireid_jax.models import resnet
  images = jnp.asarray(np.random.default_rng(3).normal(size=(2, 9, 6, 5)), jnp.float32)
  rewritten = export.onnx_compatible(resnet.max_pool_3x3_s2, images)
  np.testing.assert_array_equal(rewritten(images), resnet.max_pool_3x3_s2(images))
  assert "reduce_window_max" not in str(jax.make_jaxpr(rewritten)(images))


def test_halves_of_a_symbolic_batch_become_slices():
  # MMN's features split the rows [originals; middle images] at b: jnp indexing gives a gather
  # of symbolic size and jnp.split a split, which jax2onnx lowers through int(b) and fails;
  # the rewrite gives slices, same values.
  def halves(x):
    rows = jnp.concatenate([x, 2 * x])
    count = rows.shape[0] // 2
    first, second = jnp.split(rows, 2)
    return rows[:count] + 3 * rows[count:] + 5 * first - second
  spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape("b, 4"), jnp.float32)
  rewritten = export.onnx_compatible(halves, spec)
  original = str(jax.make_jaxpr(halves)(spec))
  assert " gather[" in original and " split[" in original
  jaxpr = str(jax.make_jaxpr(rewritten)(spec))
  assert " gather[" not in jaxpr and " split[" not in jaxpr and jaxpr.count(" slice[") == 4
  # The rewritten function is one of the symbolic batch: run it as such, at b = 3.
  rows = jnp.asarray(np.random.default_rng(4).normal(size=(3, 4)), jnp.float32)
  np.testing.assert_array_equal(jax.export.export(jax.jit(rewritten))(spec).call(rows),
                                halves(rows))


def test_interior_padding_of_a_scan_is_rewritten_exactly():
  # lax.associative_scan (Mamba's selective scan in DJANet) interleaves with interior padding,
  # which jax2onnx has no lowering for; the rewrite stacks and reshapes instead.
  def prefix_sums(x):
    return jax.lax.associative_scan(jnp.add, x, axis=1)
  spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape("b, 6, 3"), jnp.float32)
  assert " pad[" in str(jax.make_jaxpr(prefix_sums)(spec))
  rows = jnp.asarray(np.random.default_rng(5).normal(size=(3, 6, 3)), jnp.float32)
  rewritten = export.onnx_compatible(prefix_sums, spec)
  np.testing.assert_array_equal(jax.export.export(jax.jit(rewritten))(spec).call(rows),
                                prefix_sums(rows))


def test_a_pytorch_file_loads_with_its_config(trained, tmp_path):
  # The method's own PyTorch key map, written as the torch-free .npz.
  config, method, state, _ = trained
  path = str(tmp_path / "agw.npz")
  np.savez(path, **checkpoints.to_pytorch_state_dict(state.net.model(training=False)))
  with pytest.raises(FileNotFoundError, match="records no config"):
    inference.load_model_for_inference(path)
  model = inference.load_model_for_inference(path, config)
  assert model.step is None and model.source == path
  images = pixels(3, seed=20)
  fn = jax.jit(inference.evaluation_feature_fn(model, "visible"))
  np.testing.assert_allclose(np.asarray(fn(images)),
                             reference_features(trained, images, "visible"),
                             rtol=1e-5, atol=1e-6)


def test_the_exported_function_averages_mirrored_features_when_evaluation_does(loaded):
  # CAJ's evaluation (eval.flip): the L2-normalised sum with the mirror image's feature.
  model = loaded
  assert model.step == STEP and model.source.endswith(os.path.join("checkpoints", str(STEP)))
  config = model.config.copy_and_resolve_references()
  config.eval.flip = True
  flipped = dataclasses.replace(model, config=config)
  images = pixels(3, seed=30)
  expected = evaluation.extract_features(jax.jit(model.features, static_argnums=1), images,
                                         MODALITY, batch_size=3, flip=True)["bn"]
  got = jax.jit(inference.evaluation_feature_fn(flipped, MODALITY))(images)
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)
  plain = jax.jit(inference.evaluation_feature_fn(model, MODALITY))(images)
  assert np.abs(np.asarray(plain) - np.asarray(got)).max() > 1e-3


def test_bad_requests_are_refused_with_what_to_do(trained, loaded, tmp_path):
  model = loaded
  with pytest.raises(ValueError, match=r"feature 'logits'.*\['bn', 'pool'\]"):
    export.export(model, MODALITY, str(tmp_path), feature="logits")
  with pytest.raises(ValueError, match="formats"):
    export.export(model, MODALITY, str(tmp_path), formats=["tflite"])
  with pytest.raises(ValueError, match="modality"):
    export.export(model, "thermal", str(tmp_path))
  assert not os.listdir(tmp_path)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    inference.load_model_for_inference(str(tmp_path / "missing"))
  with pytest.raises(FileNotFoundError, match="config.json"):
    inference.load_model_for_inference(str(tmp_path))
  other = tiny_config()
  other.model.width = 16
  with pytest.raises(orbax_checkpoints.CheckpointMismatchError, match="does not match"):
    inference.load_model_for_inference(trained[3], other)
