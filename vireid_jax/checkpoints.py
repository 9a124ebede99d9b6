"""PyTorch weights in and out: torchvision ImageNet ResNets and the AGW reference's checkpoints.

Published VI-ReID numbers start from torchvision's ImageNet ResNets, and the authors release
trained PyTorch checkpoints; the same weights must give the same features here (spec baseline
§4). This module maps PyTorch state-dict keys onto the NNX models of
:mod:`vireid_jax.models` and back:

* :func:`load_pytorch` — an AGW checkpoint as the reference's ``train.py`` saves it
  (``torch.save({'net': state_dict, 'cmc': …, 'mAP': …, 'mINP': …, 'epoch': …})``), or a
  bare state dict, into a new :class:`~vireid_jax.models.AGW` built from the config;
* :func:`init_backbone_from_torchvision` — ImageNet initialisation of every ResNet stem and
  stage stack of a model (``config.model.pretrained``), as the reference's
  ``resnet50(pretrained=True)`` copies do;
* :func:`load_torchvision_resnet` / :func:`to_pytorch_state_dict` — a whole torchvision ResNet
  in, any supported model out (round trips, exporting a trained model).

Layouts: a conv weight ``[O, I, kh, kw]`` is a kernel ``[kh, kw, I, O]``; a Linear weight
``[O, I]`` is a kernel ``[I, O]``; BatchNorm ``weight``/``bias``/``running_mean``/
``running_var`` are ``scale``/``bias``/``mean``/``var``; ``num_batches_tracked`` is not kept
(with momentum 0.1 PyTorch never reads it).

The reference's ``visible_module.visible``, ``thermal_module.thermal`` and
``base_resnet.base`` each hold a whole ResNet of which only the stems (visible, thermal) and
layer1–4 (base) run. Their other modules never receive gradients and are skipped: layer1–4
and ``fc`` under the two stem prefixes, ``conv1``/``bn1``/``fc`` under the base prefix
(``fc`` exists only when the ResNet class has one; the reference's ``resnet.py`` has none,
torchvision's has). Every other missing, unexpected or mis-shaped key is an error that lists
each key with both shapes.

PyTorch is optional (``pip install 'vireid-jax[torch]'``) and imported only inside
:func:`read_state_dict` when it reads a file; state dicts of NumPy arrays need no torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vireid_jax.models.agw import AGW, build_agw
from vireid_jax.models.resnet import RESNET_CONFIGS, Bottleneck, ResNet, ResNetStages, Stem

StateDict = dict[str, np.ndarray]
Path = tuple[Any, ...]

# NNX variable name -> PyTorch parameter / buffer name.
_TORCH_LEAF = {
    'kernel': 'weight',  # conv and Linear
    'scale': 'weight',  # BatchNorm γ
    'bias': 'bias',
    'mean': 'running_mean',
    'var': 'running_var',
}
# Non-local block submodules -> the reference's names (``g`` and ``W`` are Sequentials).
_TORCH_NON_LOCAL = {
    'theta': 'theta',
    'phi': 'phi',
    'g': 'g.0',
    'output_conv': 'W.0',
    'output_bn': 'W.1',
}
_AGW_STEM_PREFIXES = {
    'visible_stem': 'visible_module.visible.',
    'infrared_stem': 'thermal_module.thermal.',
}
_AGW_BASE_PREFIX = 'base_resnet.base.'
# Modules of the reference's three whole ResNets that its forward never runs (module doc).
_AGW_UNUSED_KEY = re.compile(
    r'^(?:(?:visible_module\.visible|thermal_module\.thermal)\.(?:layer[1-4]|fc)'
    r'|base_resnet\.base\.(?:conv1|bn1|fc))\.'
)
_TORCHVISION_HEAD_KEY = re.compile(r'^fc\.')
_MODEL_FIELDS_HINT = (
    'Check config.model (depth, width, non_local, non_local_inner) against the checkpoint: '
    'the reference AGW is depth 50, width 64, non_local True; its non-local inner width is 1 '
    "('reference') at the spec's commit and C/2 ('half') in older versions of model.py."
)


# ---------------------------------------------------------------------------------- reading


def _numpy_pickle_globals() -> list[Any]:
  """NumPy objects that the reference's checkpoints pickle next to the weights.

  ``train.py`` stores the CMC curve (an ndarray) and mAP/mINP (NumPy scalars) in the same
  dict as the state dict. ``torch.load(weights_only=True)`` refuses them unless they are
  allow-listed; these are plain data constructors, not arbitrary code. Checkpoints written
  with NumPy 1.x name the same functions ``numpy.core.…`` instead of ``numpy._core.…``.
  """
  # NumPy ≥ 2 moved numpy.core to numpy._core.
  core = np._core if hasattr(np, '_core') else np.core  # pylint: disable=protected-access
  multiarray = core.multiarray
  dtype_classes = [type(np.dtype(name)) for name in ('float64', 'float32', 'int64', 'bool')]
  reconstruct = multiarray._reconstruct  # pylint: disable=protected-access
  return [
      reconstruct,
      (reconstruct, 'numpy.core.multiarray._reconstruct'),
      multiarray.scalar,
      (multiarray.scalar, 'numpy.core.multiarray.scalar'),
      np.ndarray,
      np.dtype,
      *dtype_classes,
  ]


def _to_numpy(value: Any) -> np.ndarray:
  """A copy of a torch tensor (any device, any float dtype) or array-like as a NumPy array.

  Always a copy: ``Tensor.numpy()`` shares the tensor's memory, and JAX on CPU wraps aligned
  NumPy buffers without copying, so without it a PyTorch model updating its running
  statistics in place would rewrite the imported JAX model's.
  """
  if hasattr(value, 'detach'):
    value = value.detach().cpu()
    # NumPy has no bfloat16; every weight ends up float32 in the model anyway.
    value = (value.float() if value.is_floating_point() else value).numpy()
  return np.array(value, copy=True)


def _describe(source: Any) -> str:
  """How error messages name the source: the file's path, or the in-memory state dict."""
  if isinstance(source, (str, os.PathLike)):
    return repr(os.fspath(source))
  return 'the given state dict'


