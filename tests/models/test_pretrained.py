"""ImageNet initialisation as the papers ran it: the paper configs' ImageNet file, the check
before any work, the torch-free .npz conversion, and "none" on purpose."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from configs import regdb, sysu, synthetic  # noqa: E402  (after the skip)
from tests.models import torch_reference  # noqa: E402
from vireid_jax import checkpoints  # noqa: E402
from vireid_jax.methods import agw as agw_method  # noqa: E402
from vireid_jax.methods.base import DataInfo  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_paper_configs_start_from_the_imagenet_resnet50_file():
  for config in (sysu.get_config(), regdb.get_config()):
    assert config.model.pretrained == checkpoints.IMAGENET_RESNET50
    assert config.model.pretrained == 'data/pretrained/resnet50-19c8e357.pth'
  assert synthetic.get_config().model.pretrained == 'none'


def test_a_missing_imagenet_file_names_the_file_and_the_way_out(tmp_path):
  config = sysu.get_config()
  config.model.pretrained = str(tmp_path / 'pretrained' / 'resnet50-19c8e357.pth')
  with pytest.raises(checkpoints.PretrainedWeightsError) as error:
    checkpoints.check_pretrained(config)
  message = str(error.value)
  assert str(tmp_path / 'pretrained' / 'resnet50-19c8e357.pth') in message
  assert "torchvision's ImageNet ResNet-50 (resnet50-19c8e357.pth)" in message
  assert '--config.model.pretrained=none' in message and 'data/README.md' in message


def test_none_trains_from_scratch_and_warns_on_real_data_only(capsys):
  config = sysu.get_config()
  config.model.pretrained = 'none'
  checkpoints.check_pretrained(config)
  warning = capsys.readouterr().out
  assert warning.count('\n') == 1 and "numbers will not be the paper's" in warning
  checkpoints.check_pretrained(synthetic.get_config())
  assert capsys.readouterr().out == ''
  assert checkpoints.pretrained_path(config.model) is None
  config.model.pretrained = ''
  with pytest.raises(ValueError, match="config.model.pretrained is empty"):
    checkpoints.check_pretrained(config)


@pytest.fixture(scope='module')
def resnet50_file(tmp_path_factory):
  """A torchvision-layout ResNet-50 file with random weights and statistics."""
  torch.manual_seed(0)
  network = torch_reference.TorchvisionResNet(50, 1000)
  state_dict = network.state_dict()
  for key, value in state_dict.items():
    if key.endswith(('running_mean', 'running_var')):
      value.copy_(torch.rand_like(value) + 0.5)
  path = tmp_path_factory.mktemp('pretrained') / 'resnet50-19c8e357.pth'
  torch.save(state_dict, path)
  return path, {key: value.numpy() for key, value in state_dict.items()}


def _kernel(weights):
  return np.transpose(weights, (2, 3, 1, 0))   # PyTorch OIHW -> HWIO


def test_sysu_config_carries_the_file_in_both_stems_and_every_stage(resnet50_file, tmp_path):
  path, weights = resnet50_file
  # The torch-free copy is what a machine without torch passes; both must agree.
  npz = tmp_path / 'resnet50.npz'
  completed = subprocess.run(
      [sys.executable, '-m', 'vireid_jax.checkpoints', 'convert', str(path), str(npz)],
      cwd=REPO_ROOT, capture_output=True, text=True, env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
  assert completed.returncode == 0, completed.stderr[-2000:]
  assert f'Wrote {len(weights)} arrays to {npz}' in completed.stdout
  config = sysu.get_config()
  config.model.pretrained = str(npz)
  checkpoints.check_pretrained(config)
  info = DataInfo(num_classes=395, num_visible=22258, num_infrared=11909, steps_per_epoch=696)
  params = agw_method.AGWMethod(config).create_state(info).net.params
  for stem in ('visible_stem', 'infrared_stem'):
    np.testing.assert_array_equal(params[stem]['conv1']['kernel'][...],
                                  _kernel(weights['conv1.weight']))
    np.testing.assert_array_equal(params[stem]['bn1']['scale'][...], weights['bn1.weight'])
  for stage, block in ((0, 0), (1, 3), (2, 5), (3, 2)):
    np.testing.assert_array_equal(
        params['stages']['layers'][stage][block]['conv2']['kernel'][...],
        _kernel(weights[f'layer{stage + 1}.{block}.conv2.weight']))


def test_convert_reads_back_exactly_and_refuses_other_names(resnet50_file, tmp_path):
  path, weights = resnet50_file
  npz = tmp_path / 'weights.npz'
  assert checkpoints.convert(str(path), str(npz)) == len(weights)
  converted = checkpoints.read_state_dict(str(npz))
  assert converted.keys() == weights.keys()
  for key, value in weights.items():
    np.testing.assert_array_equal(converted[key], value)
  assert not [name for name in os.listdir(tmp_path) if name.startswith('.partial')]
  with pytest.raises(ValueError, match='must end in .npz'):
    checkpoints.convert(str(path), str(tmp_path / 'weights.pth'))
  assert checkpoints.main(['convert', str(path)]) == 2
  assert checkpoints.main(['convert', str(tmp_path / 'missing.pth'), str(npz)]) == 1
