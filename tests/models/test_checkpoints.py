"""Checkpoint import and export that need no PyTorch: NumPy state dicts, wrappers, errors.

The comparisons against real PyTorch models are in ``test_pytorch_import.py``; these tests
also run where torch is not installed.
"""

import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from configs import default
from tests.training import toy_method
from vireid_jax import checkpoints
from vireid_jax.models import AGW, ResNet, agw_pytorch

TINY = dict(depth=18, width=8)


def _config(**model_fields):
  config = default.get_config()
  for name, value in {**TINY, **model_fields}.items():
    setattr(config.model, name, value)
  return config


@pytest.fixture(scope='module')
def tiny_agw():
  """A tiny AGW with every BatchNorm statistic and non-local γ made non-trivial."""
  model = AGW(6, **TINY, rngs=nnx.Rngs(0))
  keys = iter(jax.random.split(jax.random.key(1), 1000))
  for path, variable in nnx.to_flat_state(nnx.state(model)):
    if path[-1] in ('mean', 'var', 'scale') and path[0] != 'bottleneck':
      shape = variable.get_value().shape
      variable.set_value(0.5 + jax.random.uniform(next(keys), shape))
  return model


def _assert_same_variables(a, b):
  flat_a = dict(nnx.to_flat_state(nnx.state(a)))
  flat_b = dict(nnx.to_flat_state(nnx.state(b)))
  assert set(flat_a) == set(flat_b)
  for path in flat_a:
    np.testing.assert_array_equal(flat_a[path].get_value(), flat_b[path].get_value(),
                                  err_msg=str(path))


def test_agw_export_then_import_restores_every_variable(tiny_agw):
  state_dict = checkpoints.to_pytorch_state_dict(tiny_agw)
  assert state_dict['visible_module.visible.conv1.weight'].shape == (8, 3, 7, 7)  # OIHW
  assert state_dict['classifier.weight'].shape == (6, 64)  # [classes, D]
  assert state_dict['NL_2.1.W.1.running_var'].shape == (16,)
  np.testing.assert_array_equal(state_dict['bottleneck.bias'], np.zeros(64))
  # The AGW train.py wrapper, saved from nn.DataParallel.
  wrapped = {'net': {'module.' + key: value for key, value in state_dict.items()}, 'epoch': 3}
  _assert_same_variables(checkpoints.load_pytorch(wrapped, _config()), tiny_agw)


def test_learnable_gem_starts_at_the_reference_constant(tiny_agw):
  state_dict = checkpoints.to_pytorch_state_dict(tiny_agw)
  model = checkpoints.load_pytorch(state_dict, _config(gem_learnable=True).model)
  assert float(model.gem.p[...]) == 3.0
  assert isinstance(model.gem.p, nnx.Param)
  assert 'gem.p' not in checkpoints.to_pytorch_state_dict(model)
  np.testing.assert_array_equal(model.classifier.kernel[...], tiny_agw.classifier.kernel[...])


class MethodWithLoader(toy_method.ToyMethod):
  load_pytorch = staticmethod(lambda source, model_config: ('loaded', source, model_config))


class MethodWithSizedLoader(toy_method.ToyMethod):
  load_pytorch = staticmethod(lambda source, model_config, *, image_size: (
      'loaded', model_config, image_size))
  load_pytorch_reads_image_size = True


class MethodWithConfigLoader(toy_method.ToyMethod):
  load_pytorch = staticmethod(lambda source, config: ('loaded', config))
  load_pytorch_takes_config = True


def test_load_pytorch_dispatches_on_the_method(tiny_agw):
  from vireid_jax.methods import agw as agw_method
  assert agw_method.AGWMethod.load_pytorch is agw_pytorch.load_pytorch
  state_dict = checkpoints.to_pytorch_state_dict(tiny_agw)
  config = _config()
  # A method of the user's own brings its loader in its own file.
  config.method = f'{__name__}:MethodWithLoader'
  assert checkpoints.load_pytorch(state_dict, config) == ('loaded', state_dict, config.model)
  # A model built for an input size gets it from config.data (DJANet's).
  config.method = f'{__name__}:MethodWithSizedLoader'
  assert checkpoints.load_pytorch(state_dict, config) == (
      'loaded', config.model, (config.data.image_height, config.data.image_width))
  # A model described by more than config.model gets the whole config (AlignGAN's).
  config.method = f'{__name__}:MethodWithConfigLoader'
  assert checkpoints.load_pytorch(state_dict, config) == ('loaded', config)
  config.method = 'tests.training.toy_method'
  with pytest.raises(ValueError, match=r"config\.method='tests.training.toy_method' has no "
                                       r"PyTorch checkpoint loader.*methods with one: agw, "
                                       r"aligngan, caj, dan, djanet, mcja, mmn\."):
    checkpoints.load_pytorch(state_dict, config)


