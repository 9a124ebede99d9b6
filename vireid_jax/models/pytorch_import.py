"""Generic machinery to move PyTorch weights into NNX modules and back.

The key maps live beside the models they load (:mod:`vireid_jax.models.resnet_pytorch`,
:mod:`vireid_jax.models.agw_pytorch`); :mod:`vireid_jax.checkpoints` is the public entry.
This module knows no model: it reads state dicts, converts layouts, and assigns arrays into
a module's variables through a key map ``key_of(path) -> PyTorch key | None``, with shape
checks and errors that list every problem.

Layouts: a conv weight ``[O, I, kh, kw]`` is a kernel ``[kh, kw, I, O]`` (a Conv1d's ``[O, I,
w]`` a ``[w, I, O]``); a Linear weight
``[O, I]`` is a kernel ``[I, O]``; BatchNorm ``weight``/``bias``/``running_mean``/
``running_var`` are ``scale``/``bias``/``mean``/``var`` (:data:`TORCH_LEAF`);
``num_batches_tracked`` is not kept (with momentum 0.1 PyTorch never reads it).

PyTorch is optional (``pip install 'vireid-jax[torch]'``) and imported only inside
:func:`read_state_dict` when it reads a file; state dicts of NumPy arrays need no torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vireid_jax import pytree_paths

StateDict = dict[str, np.ndarray]
# A checkpoint file's path, or a state dict (or checkpoint dict) already in memory.
StateDictSource = str | os.PathLike | Mapping[str, Any]
Path = tuple[Any, ...]
# Module path of a variable -> its PyTorch key, or None where PyTorch has no counterpart.
KeyMap = Callable[[Path], str | None]

# NNX variable name -> PyTorch parameter / buffer name.
TORCH_LEAF = {
    'kernel': 'weight',  # conv and Linear
    'scale': 'weight',  # BatchNorm γ
    'bias': 'bias',
    'mean': 'running_mean',
    'var': 'running_var',
}


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


def describe_source(source: Any) -> str:
  """How error messages name a source: the file's path, or the in-memory state dict."""
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


