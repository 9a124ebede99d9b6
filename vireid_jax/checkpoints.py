"""PyTorch weights in and out: torchvision ImageNet ResNets and the methods' released checkpoints.

Published VI-ReID numbers start from torchvision's ImageNet ResNets, and the authors release
trained PyTorch checkpoints; the same weights must give the same features here (spec baseline
§4). This module is the public entry; the key maps live beside the models they load:

* :func:`load_pytorch` — a method's released checkpoint into a new model built from the
  config, through the ``load_pytorch`` of the method ``config.method`` names ("agw":
  :func:`vireid_jax.models.agw_pytorch.load_pytorch`, the reference ``embed_net``; "mcja":
  :func:`vireid_jax.models.mcja_pytorch.load_pytorch`);
* :func:`init_backbone_from_torchvision` — ImageNet initialisation of every ResNet stem and
  stage stack of a model (``config.model.pretrained``), as the references'
  ``resnet50(pretrained=True)`` copies do (:mod:`vireid_jax.models.resnet_pytorch`);
* :func:`load_torchvision_resnet` / :func:`to_pytorch_state_dict` — a whole torchvision ResNet
  in, any supported model out (round trips, exporting a trained model);
* :func:`read_state_dict` — a ``.pth`` / ``.t`` file or an in-memory mapping as
  ``{key: NumPy array}`` (:mod:`vireid_jax.models.pytorch_import`, the generic machinery:
  layouts, assignment with shape checks, error messages).

PyTorch is optional (``pip install 'vireid-jax[torch]'``) and imported only when a ``.pth``
file is read; state dicts of NumPy arrays and ``.npz`` files need no torch. Convert once, where
torch is installed::

    python -m vireid_jax.checkpoints convert resnet50-19c8e357.pth resnet50-19c8e357.npz

:func:`check_pretrained` is what a run checks before any work: ``config.model.pretrained`` is
the ImageNet file the paper configs start from (:data:`IMAGENET_RESNET50`), or ``"none"`` to
train from scratch on purpose.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from flax import nnx

from vireid_jax.models import resnet_pytorch
from vireid_jax.models.pytorch_import import StateDict, StateDictSource, read_state_dict
from vireid_jax.models.resnet import ResNet
from vireid_jax.models.resnet_pytorch import init_backbone_from_torchvision
from vireid_jax.models.resnet_pytorch import load_torchvision_resnet

__all__ = [
    'DEFAULT_METHOD',
    'IMAGENET_RESNET50',
    'PretrainedWeightsError',
    'SCRATCH',
    'check_pretrained',
    'convert',
    'pretrained_path',
    'init_backbone_from_torchvision',
    'init_pretrained',
    'load_pytorch',
    'load_torchvision_resnet',
    'read_state_dict',
    'to_pytorch_state_dict',
]

# Where the paper configs expect torchvision's ImageNet ResNet-50, the file every reference
# loads with resnet50(pretrained=True).
IMAGENET_RESNET50 = 'data/pretrained/resnet50-19c8e357.pth'
# config.model.pretrained of a run trained from scratch on purpose.
SCRATCH = 'none'


class PretrainedWeightsError(FileNotFoundError):
  """config.model.pretrained names a file that is not there."""


def pretrained_path(model_config: Any) -> str | None:
  """The ImageNet file ``config.model.pretrained`` names, or None for :data:`SCRATCH`."""
  value = model_config.pretrained
  if value == SCRATCH:
    return None
  if not value:
    raise ValueError(f'config.model.pretrained is empty: give the torchvision ImageNet ResNet '
                     f'file (the paper configs use {IMAGENET_RESNET50}) or {SCRATCH!r} to train '
                     'from scratch.')
  return value


def init_pretrained(model: nnx.Module, model_config: Any) -> nnx.Module:
  """``model`` with the ImageNet weights ``config.model.pretrained`` names in every ResNet stem
  and stage stack (:func:`init_backbone_from_torchvision`), or as it is for :data:`SCRATCH`.
  What every method's ``create_state`` does with its freshly built model."""
  path = pretrained_path(model_config)
  return model if path is None else init_backbone_from_torchvision(model, path)


