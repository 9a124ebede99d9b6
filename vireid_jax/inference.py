"""Evaluation-mode features of a re-id model, for any number of images.

``extract_features(model, images, modality)`` is what the reference's ``test.py`` computes
with ``net(input, input, modal)`` under ``net.eval()``: the L2-normalised pooled ("POOL")
and BNNeck ("FC") features of each image through its modality's stem (spec baseline §4.5,
§7.1). It works on an evaluation *view* of the model, so a model in training mode stays in
training mode and its BatchNorm statistics are never touched. Batching and padding are
:func:`vireid_jax.evaluation.extract_features`'s, the same as in evaluation.

``load_model_for_inference(checkpoint)`` is how a trained model is used outside training
(export, search): a workdir's orbax checkpoint with the config it recorded, or a method's
released PyTorch file with its config, as an :class:`InferenceModel` whose ``features`` is the
method's evaluation-mode forward. ``evaluation_feature_fn`` turns it into the one function of
raw pixels that evaluation computes for a modality (normalisation, mirror averaging, the main
feature). Neither needs TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from vireid_jax import evaluation
from vireid_jax import pytree_paths
from vireid_jax.evaluation.features import prepare_images
from vireid_jax.models.layers import l2_normalize


@nnx.jit(static_argnames=('modality',))
def _features(model: nnx.Module, images: jax.Array, modality: str) -> dict[str, jax.Array]:
  return model(**{modality: images}).features()


def extract_features(
    model: nnx.Module,
    images: Any,
    modality: str,
    *,
    batch_size: int = 128,
) -> dict[str, jax.Array]:
  """Evaluation-mode features ``{"pool": [N, D], "bn": [N, D]}`` of ``images``.

  Images are processed in chunks of ``min(batch_size, N)``; the last chunk is padded with
  zero images to the chunk size, so one compiled program serves every chunk. In evaluation
  mode BatchNorm uses running statistics, so every image's features are independent of the
  rest of its chunk and the padding changes nothing.

  Args:
    model: a model whose forward ``model(visible=…)`` / ``model(infrared=…)`` returns
      :class:`~vireid_jax.models.ReidOutputs` (or anything with a ``features()`` method),
      e.g. :class:`~vireid_jax.models.AGW`, in either mode; it is not modified.
    images: ``[N, H, W, 3]``, by dtype: float32 (any floating dtype) images normalised as
      in training (ImageNet mean/std), or uint8 raw pixels, normalised here.
    modality: ``"visible"`` or ``"infrared"``: the stem the images go through.
    batch_size: the most images per forward pass.

  Returns:
    ``{"pool": [N, D], "bn": [N, D]}`` float32 (L2-normalised for AGW).

  Raises:
    ValueError: unknown modality, images not ``[N, H, W, 3]``, or a non-positive batch size.
  """
  images = np.asarray(images)
  count = images.shape[0] if images.ndim else 0
  view = nnx.view(model, use_running_average=True)
  features = evaluation.extract_features(
      functools.partial(_features, view), images, modality,
      batch_size=min(batch_size, count) if count else batch_size)
  return {name: value.astype(jnp.float32) for name, value in features.items()}


# A PyTorch checkpoint is a file (`checkpoints.read_state_dict` reads these); an orbax one is a
# folder (a workdir, its `checkpoints/` folder, or one step's folder).
PYTORCH_SUFFIXES = ('.pth', '.pt', '.t', '.tar', '.npz')
# Data sizes a method's state is built with before the checkpoint's own are read off its shapes
# (`_data_info_of_checkpoint`); any positive values do.
_PROBE_SIZES = {'num_classes': 2, 'num_visible': 2, 'num_infrared': 2, 'steps_per_epoch': 2,
                'num_target_visible': 2, 'num_target_infrared': 2}


@dataclasses.dataclass(frozen=True)
class InferenceModel:
  """A trained model, ready to compute evaluation-mode features.

  Attributes:
    config: the experiment config it was trained with (``model.pretrained`` set to "none":
      every weight comes from the checkpoint).
    features: ``features(images [B, H, W, 3] float32 ImageNet-normalised, modality) ->
      {name: [B, D]}``: the method's evaluation forward, pure (traced by ``jax.jit`` or
      ``jax.export``; the weights are closed over).
    source: the checkpoint read (a step's folder or a PyTorch file), absolute.
    step: the training step of an orbax checkpoint; None for a PyTorch file.
  """

  config: Any
  features: Callable[[jax.Array, str], Mapping[str, jax.Array]]
  source: str
  step: int | None = None

  @property
  def image_size(self) -> tuple[int, int]:
    """(H, W) of the images the model evaluates (``config.data.image_height/width``)."""
    return int(self.config.data.image_height), int(self.config.data.image_width)


def load_model_for_inference(checkpoint: str, config: Any = None) -> InferenceModel:
  """A trained model from a workdir's orbax checkpoint or a method's PyTorch file.

  Args:
    checkpoint: a workdir, its ``checkpoints/`` folder or one step's folder (the newest step
      unless a step's folder is named), or a PyTorch file (``.pth``, ``.pt``, ``.t``, ``.tar``,
      or the torch-free ``.npz`` of ``python -m vireid_jax.checkpoints convert``).
    config: the experiment config (``ml_collections.ConfigDict``). Optional for a workdir: the
      ``config.json`` it recorded is read (from the workdir, or beside the folder named);
      required for a PyTorch file.

  Returns:
    The model (see :class:`InferenceModel`). An orbax checkpoint's data sizes (identities,
    target images) come from the `data_info.json` training wrote beside `config.json`, or,
    in a workdir of an older version, are read off its array shapes: no dataset is needed.

  Raises:
    FileNotFoundError: no such checkpoint, no finalised step in the folder, or no config.
    vireid_jax.training.orbax_checkpoints.CheckpointMismatchError: the checkpoint does not fit
      the config's model (every array named, with both shapes).
    ValueError: a PyTorch file of a method without a loader, or mismatching keys.
  """
  path = os.path.abspath(os.path.expanduser(checkpoint))
  if os.path.isfile(path):
    if not path.endswith(PYTORCH_SUFFIXES):
      raise ValueError(f'{path}: a checkpoint file must be a PyTorch file '
                       f'({", ".join(PYTORCH_SUFFIXES)}); an orbax checkpoint is a folder '
                       '(a workdir, its checkpoints/ folder or one step\'s folder).')
    if config is None:
      raise FileNotFoundError(f'{path} is a PyTorch file, which records no config: give the '
                              'config it was trained with (--config configs/<method>.py:<dataset>).')
    return _load_pytorch(path, _for_inference(config))
  if not os.path.isdir(path):
    raise FileNotFoundError(f'{path} does not exist; give a workdir, its checkpoints/ folder, '
                            'one step\'s folder, or a PyTorch file with its config.')
  return _load_orbax(path, config)


def _for_inference(config: Any) -> Any:
  """A copy of `config` that builds the model without reading ImageNet weights."""
  config = ml_collections.ConfigDict(config.to_dict() if hasattr(config, 'to_dict') else config)
  config.model.pretrained = 'none'
  return config


def _recorded_config(directory: str) -> Any:
  """The config.json of the workdir that holds the checkpoints `directory`."""
  from vireid_jax.training import workdir_config
  # `directory` is <workdir>/checkpoints (or a folder beside it, e.g. the best checkpoint's).
  candidates = [os.path.join(folder, workdir_config.CONFIG_FILE_NAME)
                for folder in (directory, os.path.dirname(directory))]
  for candidate in candidates:
    if os.path.isfile(candidate):
      try:
        with open(candidate, encoding='utf-8') as file:
          return ml_collections.ConfigDict(json.load(file))
      except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f'{candidate} is unreadable ({error}); pass the run\'s config '
                         '(--config) instead.') from error
  folders = ' or '.join(os.path.dirname(candidate) for candidate in candidates)
  raise FileNotFoundError(f'No {workdir_config.CONFIG_FILE_NAME} in {folders}: pass the config '
                          'the checkpoint was trained with (--config).')


def _load_pytorch(path: str, config: Any) -> InferenceModel:
  from vireid_jax import checkpoints
  model = checkpoints.load_pytorch(path, config)
  graphdef, state = nnx.split(nnx.view(model, use_running_average=True))

  def features(images: jax.Array, modality: str) -> Mapping[str, jax.Array]:
    return nnx.merge(graphdef, state)(**{modality: images}).features()

  return InferenceModel(config=config, features=features, source=path)


def _load_orbax(path: str, config: Any) -> InferenceModel:
  from vireid_jax import methods
  from vireid_jax.training import context
  from vireid_jax.training import orbax_checkpoints
  directory, step = orbax_checkpoints.resolve(path)
  config = _for_inference(_recorded_config(directory) if config is None else config)
  method = methods.resolve(config)
  checkpointer = orbax_checkpoints.Checkpointer(directory, read_only=True)
  try:
    step = checkpointer.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'{directory} holds no finalised checkpoint; train first or name '
                              'another workdir.')
    # The sizes training recorded beside config.json; read off the arrays for a workdir of an
    # older version (seconds of tracing the state's construction).
    data_info = context.read_data_info(os.path.dirname(directory))
    if data_info is None:
      data_info = _data_info_of_checkpoint(
          method, _shapes(checkpointer.manager.item_metadata(step)))
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    # Restored straight into the arrays: no random initialisation of a model that is replaced.
    target = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
        jax.eval_shape(lambda: method.create_state(data_info)))
    state = checkpointer.restore(target, step)
  finally:
    checkpointer.close()

  def features(images: jax.Array, modality: str) -> Mapping[str, jax.Array]:
    return method.features(state, images, modality)

  return InferenceModel(config=config, features=features,
                        source=os.path.join(directory, str(step)), step=int(step))


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  return {pytree_paths.path_string(path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _data_info_of_checkpoint(method: Any, saved: dict[str, tuple[int, ...]]) -> Any:
  """The `DataInfo` whose state has the checkpoint's shapes, read off them.

  A method sizes its state by the training data (classifier rows by identities, DAN's
  memories by target images and steps per epoch), which the config does not record. Each size is found by building the
  state's shapes (no arrays) with that size one larger: an axis that grows with it is
  affine in the sizes, so its length in the checkpoint gives the size. Sizes that shape
  nothing keep their probe value; a checkpoint that fits no sizes fails in the restore with
  every mismatched array named.
  """
  from vireid_jax.training import orbax_checkpoints
  from vireid_jax.training.context import DataInfo

  def shapes(sizes: dict[str, int]) -> dict[str, tuple[int, ...]]:
    info = DataInfo(**sizes)
    return _shapes(orbax_checkpoints.checkpoint_items(
        jax.eval_shape(lambda: method.create_state(info))))

  base = shapes(_PROBE_SIZES)
  # slopes[field][(array, axis)]: how much the axis grows per unit of the field.
  slopes: dict[str, dict[tuple[str, int], int]] = {}
  sizes = dict(_PROBE_SIZES)

  def predicted() -> dict[str, tuple[int, ...]]:
    return {name: tuple(length + sum(slopes[field].get((name, axis), 0) *
                                     (sizes[field] - _PROBE_SIZES[field]) for field in slopes)
                        for axis, length in enumerate(shape))
            for name, shape in base.items()}

  for field, probe_value in _PROBE_SIZES.items():
    # Each probe builds the state's shapes once (seconds for a ResNet-50): stop when the sizes
    # found so far fit (most methods size their state by the identities alone).
    if predicted() == saved:
      break
    grown = shapes(dict(_PROBE_SIZES, **{field: probe_value + 1}))
    slopes[field] = {(name, axis): grown[name][axis] - base[name][axis]
                     for name in base for axis in range(len(base[name]))
                     if name in grown and grown[name][axis] != base[name][axis]}
    for (name, axis), slope in slopes[field].items():
      if name not in saved or len(saved[name]) != len(base[name]):
        continue
      # The axis's length at the sizes found so far, this one still at its probe value.
      expected = base[name][axis] + sum(
          slopes[other].get((name, axis), 0) * (sizes[other] - _PROBE_SIZES[other])
          for other in slopes if other != field)
      value, remainder = divmod(saved[name][axis] - expected, slope)
      if not remainder and probe_value + value >= 0:
        sizes[field] = probe_value + value
        break
  return DataInfo(**sizes)


def evaluation_feature_fn(
    model: InferenceModel,
    modality: str,
    feature: str | None = None,
) -> Callable[[jax.Array], jax.Array]:
  """The feature evaluation ranks by, as one function of raw pixels of one modality.

  ``fn(images [B, H, W, 3] uint8 RGB) -> [B, D] float32``: ImageNet normalisation
  (:func:`~vireid_jax.evaluation.features.prepare_images`), the method's evaluation forward
  through ``modality``'s stem, and, with ``config.eval.flip``, the L2-normalised sum with the
  mirrored image's feature, exactly as :func:`vireid_jax.evaluation.extract_features` computes
  it in evaluation. Pure: jit it, export it (``vireid_jax.export``).

  Args:
    model: from :func:`load_model_for_inference`.
    modality: "visible" or "infrared".
    feature: a feature name (``config.eval.features``); default ``config.eval.main_feature``.

  Raises:
    ValueError: unknown modality, or a feature name the model does not return.
  """
  from vireid_jax.data.splits import MODALITY_NAMES
  if modality not in MODALITY_NAMES:
    raise ValueError(f'modality must be one of {MODALITY_NAMES}, got {modality!r}.')
  feature = feature or model.config.eval.main_feature
  height, width = model.image_size
  names = jax.eval_shape(lambda images: model.features(images, modality),
                         jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32))
  if feature not in names:
    raise ValueError(f'feature {feature!r}: the model returns {sorted(names)} '
                     '(config.eval.main_feature / --feature).')
  flip = bool(model.config.eval.get('flip', False))

  def fn(images: jax.Array) -> jax.Array:
    value = model.features(prepare_images(images), modality)[feature]
    if flip:
      mirrored = model.features(prepare_images(images, flip=True), modality)[feature]
      value = l2_normalize(value + mirrored)
    return value.astype(jnp.float32)

  return fn