def _load_npz_file(path: str) -> dict[str, np.ndarray]:
  """A state dict saved by `vireid_jax.checkpoints convert` (NumPy only, no torch needed)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path!r}: no such checkpoint file.')
  try:
    with np.load(path, allow_pickle=False) as arrays:
      return {key: arrays[key] for key in arrays.files}
  except (OSError, ValueError) as error:
    raise ValueError(f'{path!r}: cannot be read as a .npz state dict: {error}') from error


def read_state_dict(path_or_state_dict: StateDictSource) -> StateDict:
  """A PyTorch state dict as ``{key: NumPy array}``, from a file or an in-memory mapping.

  Accepts a bare state dict (torchvision's ``.pth`` files), the AGW reference's checkpoint
  dict (its ``'net'`` entry is the state dict) or a ``{'state_dict': …}`` wrapper. A
  ``module.`` prefix on every key (a model saved inside ``nn.DataParallel``) is removed.

  Args:
    path_or_state_dict: path of a ``.pth`` / ``.t`` file (read with torch), of a ``.npz`` file
      (``python -m vireid_jax.checkpoints convert``; no torch needed), or a mapping of key ->
      tensor or array.

  Returns:
    Key -> array in PyTorch layout and the file's dtype.

  Raises:
    FileNotFoundError: the path does not exist.
    ValueError: the file or mapping holds no state dict.
  """
  source = describe_source(path_or_state_dict)
  if isinstance(path_or_state_dict, Mapping):
    content = path_or_state_dict
  elif os.fspath(path_or_state_dict).endswith('.npz'):
    content = _load_npz_file(os.fspath(path_or_state_dict))
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


# ---------------------------------------------------------------------------------- layouts


def to_model_layout(array: np.ndarray, leaf: str) -> np.ndarray:
  """PyTorch layout -> NNX layout (conv OIHW -> HWIO, Conv1d OIW -> WIO, Linear [O, I] ->
  [I, O])."""
  if leaf == 'kernel' and array.ndim == 4:
    return array.transpose(2, 3, 1, 0)
  if leaf == 'kernel' and array.ndim == 3:
    return array.transpose(2, 1, 0)
  if leaf == 'kernel' and array.ndim == 2:
    return array.T
  return array


def to_torch_layout(array: np.ndarray, leaf: str) -> np.ndarray:
  """NNX layout -> PyTorch layout, the inverse of :func:`to_model_layout`."""
  if leaf == 'kernel' and array.ndim == 4:
    return array.transpose(3, 2, 0, 1)
  if leaf == 'kernel' and array.ndim == 3:
    return array.transpose(2, 1, 0)
  if leaf == 'kernel' and array.ndim == 2:
    return array.T
  return array


def _torch_shape(shape: tuple[int, ...], leaf: str) -> list[int]:
  """A model variable's shape, written in PyTorch layout for error messages."""
  return list(to_torch_layout(np.empty(shape, np.bool_), leaf).shape)


# ------------------------------------------------------------------------------ assigning

Target = tuple[str, Path, nnx.Variable]  # (PyTorch key, path in the module, variable)


def targets(module: nnx.Module, key_of: KeyMap) -> Iterator[Target]:
  """The module's variables that have a PyTorch counterpart, with their keys.

  Args:
    module: any NNX module.
    key_of: the key map, called with each variable's path of plain names
      (``('conv1', 'kernel')``, ``('layers', 0, 1, 'bn2', 'var')``).
  """
  for path, variable in nnx.to_flat_state(nnx.state(module)):
    path = pytree_paths.path_names(path)
    key = key_of(path)
    if key is not None:
      yield key, path, variable


def _is_counter(key: str) -> bool:
  return key.endswith('.num_batches_tracked')


def assign(
    model_targets: list[Target],
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

  Args:
    model_targets: :func:`targets` of the module(s) to fill.
    state_dict: key -> array in PyTorch layout (:func:`read_state_dict`).
    source: the state dict's name in messages (:func:`describe_source`).
    model_name: the model's description in messages.
    skipped: keys of the file that are neither used nor an error.
    hint: a last line for the error message (what to check).

  Raises:
    ValueError: listing every missing, unexpected and mis-shaped key, with the shapes of the
      file and of the model in PyTorch layout.
  """
  expected: dict[str, list[tuple[Path, nnx.Variable]]] = {}
  for key, path, variable in model_targets:
    expected.setdefault(key, []).append((path, variable))

  missing, misshaped, values = [], [], {}
  for key, owners in expected.items():
    path, variable = owners[0]
    leaf = path[-1]
    model_shape = tuple(variable.get_value().shape)
    if key not in state_dict:
      missing.append(f'  {key}  model {_torch_shape(model_shape, leaf)}')
      continue
    value = to_model_layout(state_dict[key], leaf)
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


def load_reid_model(
    path_or_state_dict: StateDictSource,
    build: Callable[[int], nnx.Module],
    key_of: KeyMap,
    *,
    method: str,
    frozen_bias_keys: tuple[str, ...],
    describe: Callable[[nnx.Module], str],
    classifier_key: str = 'classifier.weight',
    skipped: Callable[[str], bool] = lambda key: False,
    hint: str = '',
    complete: Callable[[nnx.Module], None] | None = None,
) -> nnx.Module:
  """A method's re-id model with every weight of its reference's checkpoint.

  The class count is that of the checkpoint's classifier; the BNNecks' β, which the
  references freeze at 0, must be zero (the models have none). The model is built
  abstractly (every value is overwritten, so a random init would be wasted work).

  Args:
    path_or_state_dict: see :func:`read_state_dict`.
    build: ``num_classes -> model`` (called under ``nnx.eval_shape``).
    key_of: the model's key map.
    method: the method's name in messages ("AGW").
    frozen_bias_keys: the reference's BNNeck β keys (("bottleneck.bias",)).
    describe: the model's description in messages.
    classifier_key: the weight whose rows count the classes.
    skipped, hint: see :func:`assign`.
    complete: fills the variables the file has no key for (e.g. a learnable GeM p).

  Raises:
    ValueError: no classifier, a non-zero β, or (from :func:`assign`) every missing,
      unexpected and mis-shaped key.
  """
  source = describe_source(path_or_state_dict)
  state_dict = read_state_dict(path_or_state_dict)
  if classifier_key not in state_dict:
    raise ValueError(
        f'{source}: no "{classifier_key}" key, so this is not an {method} checkpoint (keys '
        f'begin {sorted(state_dict)[:5]}). For torchvision ImageNet weights use '
        'config.model.pretrained (init_backbone_from_torchvision) or load_torchvision_resnet.'
    )
  num_classes = state_dict[classifier_key].shape[0]
  for key in frozen_bias_keys:
    frozen_bias = state_dict.pop(key, None)
    if frozen_bias is not None and np.any(frozen_bias != 0):
      raise ValueError(
          f'{source}: "{key}" (a BNNeck β) is non-zero (max |β| = '
          f'{np.abs(frozen_bias).max():.3g}); the reference freezes it at 0 and the model has '
          'no β.')
  model = nnx.eval_shape(lambda: build(num_classes))
  assign(list(targets(model, key_of)), state_dict, source=source, model_name=describe(model),
         skipped=skipped, hint=hint)
  if complete is not None:
    complete(model)
  require_concrete(model)
  return model


def require_concrete(model: nnx.Module) -> None:
  """Fails if a variable of an abstractly built model was left without a value."""
  unset = [path for path, variable in nnx.to_flat_state(nnx.state(model))
           if isinstance(variable.get_value(), jax.ShapeDtypeStruct)]
  if unset:
    raise AssertionError(f'No value imported for {unset}: the key mapping misses them.')


# ------------------------------------------------------------------------------ exporting


def export_state_dict(model: nnx.Module, key_of: KeyMap) -> StateDict:
  """The model's variables that ``key_of`` names, under those keys in PyTorch layout.

  Returns:
    Key -> NumPy array (a copy: ``np.asarray`` of a JAX CPU array is a view of the model's
    buffer).
  """
  return {
      key: np.array(to_torch_layout(np.asarray(variable.get_value()), path[-1]), copy=True)
      for key, path, variable in targets(model, key_of)
  }
