"""AGW reference key map: :class:`~vireid_jax.models.AGW` <-> the reference ``embed_net``.

The authors release trained PyTorch checkpoints; the same weights must give the same
features here (spec baseline §4). :func:`load_pytorch` reads an AGW checkpoint as the
reference's ``train.py`` saves it (``torch.save({'net': state_dict, 'cmc': …, 'mAP': …,
'mINP': …, 'epoch': …})``), or a bare state dict, into a new :class:`AGW` built from
``config.model``; :func:`to_pytorch_state_dict` writes the reference's keys back.

The reference's ``visible_module.visible``, ``thermal_module.thermal`` and
``base_resnet.base`` each hold a whole ResNet of which only the stems (visible, thermal) and
layer1–4 (base) run. Their other modules never receive gradients and are skipped: layer1–4
and ``fc`` under the two stem prefixes, ``conv1``/``bn1``/``fc`` under the base prefix
(``fc`` exists only when the ResNet class has one; the reference's ``resnet.py`` has none,
torchvision's has). Every other missing, unexpected or mis-shaped key is an error that lists
each key with both shapes.

The public entry is :mod:`vireid_jax.checkpoints` (``load_pytorch(path, config)`` with
``config.method == 'agw'``); ImageNet initialisation of the stems and stages is
:func:`vireid_jax.models.resnet_pytorch.init_backbone_from_torchvision`.
"""

from __future__ import annotations

import re
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from vireid_jax.models import pytorch_import
from vireid_jax.models.agw import AGW, build_agw
from vireid_jax.models.pytorch_import import TORCH_LEAF, Path, StateDict, StateDictSource
from vireid_jax.models.resnet_pytorch import stages_key, stem_key

# Non-local block submodules -> the reference's names (``g`` and ``W`` are Sequentials).
_TORCH_NON_LOCAL = {
    'theta': 'theta',
    'phi': 'phi',
    'g': 'g.0',
    'output_conv': 'W.0',
    'output_bn': 'W.1',
}
# The AGW-family references' two stems (MMN's and DAN's too): our module -> their key prefix.
STEM_PREFIXES = {
    'visible_stem': 'visible_module.visible.',
    'infrared_stem': 'thermal_module.thermal.',
}
_BASE_PREFIX = 'base_resnet.base.'
# The stem holders' whole-ResNet modules that the forward never runs (a regex alternative).
UNUSED_STEM_MODULES = r'(?:visible_module\.visible|thermal_module\.thermal)\.(?:layer[1-4]|fc)'
# ... and the same of the base ResNet, whose stem never runs (module doc). Also MMN's.
UNUSED_KEY = re.compile(rf'^(?:{UNUSED_STEM_MODULES}|base_resnet\.base\.(?:conv1|bn1|fc))\.')
_MODEL_FIELDS_HINT = (
    'Check config.model (depth, width, non_local, non_local_inner) against the checkpoint: '
    'the reference AGW is depth 50, width 64, non_local True; its non-local inner width is 1 '
    "('reference') at the spec's commit and C/2 ('half') in older versions of model.py."
)


def non_local_key(path: Path) -> str:
  """``('inserted', s, k, module, leaf)`` inside :class:`ResNetStages` -> ``NL_{s+1}.{k}.…``
  (the AGW-family references' non-local blocks)."""
  _, stage, index, module, leaf = path
  return f'NL_{stage + 1}.{index}.{_TORCH_NON_LOCAL[module]}.{TORCH_LEAF[leaf]}'


def agw_key(path: Path) -> str | None:
  """A path in :class:`AGW` -> the reference ``embed_net`` key (None: not in the reference)."""
  head, *rest = path
  if head in STEM_PREFIXES:
    return STEM_PREFIXES[head] + stem_key(tuple(rest))
  if head == 'stages':
    if rest[0] == 'layers':
      return _BASE_PREFIX + stages_key(tuple(rest))
    return non_local_key(tuple(rest))
  if head in ('bottleneck', 'classifier'):
    return f'{head}.{TORCH_LEAF[rest[-1]]}'
  if head == 'gem':
    return None  # learnable GeM p: the reference's p is the constant 3
  raise ValueError(f'No reference name for AGW parameter {path}.')


def _describe(model: AGW) -> str:
  """A short description of an AGW for error messages."""
  stages = model.stages
  return (
      f'AGW(num_classes={model.num_classes}, feature_dim={model.feature_dim}, '
      f'blocks per stage {[len(layer) for layer in stages.layers]}, '
      f'non-local after {list(stages.insert_after)})'
  )


def load_pytorch(path_or_state_dict: StateDictSource, model_config: Any) -> AGW:
  """The AGW model of a PyTorch checkpoint of the reference ``embed_net``.

  Builds an :class:`AGW` from ``model_config`` (depth, width, last_stride, non_local,
  non_local_inner, pooling, gem_learnable, dtype; ``pretrained`` is ignored) with as many
  classes as the checkpoint's classifier, and fills every weight and BatchNorm statistic from
  the checkpoint. The reference's unused whole-ResNet modules are skipped (module doc). The
  BNNeck's β, which the reference never trains, must be zero (the model has no β). With
  ``gem_learnable``, p starts at the reference's constant 3.

  Args:
    path_or_state_dict: a ``.t`` / ``.pth`` file as the reference's ``train.py`` writes it
      (``{'net': state_dict, 'cmc', 'mAP', 'mINP', 'epoch'}``), a bare state dict file, or
      an in-memory state dict (see :func:`~vireid_jax.models.pytorch_import.read_state_dict`).
    model_config: the ``config.model`` block.

  Returns:
    The model in training mode (call ``.eval()`` or use
    :func:`vireid_jax.inference.extract_features` for features).

  Raises:
    ValueError: listing every missing, unexpected and mis-shaped key (PyTorch-layout shapes
      of the file and of the model), or a non-zero BNNeck β.
  """
  def complete(model):
    if model.gem.learnable:
      model.gem.p.set_value(jnp.asarray(3.0, jnp.float32))

  return pytorch_import.load_reid_model(
      path_or_state_dict,
      lambda num_classes: build_agw(model_config, num_classes, rngs=nnx.Rngs(0)),
      agw_key,
      method='AGW',
      frozen_bias_keys=('bottleneck.bias',),
      describe=_describe,
      skipped=UNUSED_KEY.match,
      hint=_MODEL_FIELDS_HINT,
      complete=complete,
  )


def to_pytorch_state_dict(model: AGW) -> StateDict:
  """An AGW's weights and BatchNorm statistics under the reference ``embed_net`` keys.

  The keys of the modules it runs plus the BNNeck's zero β, i.e. exactly what
  :func:`load_pytorch` reads; a learnable GeM p is not exported (the reference has none).
  ``num_batches_tracked`` is not written: PyTorch fills it in when loading.

  Returns:
    Key -> float32 NumPy array in PyTorch layout.
  """
  state_dict = pytorch_import.export_state_dict(model, agw_key)
  state_dict['bottleneck.bias'] = np.zeros(model.feature_dim, np.float32)
  return state_dict