def check_pretrained(config: Any) -> None:
  """Stops a run before any work when its ImageNet file is missing; warns when it has none.

  Raises:
    PretrainedWeightsError: ``config.model.pretrained`` names a missing file; the message says
      which file to put there and how to train from scratch on purpose.
  """
  path = pretrained_path(config.model)
  if path is None:
    if not config.data.get('synthetic'):
      print(f'warning: config.model.pretrained={SCRATCH}: training from scratch, so the numbers '
            "will not be the paper's (every reference starts from ImageNet weights).",
            flush=True)
    return
  if not os.path.isfile(path):
    raise PretrainedWeightsError(
        f'config.model.pretrained={path}: no such file ({os.path.abspath(path)}). The papers '
        'start both stems and the shared stages from torchvision\'s ImageNet ResNet-50 '
        f'({os.path.basename(IMAGENET_RESNET50)}), and this project never downloads weights: '
        'put that file there (data/README.md), or a .npz made from it with `python -m '
        'vireid_jax.checkpoints convert IN.pth OUT.npz`; or point '
        '--config.model.pretrained at your copy; or train from scratch on purpose with '
        f'--config.model.pretrained={SCRATCH} (the numbers will then not be the paper\'s).')


def convert(source: str, destination: str) -> int:
  """Writes the state dict of a PyTorch file (``.pth``/``.t``) as a torch-free ``.npz``.

  The file appears complete or not at all (written beside it, then renamed).

  Returns:
    The number of arrays written.
  """
  if not destination.endswith('.npz'):
    raise ValueError(f'{destination!r}: the converted file must end in .npz.')
  state_dict = read_state_dict(source)
  directory = os.path.dirname(os.path.abspath(destination))
  os.makedirs(directory, exist_ok=True)
  handle, partial = tempfile.mkstemp(dir=directory, prefix='.partial-', suffix='.npz')
  os.close(handle)
  try:
    np.savez(partial, **state_dict)
    os.replace(partial, destination)
  except BaseException:
    if os.path.exists(partial):
      os.remove(partial)
    raise
  return len(state_dict)