def _load_torch_file(path: str) -> Any:
  """``torch.load`` of ``path`` on the CPU, data only (no pickled code runs)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path!r}: no such checkpoint file.')
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise ImportError(
        f"Reading {path!r} needs PyTorch, an optional dependency: pip install 'vireid-jax[torch]'"
        ' (CPU wheel), or pass a state dict of NumPy arrays instead of a path.'
    ) from error
  try:
    with torch.serialization.safe_globals(_numpy_pickle_globals()):
      return torch.load(path, map_location='cpu', weights_only=True)
  except Exception as error:  # pickle errors have no common base class
    raise ValueError(
        f'{path!r}: cannot be read as a PyTorch checkpoint with torch.load(weights_only=True): '
        f'{error}\nIf the file is a checkpoint you trust, re-save its state dict alone: '
        "torch.save(torch.load(path, weights_only=False)['net'], new_path)."
    ) from error


def read_state_dict(path_or_state_dict: str | os.PathLike | Mapping[str, Any]) -> StateDict:
  """A PyTorch state dict as ``{key: NumPy array}``, from a file or an in-memory mapping.

  Accepts a bare state dict (torchvision's ``.pth`` files), the AGW reference's checkpoint
  dict (its ``'net'`` entry is the state dict) or a ``{'state_dict': …}`` wrapper. A
  ``module.`` prefix on every key (a model saved inside ``nn.DataParallel``) is removed.

  Args:
    path_or_state_dict: path of a ``.pth`` / ``.t`` file, or a mapping of key -> tensor or
      array (torch is needed only to read a file).

  Returns:
    Key -> array in PyTorch layout and the file's dtype.

  Raises:
    FileNotFoundError: the path does not exist.
    ValueError: the file or mapping holds no state dict.
  """
  source = _describe(path_or_state_dict)
  if isinstance(path_or_state_dict, Mapping):
    content = path_or_state_dict
  else:
    content = _load_torch_file(os.fspath(path_or_state_dict))
  if isinstance(content, Mapping):
    for wrapper in ('net', 'state_dict'):
      if isinstance(content.get(wrapper), Mapping):
        content = content[wrapper]
        break
  if not isinstance(content, Mapping) or not content:
    found = 'an empty mapping' if isinstance(content, Mapping) else type(content).__name__
    raise ValueError(
        f'{source}: expected a state dict or a checkpoint dict with a "net" entry, got {found}.'
    )
  not_arrays = sorted(str(key) for key, value in content.items() if not hasattr(value, 'shape'))
  if not_arrays:
    raise ValueError(
        f'{source}: expected a state dict (key -> tensor) or a checkpoint dict with a "net" '
        f'entry; these entries are not tensors: {not_arrays}.'
    )
  keys = [str(key) for key in content]
  prefix = 'module.' if all(key.startswith('module.') for key in keys) else ''
  return {key[len(prefix):]: _to_numpy(value) for key, value in zip(keys, content.values())}


# ------------------------------------------------------------------------- key naming


def _stem_key(path: Path) -> str:
  """``('conv1', 'kernel')`` inside a :class:`Stem` -> ``'conv1.weight'``."""
  module, leaf = path
  return f'{module}.{_TORCH_LEAF[leaf]}'


def _stages_key(path: Path) -> str | None:
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
  return '.'.join([f'layer{stage + 1}', str(block), *modules, _TORCH_LEAF[leaf]])


def _resnet_key(path: Path) -> str:
  """A path in :class:`ResNet` -> its torchvision key."""
  head, *rest = path
  if head == 'stem':
    return _stem_key(tuple(rest))
  if head == 'stages':
    return _stages_key(tuple(rest))
  if head == 'fc':
    return f'fc.{_TORCH_LEAF[rest[-1]]}'
  raise ValueError(f'No torchvision name for ResNet parameter {path}.')


def _agw_key(path: Path) -> str | None:
  """A path in :class:`AGW` -> the reference ``embed_net`` key (None: not in the reference)."""
  head, *rest = path
  if head in _AGW_STEM_PREFIXES:
    return _AGW_STEM_PREFIXES[head] + _stem_key(tuple(rest))
  if head == 'stages':
    if rest[0] == 'layers':
      return _AGW_BASE_PREFIX + _stages_key(tuple(rest))
    _, stage, index, module, leaf = rest  # inserted non-local block
    return f'NL_{stage + 1}.{index}.{_TORCH_NON_LOCAL[module]}.{_TORCH_LEAF[leaf]}'
  if head in ('bottleneck', 'classifier'):
    return f'{head}.{_TORCH_LEAF[rest[-1]]}'
  if head == 'gem':
    return None  # learnable GeM p: the reference's p is the constant 3
  raise ValueError(f'No reference name for AGW parameter {path}.')


def _to_model_layout(array: np.ndarray, leaf: str) -> np.ndarray:
  """PyTorch layout -> NNX layout (conv OIHW -> HWIO, Linear [O, I] -> [I, O])."""
  if leaf == 'kernel' and array.ndim == 4:
    return array.transpose(2, 3, 1, 0)
  if leaf == 'kernel' and array.ndim == 2:
    return array.T
  return array


def _to_torch_layout(array: np.ndarray, leaf: str) -> np.ndarray:
  """NNX layout -> PyTorch layout, the inverse of :func:`_to_model_layout`."""
  if leaf == 'kernel' and array.ndim == 4:
    return array.transpose(3, 2, 0, 1)
  if leaf == 'kernel' and array.ndim == 2:
    return array.T
  return array


def _torch_shape(shape: tuple[int, ...], leaf: str) -> list[int]:
  """A model variable's shape, written in PyTorch layout for error messages."""
  return list(_to_torch_layout(np.empty(shape, np.bool_), leaf).shape)


Target = tuple[str, Path, nnx.Variable]  # (PyTorch key, path in the module, variable)


def _targets(module: nnx.Module, key_of: Callable[[Path], str | None]) -> Iterator[Target]:
  """The module's variables that have a PyTorch counterpart, with their keys."""
  for path, variable in nnx.to_flat_state(nnx.state(module)):
    key = key_of(tuple(path))
    if key is not None:
      yield key, tuple(path), variable


def _is_counter(key: str) -> bool:
  return key.endswith('.num_batches_tracked')


# ------------------------------------------------------------------------------ assigning


def _assign(
    targets: list[Target],
    state_dict: StateDict,
    *,
    source: str,
    model_name: str,
    skipped: Callable[[str], bool] = lambda key: False,
    hint: str = '',
) -> None:
  """Writes ``state_dict`` into the targets' variables, or raises listing every problem.

  Several targets may share a key (both AGW stems take the ImageNet stem). Keys that no
  target uses are an error unless ``skipped(key)`` or a BatchNorm counter. Nothing is written
  unless every key fits.
  """
  expected: dict[str, list[tuple[Path, nnx.Variable]]] = {}
  for key, path, variable in targets:
    expected.setdefault(key, []).append((path, variable))

  missing, misshaped, values = [], [], {}
  for key, owners in expected.items():
    path, variable = owners[0]
    leaf = path[-1]
    model_shape = tuple(variable.get_value().shape)
    if key not in state_dict:
      missing.append(f'  {key}  model {_torch_shape(model_shape, leaf)}')
      continue
    value = _to_model_layout(state_dict[key], leaf)
    if value.shape != model_shape:
      misshaped.append(
          f'  {key}  file {list(state_dict[key].shape)}, model {_torch_shape(model_shape, leaf)}'
      )
      continue
    values[key] = value
  unexpected = [
      f'  {key}  file {list(value.shape)}'
      for key, value in state_dict.items()
      if key not in expected and not skipped(key) and not _is_counter(key)
  ]
  if missing or unexpected or misshaped:
    sections = [
        (f'missing ({len(missing)}, in the model but not in the file)', missing),
        (f'unexpected ({len(unexpected)}, in the file but not in the model)', unexpected),
        (f'mis-shaped ({len(misshaped)}, PyTorch layout)', misshaped),
    ]
    lines = [f'{source} does not fit {model_name}:']
    for title, entries in sections:
      if entries:
        lines += [f' {title}:', *entries]
    if hint:
      lines.append(hint)
    raise ValueError('\n'.join(lines))

  for key, owners in expected.items():
    for _, variable in owners:
      dtype = variable.get_value().dtype
      variable.set_value(jnp.asarray(values[key], dtype=dtype))


def _require_concrete(model: nnx.Module) -> None:
  """Fails if a variable of an abstractly built model was left without a value."""
  unset = [path for path, variable in nnx.to_flat_state(nnx.state(model))
           if isinstance(variable.get_value(), jax.ShapeDtypeStruct)]
  if unset:
    raise AssertionError(f'No value imported for {unset}: the key mapping misses them.')


def _name(model: nnx.Module) -> str:
  """A short description of a model for error messages."""
  if isinstance(model, AGW):
    stages = model.stages
    return (
        f'AGW(num_classes={model.num_classes}, feature_dim={model.feature_dim}, '
        f'blocks per stage {[len(layer) for layer in stages.layers]}, '
        f'non-local after {list(stages.insert_after)})'
    )
  return type(model).__name__


# ----------------------------------------------------------------------------- AGW import


def load_pytorch(path_or_state_dict: str | os.PathLike | Mapping[str, Any], config: Any) -> AGW:
  """The AGW model of a PyTorch checkpoint of the reference ``embed_net``.

  Builds an :class:`AGW` from ``config.model`` (depth, width, last_stride, non_local,
  non_local_inner, pooling, gem_learnable, dtype; ``pretrained`` is ignored) with as many
  classes as the checkpoint's classifier, and fills every weight and BatchNorm statistic from
  the checkpoint. The reference's unused whole-ResNet modules are skipped (module doc). The
  BNNeck's β, which the reference never trains, must be zero (the model has no β). With
  ``gem_learnable``, p starts at the reference's constant 3.

  Args:
    path_or_state_dict: a ``.t`` / ``.pth`` file as the reference's ``train.py`` writes it
      (``{'net': state_dict, 'cmc', 'mAP', 'mINP', 'epoch'}``), a bare state dict file, or
      an in-memory state dict (see :func:`read_state_dict`).
    config: the experiment config (its ``model`` block is read) or the ``config.model``
      block itself.

  Returns:
    The model in training mode (call ``.eval()`` or use
    :func:`vireid_jax.inference.extract_features` for features).

  Raises:
    ValueError: listing every missing, unexpected and mis-shaped key (PyTorch-layout shapes
      of the file and of the model), or a non-zero BNNeck β.
  """
  source = _describe(path_or_state_dict)
  state_dict = read_state_dict(path_or_state_dict)
  model_config = getattr(config, 'model', config)
  if 'classifier.weight' not in state_dict:
    raise ValueError(
        f'{source}: no "classifier.weight" key, so this is not an AGW checkpoint (keys begin '
        f'{sorted(state_dict)[:5]}). For torchvision ImageNet weights use '
        'init_backbone_from_torchvision or load_torchvision_resnet.'
    )
  num_classes = state_dict['classifier.weight'].shape[0]
  frozen_bias = state_dict.pop('bottleneck.bias', None)
  if frozen_bias is not None and np.any(frozen_bias != 0):
    raise ValueError(
        f'{source}: "bottleneck.bias" (the BNNeck β) is non-zero (max |β| = '
        f'{np.abs(frozen_bias).max():.3g}); the reference freezes it at 0 and the model has no β.'
    )
  # Abstract construction: every value is overwritten, so random init would be wasted work.
  model = nnx.eval_shape(lambda: build_agw(model_config, num_classes, rngs=nnx.Rngs(0)))
  _assign(
      list(_targets(model, _agw_key)),
      state_dict,
      source=source,
      model_name=_name(model),
      skipped=_AGW_UNUSED_KEY.match,
      hint=_MODEL_FIELDS_HINT,
  )
  if model.gem.learnable:
    model.gem.p.set_value(jnp.asarray(3.0, jnp.float32))
  _require_concrete(model)
  return model


# ------------------------------------------------------------------- torchvision ResNets


def init_backbone_from_torchvision(
    model: nnx.Module, path_or_state_dict: str | os.PathLike | Mapping[str, Any]
) -> nnx.Module:
  """Initialises every ResNet stem and stage stack of ``model`` from torchvision weights.

  What the references do with ``resnet50(pretrained=True)``: each :class:`Stem` in the model
  (AGW's visible and infrared stems both) gets ``conv1``/``bn1``, each
  :class:`ResNetStages` gets ``layer1``–``layer4``, including the BatchNorm running
  statistics. Inserted modules (non-local blocks), heads and any other parameters keep their
  initialisation; the file's ``fc`` is ignored. Stem width, depth and channel counts must
  match the file (last stride has no weights, so any value works).

  Args:
    model: a module containing :class:`Stem` and/or :class:`ResNetStages` instances (an
      :class:`AGW`, a :class:`ResNet`, a method's model built from them). Changed in place.
    path_or_state_dict: a torchvision ResNet state dict (e.g. ``resnet50-19c8e357.pth``), as
      a path or a mapping; never downloaded.

  Returns:
    ``model``, for chaining.

  Raises:
    ValueError: the model has no stem or stages, or keys are missing, unexpected or
      mis-shaped (each listed with both shapes).
  """
  source = _describe(path_or_state_dict)
  state_dict = read_state_dict(path_or_state_dict)
  targets = []
  for _, module in nnx.iter_modules(model):
    if isinstance(module, Stem):
      targets += _targets(module, _stem_key)
    elif isinstance(module, ResNetStages):
      targets += _targets(module, _stages_key)
  if not targets:
    raise ValueError(f'{type(model).__name__} has no ResNet Stem or ResNetStages to initialise.')
  _assign(
      targets,
      state_dict,
      source=source,
      model_name=f'the ResNet parts of {type(model).__name__}',
      skipped=_TORCHVISION_HEAD_KEY.match,
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
    path_or_state_dict: str | os.PathLike | Mapping[str, Any],
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
  source = _describe(path_or_state_dict)
  state_dict = read_state_dict(path_or_state_dict)
  depth, width, num_classes = _torchvision_architecture(state_dict, source)
  model = nnx.eval_shape(
      lambda: ResNet(
          depth, num_classes, width=width, last_stride=last_stride, dtype=dtype, rngs=nnx.Rngs(0)
      )
  )
  _assign(list(_targets(model, _resnet_key)), state_dict, source=source, model_name=_name(model))
  _require_concrete(model)
  return model


# ------------------------------------------------------------------------------ exporting


def to_pytorch_state_dict(model: nnx.Module) -> StateDict:
  """The model's weights and BatchNorm statistics under PyTorch names and layouts.

  A :class:`ResNet` gives torchvision's keys; an :class:`AGW` gives the reference
  ``embed_net`` keys of the modules it runs (plus the BNNeck's zero β), i.e. exactly what
  :func:`load_pytorch` reads. ``num_batches_tracked`` is not written: PyTorch fills it in
  when loading.

  Args:
    model: a :class:`ResNet` or an :class:`AGW` (a learnable GeM p is not exported: the
      reference has none).

  Returns:
    Key -> float32 NumPy array in PyTorch layout.
  """
  if isinstance(model, AGW):
    key_of = _agw_key
  elif isinstance(model, ResNet):
    key_of = _resnet_key
  else:
    raise TypeError(f'to_pytorch_state_dict supports ResNet and AGW, got {type(model).__name__}.')
  # Copies: np.asarray of a JAX CPU array is a view of the model's buffer.
  state_dict = {
      key: np.array(_to_torch_layout(np.asarray(variable.get_value()), path[-1]), copy=True)
      for key, path, variable in _targets(model, key_of)
  }
  if isinstance(model, AGW):
    state_dict['bottleneck.bias'] = np.zeros(model.feature_dim, np.float32)
  return state_dict
