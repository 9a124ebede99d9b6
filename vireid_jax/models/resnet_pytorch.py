"""torchvision ResNet key map: :mod:`vireid_jax.models.resnet` <-> torchvision state dicts.

Published VI-ReID numbers start from torchvision's ImageNet ResNets; the same weights must
give the same features here (spec baseline §4). This module names every variable of a
:class:`Stem`, :class:`ResNetStages` and :class:`ResNet` by its torchvision key and uses the
generic machinery of :mod:`vireid_jax.models.pytorch_import` to move weights:

* :func:`init_backbone_from_torchvision` — ImageNet initialisation of every ResNet stem and
  stage stack of any model (``config.model.pretrained``), as the references'
  ``resnet50(pretrained=True)`` copies do;
* :func:`load_torchvision_resnet` / :func:`to_pytorch_state_dict` — a whole torchvision
  ResNet in and out (round trips, exporting).

The public entry is :mod:`vireid_jax.checkpoints`, which re-exports these.
"""

from __future__ import annotations

import re
from typing import Any

import jax.numpy as jnp
from flax import nnx

from vireid_jax.models import pytorch_import
from vireid_jax.models.pytorch_import import TORCH_LEAF, Path, StateDict, StateDictSource
from vireid_jax.models.resnet import RESNET_CONFIGS, Bottleneck, ResNet, ResNetStages, Stem

# torchvision's classifier, which no backbone initialisation uses.
_HEAD_KEY = re.compile(r'^fc\.')


def stem_key(path: Path) -> str:
  """``('conv1', 'kernel')`` inside a :class:`Stem` -> ``'conv1.weight'``."""
  module, leaf = path
  return f'{module}.{TORCH_LEAF[leaf]}'


def stages_key(path: Path) -> str | None:
  """A path inside :class:`ResNetStages` -> torchvision's ``layer{s+1}.{j}.…`` key.

  Modules inserted between blocks (``inserted``: non-local, MDA, …) have no torchvision
  counterpart: None.
  """
  if path[0] != 'layers':
    return None
  _, stage, block, *modules, leaf = path
  # Projection shortcut: torchvision's downsample Sequential (0: conv, 1: bn).
  modules = [{'conv': '0', 'bn': '1'}[m] if i and modules[i - 1] == 'downsample' else m
             for i, m in enumerate(modules)]
  return '.'.join([f'layer{stage + 1}', str(block), *modules, TORCH_LEAF[leaf]])


def resnet_key(path: Path) -> str:
  """A path in :class:`ResNet` -> its torchvision key."""
  head, *rest = path
  if head == 'stem':
    return stem_key(tuple(rest))
  if head == 'stages':
    return stages_key(tuple(rest))
  if head == 'fc':
    return f'fc.{TORCH_LEAF[rest[-1]]}'
  raise ValueError(f'No torchvision name for ResNet parameter {path}.')


def init_backbone_from_torchvision(model: nnx.Module,
                                   path_or_state_dict: StateDictSource) -> nnx.Module:
  """Initialises every ResNet stem and stage stack of ``model`` from torchvision weights.

  What the references do with ``resnet50(pretrained=True)``: each :class:`Stem` in the model
  (AGW's visible and infrared stems both) gets ``conv1``/``bn1``, each
  :class:`ResNetStages` gets ``layer1``–``layer4``, including the BatchNorm running
  statistics. Inserted modules (non-local blocks), heads and any other parameters keep their
  initialisation; the file's ``fc`` is ignored. Stem width, depth and channel counts must
  match the file (last stride has no weights, so any value works). Nothing here depends on
  the model around the stems and stages.

  Args:
    model: a module containing :class:`Stem` and/or :class:`ResNetStages` instances (an
      :class:`~vireid_jax.models.AGW`, a :class:`ResNet`, a method's model built from them).
      Changed in place.
    path_or_state_dict: a torchvision ResNet state dict (e.g. ``resnet50-19c8e357.pth``), as
      a path or a mapping; never downloaded.

  Returns:
    ``model``, for chaining.

  Raises:
    ValueError: the model has no stem or stages, or keys are missing, unexpected or
      mis-shaped (each listed with both shapes).
  """
  source = pytorch_import.describe_source(path_or_state_dict)
  state_dict = pytorch_import.read_state_dict(path_or_state_dict)
  model_targets = []
  for _, module in nnx.iter_modules(model):
    if isinstance(module, Stem):
      model_targets += pytorch_import.targets(module, stem_key)
    elif isinstance(module, ResNetStages):
      model_targets += pytorch_import.targets(module, stages_key)
  if not model_targets:
    raise ValueError(f'{type(model).__name__} has no ResNet Stem or ResNetStages to initialise.')
  pytorch_import.assign(
      model_targets,
      state_dict,
      source=source,
      model_name=f'the ResNet parts of {type(model).__name__}',
      skipped=_HEAD_KEY.match,
      hint='The file must be a torchvision ResNet of the same depth and width as the model.',
  )
  return model


def _torchvision_architecture(state_dict: StateDict, source: str) -> tuple[int, int, int]:
  """(depth, width, num_classes) of a torchvision ResNet state dict."""
  for key in ('conv1.weight', 'fc.weight'):
    if key not in state_dict:
      raise ValueError(f'{source}: no {key!r} key; not a torchvision ResNet state dict.')
  blocks_per_stage = tuple(
      len({key.split('.')[1] for key in state_dict if key.startswith(f'layer{stage}.')})
      for stage in range(1, 5)
  )
  is_bottleneck = 'layer1.0.conv3.weight' in state_dict
  for depth, (block, counts) in RESNET_CONFIGS.items():
    if counts == blocks_per_stage and (block is Bottleneck) == is_bottleneck:
      return depth, state_dict['conv1.weight'].shape[0], state_dict['fc.weight'].shape[0]
  raise ValueError(
      f'{source}: {blocks_per_stage} blocks per stage '
      f'({"bottleneck" if is_bottleneck else "basic"} blocks) is no torchvision ResNet depth '
      f'({sorted(RESNET_CONFIGS)}).'
  )


def load_torchvision_resnet(
    path_or_state_dict: StateDictSource,
    *,
    last_stride: int = 2,
    dtype: Any = jnp.float32,
) -> ResNet:
  """A whole torchvision ResNet classifier (stem, stages, fc) as a :class:`ResNet`.

  Depth, stem width and number of classes are read from the state dict.

  Args:
    path_or_state_dict: a torchvision ``resnet{18,34,50,101,152}`` state dict.
    last_stride: stride of layer4 (weights do not depend on it).
    dtype: compute dtype (parameters stay float32).

  Returns:
    The model in training mode.
  """
  source = pytorch_import.describe_source(path_or_state_dict)
  state_dict = pytorch_import.read_state_dict(path_or_state_dict)
  depth, width, num_classes = _torchvision_architecture(state_dict, source)
  model = nnx.eval_shape(
      lambda: ResNet(
          depth, num_classes, width=width, last_stride=last_stride, dtype=dtype, rngs=nnx.Rngs(0)
      )
  )
  pytorch_import.assign(list(pytorch_import.targets(model, resnet_key)), state_dict,
                        source=source, model_name=type(model).__name__)
  pytorch_import.require_concrete(model)
  return model


def to_pytorch_state_dict(model: ResNet) -> StateDict:
  """A :class:`ResNet`'s weights and BatchNorm statistics under torchvision's keys and layouts.

  ``num_batches_tracked`` is not written: PyTorch fills it in when loading.

  Returns:
    Key -> float32 NumPy array in PyTorch layout.
  """
  return pytorch_import.export_state_dict(model, resnet_key)