def main(argv: Sequence[str] | None = None) -> int:
  """``python -m vireid_jax.checkpoints convert IN.pth OUT.npz``."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if len(argv) != 3 or argv[0] != 'convert':
    print('usage: python -m vireid_jax.checkpoints convert IN.pth OUT.npz\n'
          '  Saves the state dict of a PyTorch file as a .npz that config.model.pretrained '
          'and load_pytorch read without torch.', file=sys.stderr)
    return 2
  try:
    count = convert(argv[1], argv[2])
  except (OSError, ValueError, ImportError) as error:
    print(f'error: {error}', file=sys.stderr)
    return 1
  print(f'Wrote {count} arrays to {argv[2]}')
  return 0


# The method of a bare `config.model` block, which names none (configs/default.py's default).
DEFAULT_METHOD = 'agw'


def load_pytorch(path_or_state_dict: StateDictSource, config: Any) -> nnx.Module:
  """The model of a method's released PyTorch checkpoint, built from the config.

  Dispatches on ``config.method``: the method class's ``load_pytorch(path_or_state_dict,
  model_config)`` (so a new method brings its loader in its own files); "agw" reads the
  reference ``embed_net`` (:func:`vireid_jax.models.agw_pytorch.load_pytorch`: every weight
  and BatchNorm statistic, the reference's unused whole-ResNet modules skipped, a zero BNNeck
  β required, as many classes as the checkpoint's classifier); "mcja" the state dict the MCJA
  engine saves (:func:`vireid_jax.models.mcja_pytorch.load_pytorch`); "djanet" the reference
  ``embed_net`` for ``config.data``'s image size (:mod:`vireid_jax.models.djanet_pytorch`);
  "aligngan" the release folder of eight files, built from the whole config
  (:mod:`vireid_jax.models.aligngan_pytorch`).

  Args:
    path_or_state_dict: a ``.t`` / ``.pth`` file as the reference's ``train.py`` writes it
      (``{'net': state_dict, 'cmc', 'mAP', 'mINP', 'epoch'}``), a bare state dict file, or
      an in-memory state dict (see :func:`read_state_dict`).
    config: the experiment config (its ``method`` and ``model`` block are read), or the
      ``config.model`` block itself, which loads as :data:`DEFAULT_METHOD`.

  Returns:
    The model in training mode (call ``.eval()`` or use
    :func:`vireid_jax.inference.extract_features` for features).

  Raises:
    ValueError: no loader for the method (the message names the known ones), or, from the
      loader, every missing, unexpected and mis-shaped key (PyTorch-layout shapes of the file
      and of the model).
  """
  if hasattr(config, 'model'):
    method, model_config = getattr(config, 'method', DEFAULT_METHOD), config.model
  else:
    method, model_config = DEFAULT_METHOD, config
  # Imported here: the methods import this module for their ImageNet initialisation.
  from vireid_jax import methods
  method_class = methods.method_class(method)
  loader: Callable[..., nnx.Module] | None = getattr(method_class, 'load_pytorch', None)
  if loader is None:
    raise ValueError(
        f'config.method={method!r} has no PyTorch checkpoint loader (its Method class defines '
        f'no load_pytorch); methods with one: {", ".join(_methods_with_loaders())}.'
    )
  if getattr(method_class, 'load_pytorch_takes_config', False):
    return loader(path_or_state_dict, config)   # a bare config.model loads as AGW, above
  if getattr(method_class, 'load_pytorch_reads_image_size', False):
    if not hasattr(config, 'data'):
      raise ValueError(f'config.method={method!r} builds its model for an input size: pass the '
                       'whole experiment config (its data.image_height/width), not config.model.')
    image_size = (config.data.image_height, config.data.image_width)
    return loader(path_or_state_dict, model_config, image_size=image_size)
  return loader(path_or_state_dict, model_config)


def _methods_with_loaders() -> list[str]:
  from vireid_jax import methods
  return [name for name in methods.available()
          if getattr(methods.method_class(name), 'load_pytorch', None) is not None]


def to_pytorch_state_dict(model: nnx.Module) -> StateDict:
  """The model's weights and BatchNorm statistics under PyTorch names and layouts.

  A :class:`ResNet` gives torchvision's keys; a method's model gives its reference's keys
  through the ``to_pytorch_state_dict`` of the method class whose ``model_type`` it is (AGW:
  the ``embed_net`` keys of the modules it runs plus the BNNeck's zero β; MCJA: the ``MCJA``
  module's), i.e. exactly what :func:`load_pytorch` reads. ``num_batches_tracked`` is not
  written: PyTorch fills it in when loading.

  Args:
    model: a :class:`ResNet` or a method's model (a learnable GeM p is not exported: no
      reference has one).

  Returns:
    Key -> float32 NumPy array in PyTorch layout.
  """
  if isinstance(model, ResNet):
    return resnet_pytorch.to_pytorch_state_dict(model)
  from vireid_jax import methods
  exporters = {}
  for name in methods.available():
    cls = methods.method_class(name)
    exporter = getattr(cls, 'to_pytorch_state_dict', None)
    model_type = getattr(cls, 'model_type', None)
    if exporter is not None and model_type is not None:
      exporters.setdefault(model_type, exporter)
  # The most specific model type first: DAN's network is an AGW with other reference keys.
  for model_type in type(model).__mro__:
    if model_type in exporters:
      return exporters[model_type](model)
  exportable = sorted(model_type.__name__ for model_type in exporters)
  raise TypeError(f'to_pytorch_state_dict supports ResNet and {", ".join(exportable)}, got '
                  f'{type(model).__name__}.')


if __name__ == '__main__':
  sys.exit(main())