def test_read_state_dict_unwraps_and_copies():
  weight = np.arange(6, dtype=np.float32).reshape(2, 3)
  for wrapped in ({'w': weight}, {'state_dict': {'w': weight}}, {'net': {'module.w': weight}}):
    state_dict = checkpoints.read_state_dict(wrapped)
    assert list(state_dict) == ['w']
    np.testing.assert_array_equal(state_dict['w'], weight)
    assert not np.shares_memory(state_dict['w'], weight)
  # 'module.' is removed only when every key has it.
  assert set(checkpoints.read_state_dict({'module.a': weight, 'b': weight})) == {'module.a', 'b'}
  with pytest.raises(ValueError, match=r"not tensors: \['epoch'\]"):
    checkpoints.read_state_dict({'epoch': 3, 'w': weight})
  with pytest.raises(ValueError, match='state dict'):
    checkpoints.read_state_dict({})


def test_torchvision_resnet_round_trip_and_architecture_errors():
  model = ResNet(18, 10, width=4, rngs=nnx.Rngs(0))
  state_dict = checkpoints.to_pytorch_state_dict(model)
  assert 'layer2.0.downsample.0.weight' in state_dict and 'fc.bias' in state_dict
  imported = checkpoints.load_torchvision_resnet(state_dict)
  _assert_same_variables(imported, model)

  truncated = {k: v for k, v in state_dict.items() if not k.startswith('layer4.1.')}
  with pytest.raises(ValueError, match=r'\(2, 2, 2, 1\) blocks per stage \(basic blocks\)'):
    checkpoints.load_torchvision_resnet(truncated)
  with pytest.raises(ValueError, match="no 'fc.weight' key"):
    checkpoints.load_torchvision_resnet({k: v for k, v in state_dict.items() if 'fc' not in k})


def test_init_backbone_needs_resnet_parts_and_rejects_foreign_keys():
  resnet = ResNet(18, 10, width=8, rngs=nnx.Rngs(0))
  state_dict = checkpoints.to_pytorch_state_dict(resnet)
  with pytest.raises(ValueError, match='no ResNet Stem or ResNetStages'):
    checkpoints.init_backbone_from_torchvision(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), state_dict)
  model = AGW(3, **TINY, rngs=nnx.Rngs(1))
  with pytest.raises(ValueError, match=r'unexpected \(1,.*\n  classifier\.weight  file \[2, 2\]'):
    checkpoints.init_backbone_from_torchvision(
        model, {**state_dict, 'classifier.weight': np.zeros((2, 2), np.float32)}
    )
  # Nothing was written: the check comes before any assignment.
  assert not np.array_equal(model.visible_stem.conv1.kernel[...], resnet.stem.conv1.kernel[...])


def test_reading_a_file_without_torch_says_how_to_install_it(tmp_path, monkeypatch):
  path = tmp_path / 'agw_best.t'
  path.write_bytes(b'not read')
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` raises ImportError
  with pytest.raises(ImportError, match=r"agw_best\.t.*vireid-jax\[torch\]"):
    checkpoints.read_state_dict(path)
  with pytest.raises(FileNotFoundError, match='missing.t'):
    checkpoints.read_state_dict(tmp_path / 'missing.t')


def test_checkpoints_and_inference_import_without_torch():
  code = (
      "import sys; sys.modules['torch'] = None\n"
      'import vireid_jax.checkpoints, vireid_jax.inference\n'
  )
  subprocess.run([sys.executable, '-c', code], check=True, timeout=120)


def test_export_of_a_model_no_method_builds_names_the_supported_ones():
  class Unknown(nnx.Module):
    pass
  with pytest.raises(TypeError, match=r"supports ResNet and .*AGW.*MCJA.*got Unknown"):
    checkpoints.to_pytorch_state_dict(Unknown())
