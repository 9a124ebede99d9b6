"""MCJA reference key map: :class:`~vireid_jax.models.mcja.MCJA` <-> the reference ``MCJA`` module.

:func:`load_pytorch` reads a state dict as the reference's engine saves it (a bare
``model.state_dict()``; spec mcja.md §3) into a new :class:`MCJA` built from ``config.model``;
:func:`to_pytorch_state_dict` writes those keys back:

  backbone.conv1 / backbone.bn1            → stem.conv1 / stem.bn1
  backbone.layer{s+1}.{j}.…                → stages.layers[s][j].…
  MDA_{s+1}.{k}.sc_conv / ca_conv          → stages.inserted[s][k].mask / aggregation
  MDA_{s+1}.{k}.ca_bn / norm_bn            → stages.inserted[s][k].characteristics_norm /
                                             output_norm
  bn_neck / classifier                     → bottleneck / classifier

``backbone.fc.*`` (the unused ImageNet head of the reference's ResNet) and
``num_batches_tracked`` are skipped; ``bn_neck.bias`` (frozen at 0 by the reference) must be 0.
Every other missing, unexpected or mis-shaped key is an error listing each with both shapes.
The public entry is :func:`vireid_jax.checkpoints.load_pytorch` with ``config.method ==
'mcja'``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from flax import nnx

from vireid_jax.models import pytorch_import
from vireid_jax.models.mcja import MCJA, build_mcja
from vireid_jax.models.pytorch_import import TORCH_LEAF, Path, StateDict, StateDictSource
from vireid_jax.models.resnet_pytorch import stages_key, stem_key

_TORCH_MDA = {
    'mask': 'sc_conv',
    'aggregation': 'ca_conv',
    'characteristics_norm': 'ca_bn',
    'output_norm': 'norm_bn',
}
_UNUSED_KEY = re.compile(r'^backbone\.fc\.')
_MODEL_FIELDS_HINT = (
    'Check config.model against the checkpoint: config.model.mda_m is the number of MDA '
    'masks (2 on SYSU-MM01, 12 on RegDB; the sc_conv weights are [mda_m, C, 1, 1]), '
    'mda_layers the MDAs per stage (the reference: (0, 2, 3, 0)), depth 50 and width 64 the '
    "reference's ResNet-50."
)


def mcja_key(path: Path) -> str:
  """A path in :class:`MCJA` -> the reference ``MCJA`` key."""
  head, *rest = path
  if head == 'stem':
    return 'backbone.' + stem_key(tuple(rest))
  if head == 'stages':
    if rest[0] == 'layers':
      return 'backbone.' + stages_key(tuple(rest))
    _, stage, index, module, leaf = rest  # an inserted MDA
    return f'MDA_{stage + 1}.{index}.{_TORCH_MDA[module]}.{TORCH_LEAF[leaf]}'
  if head == 'bottleneck':
    return f'bn_neck.{TORCH_LEAF[rest[-1]]}'
  if head == 'classifier':
    return f'classifier.{TORCH_LEAF[rest[-1]]}'
  raise ValueError(f'No reference name for MCJA parameter {path}.')


def _describe(model: MCJA) -> str:
  stages = model.stages
  maps = {module.num_maps for inserted in stages.inserted for module in inserted}
  return (f'MCJA(num_classes={model.num_classes}, feature_dim={model.feature_dim}, '
          f'blocks per stage {[len(layer) for layer in stages.layers]}, '
          f'MDA after {list(stages.insert_after)}, mda_m {sorted(maps)})')


def load_pytorch(path_or_state_dict: StateDictSource, model_config: Any) -> MCJA:
  """The MCJA model of a reference checkpoint.

  Builds an :class:`MCJA` from ``model_config`` (depth, width, last_stride, mda_layers, mda_m,
  mda_ratio, dtype; ``pretrained`` is ignored) with as many classes as the checkpoint's
  classifier and fills every weight and BatchNorm statistic.

  Args:
    path_or_state_dict: a ``.pth`` file (the reference's bare state dict), a ``.npz``
      (``python -m vireid_jax.checkpoints convert``) or an in-memory state dict.
    model_config: the ``config.model`` block.

  Returns:
    The model in training mode (``vireid_jax.inference.extract_features`` gives features).

  Raises:
    ValueError: listing every missing, unexpected and mis-shaped key (PyTorch-layout shapes
      of the file and of the model) with a hint naming ``config.model.mda_m``, or a non-zero
      BNNeck β.
  """
  return pytorch_import.load_reid_model(
      path_or_state_dict,
      lambda num_classes: build_mcja(model_config, num_classes, rngs=nnx.Rngs(0)),
      mcja_key,
      method='MCJA',
      frozen_bias_keys=('bn_neck.bias',),
      describe=_describe,
      skipped=_UNUSED_KEY.match,
      hint=_MODEL_FIELDS_HINT,
  )


def to_pytorch_state_dict(model: MCJA) -> StateDict:
  """An MCJA's weights and BatchNorm statistics under the reference keys, plus the BNNeck's
  zero β: exactly what :func:`load_pytorch` reads (``num_batches_tracked`` is not written;
  PyTorch fills it in when loading)."""
  state_dict = pytorch_import.export_state_dict(model, mcja_key)
  state_dict['bn_neck.bias'] = np.zeros(model.feature_dim, np.float32)
  return state_dict
