"""AlignGAN reference key map: :class:`~vireid_jax.models.aligngan.AlignGAN` <-> the eight
files the reference's ``Base.save_model`` writes (spec aligngan.md §2, `core/base.py`).

A release is a folder of ``model-{k}_{N}.pkl``, k = 0..7 in the order of ``model_list``
(G_rgb2ir, G_ir2rgb, D_rgb, D_ir, D_rgb_warmup, D_ir_warmup, encoder, embeder; our
:data:`~vireid_jax.models.aligngan.NETWORKS`), N the step it was saved at (250 for the
released model). Each file is an ``nn.DataParallel`` state dict: every key starts with
``module.``. Keys per network (n = residual blocks)::

  Generator   model.0 / .1                conv7×7 / IN       → input_conv / input_norm
              model.{3+3j} / .{4+3j}      down conv / IN     → down_convs[j] / down_norms[j]
              model.{9+b}.model.{0,1,3,4} residual block     → residual_blocks[b].conv1/norm1/conv2/norm2
              model.{9+n+3j} / .{10+n+3j} transposed conv/IN → up_convs[j] / up_norms[j]
              model.{n+15}                conv7×7            → output_conv
  D           model.0, model.{2+3j}, conv_src               → input_conv, hidden_convs[j], score_conv
  D_ir        image_convs.0, image_convs.{2+3j}             → image_input_conv, image_convs[j]
              feature_convs.0, dis_convs.{3j}, conv_src     → feature_conv, joint_convs[j], score_conv
  encoder     resnet_conv.0 / .1, resnet_conv.{4+s}.…       → stem.conv1 / bn1, stages (layer{s+1})
  embeder     classifier0.bottle.0 / .1, classifier0.classifier.0, embedder0
                                          → bottle_linear / bottle_norm, classifier, embedder

Transposed-conv weights ``[in, out, kh, kw]`` load through the generic conv layout
(:class:`~vireid_jax.models.layers.ConvTranspose` stores ``[kh, kw, out, in]``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from flax import nnx

from vireid_jax.models import pytorch_import
from vireid_jax.models.aligngan import NETWORKS, AlignGAN, build_aligngan
from vireid_jax.models.pytorch_import import TORCH_LEAF, Path, StateDict
from vireid_jax.models.resnet_pytorch import stages_key, stem_key

PREFIX = 'module.'   # nn.DataParallel
FILE_PATTERN = re.compile(r'^model-(\d+)_(\d+)\.pkl$')
_HINT = ('Check config.model (encoder depth, width) and config.aligngan (generator_dim, '
         'residual_blocks, discriminator_dim, discriminator_layers, bottle_dim, embedding_dim) '
         'against the release: the reference is ResNet-50, 64, 4, 64, 4, 256, 256 '
         '(configs/aligngan.py).')


def _leaf(leaf: str) -> str:
  return TORCH_LEAF[leaf]


def generator_key(path: Path, num_residual_blocks: int) -> str:
  """A path in a :class:`Generator` -> its ``model.{i}…`` key (without ``module.``)."""
  n = num_residual_blocks
  head, *rest = path
  if head in ('input_conv', 'input_norm', 'output_conv'):
    index = {'input_conv': 0, 'input_norm': 1, 'output_conv': n + 15}[head]
    return f'model.{index}.{_leaf(rest[-1])}'
  if head in ('down_convs', 'down_norms', 'up_convs', 'up_norms'):
    j, leaf = rest
    first = {'down_convs': 3, 'down_norms': 4, 'up_convs': 9 + n, 'up_norms': 10 + n}[head]
    return f'model.{first + 3 * j}.{_leaf(leaf)}'
  if head == 'residual_blocks':
    block, module, leaf = rest
    inner = {'conv1': 0, 'norm1': 1, 'conv2': 3, 'norm2': 4}[module]
    return f'model.{9 + block}.model.{inner}.{_leaf(leaf)}'
  raise ValueError(f'No reference name for Generator parameter {path}.')


def discriminator_key(path: Path) -> str:
  """A path in a :class:`Discriminator` -> its reference key."""
  head, *rest = path
  if head == 'input_conv':
    return f'model.0.{_leaf(rest[-1])}'
  if head == 'hidden_convs':
    j, leaf = rest
    return f'model.{2 + 3 * j}.{_leaf(leaf)}'
  if head == 'score_conv':
    return f'conv_src.{_leaf(rest[-1])}'
  raise ValueError(f'No reference name for Discriminator parameter {path}.')


def conditional_discriminator_key(path: Path) -> str:
  """A path in a :class:`ConditionalDiscriminator` -> its reference key."""
  head, *rest = path
  if head == 'image_input_conv':
    return f'image_convs.0.{_leaf(rest[-1])}'
  if head in ('image_convs', 'joint_convs'):
    j, leaf = rest
    name, index = ('image_convs', 2 + 3 * j) if head == 'image_convs' else ('dis_convs', 3 * j)
    return f'{name}.{index}.{_leaf(leaf)}'
  if head == 'feature_conv':
    return f'feature_convs.0.{_leaf(rest[-1])}'
  if head == 'score_conv':
    return f'conv_src.{_leaf(rest[-1])}'
  raise ValueError(f'No reference name for ConditionalDiscriminator parameter {path}.')


def encoder_key(path: Path) -> str | None:
  """A path in an :class:`Encoder` -> ``resnet_conv.{0,1,4..7}…``."""
  head, *rest = path
  if head == 'stem':
    key = stem_key(tuple(rest))
    return re.sub(r'^conv1\.', 'resnet_conv.0.', re.sub(r'^bn1\.', 'resnet_conv.1.', key))
  if head == 'stages':
    key = stages_key(tuple(rest))
    return None if key is None else re.sub(
        r'^layer(\d)\.', lambda match: f'resnet_conv.{int(match.group(1)) + 3}.', key)
  raise ValueError(f'No reference name for Encoder parameter {path}.')


def head_key(path: Path) -> str:
  """A path in a :class:`Head` -> the reference ``Embeder`` key."""
  module, leaf = path
  name = {'bottle_linear': 'classifier0.bottle.0', 'bottle_norm': 'classifier0.bottle.1',
          'classifier': 'classifier0.classifier.0', 'embedder': 'embedder0'}[module]
  return f'{name}.{_leaf(leaf)}'


def network_key_maps(model: AlignGAN) -> dict[str, Any]:
  """Network name -> the key map of that network (paths inside it -> keys without the
  ``module.`` prefix, which `pytorch_import.read_state_dict` strips)."""
  blocks = model.g_rgb2ir.num_residual_blocks
  return {
      'g_rgb2ir': lambda path: generator_key(path, blocks),
      'g_ir2rgb': lambda path: generator_key(path, blocks),
      'd_rgb': discriminator_key, 'd_ir': conditional_discriminator_key,
      'd_rgb_warmup': discriminator_key, 'd_ir_warmup': discriminator_key,
      'encoder': encoder_key, 'head': head_key,
  }


def release_files(folder: str, index: int = -1) -> dict[str, str]:
  """Network name -> file of the release ``folder`` at step ``index`` (−1: the largest step
  with all eight files).

  Raises:
    FileNotFoundError: no such folder, no complete step, or a file of step ``index`` missing
      (the message names it and the steps present).
  """
  if not os.path.isdir(folder):
    raise FileNotFoundError(f'{folder}: no such folder; an AlignGAN release is a folder of the '
                            'eight files model-{k}_{N}.pkl that the reference saves.')
  present: dict[int, set[int]] = {}
  for name in os.listdir(folder):
    match = FILE_PATTERN.match(name)
    if match:
      present.setdefault(int(match.group(2)), set()).add(int(match.group(1)))
  complete = sorted(step for step, networks in present.items()
                    if networks >= set(range(len(NETWORKS))))
  listing = ', '.join(f'{step} (networks {sorted(networks)})'
                      for step, networks in sorted(present.items())) or 'none'
  if index < 0:
    if not complete:
      raise FileNotFoundError(f'{folder}: no step with all eight files model-0_N.pkl … '
                              f'model-7_N.pkl; steps present: {listing}.')
    index = complete[-1]
  missing = [k for k in range(len(NETWORKS)) if k not in present.get(index, set())]
  if missing:
    names = ', '.join(f'model-{k}_{index}.pkl ({NETWORKS[k]})' for k in missing)
    raise FileNotFoundError(f'{folder}: missing {names}; steps present: {listing}. Set '
                            'config.aligngan.import_index to a complete step (or −1 for the '
                            'latest).')
  return {name: os.path.join(folder, f'model-{k}_{index}.pkl') for k, name in enumerate(NETWORKS)}


def _describe(model: AlignGAN) -> str:
  return (f'AlignGAN(encoder {model.encoder.out_channels} channels, blocks per stage '
          f'{[len(layer) for layer in model.encoder.stages.layers]}, generator residual blocks '
          f'{model.g_rgb2ir.num_residual_blocks}, discriminator layers '
          f'{model.d_rgb.num_layers}, {model.head.classifier.out_features} classes)')


def load_pytorch(path_or_state_dicts: str | os.PathLike | Mapping[str, Any], config: Any,
                 ) -> AlignGAN:
  """The AlignGAN model (all eight networks) of a reference release.

  Args:
    path_or_state_dicts: the release folder (files ``model-{k}_{N}.pkl``, N =
      ``config.aligngan.import_index``, −1 = the latest complete step), or a mapping
      {network name (`NETWORKS`): state dict or file}.
    config: the experiment config (``config.model``: encoder depth, width, dtype;
      ``config.aligngan``: the GAN widths, head sizes and encoder input size).

  Returns:
    The model in training mode; ``vireid_jax.inference.extract_features`` gives ``{"pool"}``.

  Raises:
    FileNotFoundError: a missing file (named, with the steps present).
    ValueError: per file, every missing, unexpected and mis-shaped key.
  """
  if isinstance(path_or_state_dicts, Mapping):
    sources = dict(path_or_state_dicts)
    unknown = sorted(set(sources) - set(NETWORKS))
    absent = [name for name in NETWORKS if name not in sources]
    if unknown or absent:
      raise ValueError(f'AlignGAN state dicts must be keyed by {list(NETWORKS)}; missing '
                       f'{absent}, unknown {unknown}.')
  else:
    sources = release_files(os.fspath(path_or_state_dicts),
                            config.aligngan.get('import_index', -1))
  state_dicts = {name: pytorch_import.read_state_dict(source) for name, source in sources.items()}
  classifier = 'classifier0.classifier.0.weight'
  if classifier not in state_dicts['head']:
    raise ValueError(f'{pytorch_import.describe_source(sources["head"])}: no "{classifier}" key, '
                     'so this is not the reference Embeder (model-7_N.pkl).')
  num_classes = state_dicts['head'][classifier].shape[0]
  model = nnx.eval_shape(lambda: build_aligngan(config, num_classes, rngs=nnx.Rngs(0)))
  key_maps = network_key_maps(model)
  problems = []
  for name in NETWORKS:
    network = getattr(model, name)
    try:
      pytorch_import.assign(
          list(pytorch_import.targets(network, key_maps[name])), state_dicts[name],
          source=pytorch_import.describe_source(sources[name]),
          model_name=f'{name} of {_describe(model)}')
    except ValueError as error:   # every file's problems, not only the first file's
      problems.append(str(error))
  if problems:
    raise ValueError('\n'.join(problems + [_HINT]))
  pytorch_import.require_concrete(model)
  return model


def to_pytorch_state_dict(model: AlignGAN) -> dict[str, StateDict]:
  """{network name: its state dict as the release files hold it (``module.`` keys)};
  `load_pytorch` reads it back, and ``torch.save`` of entry k is the file ``model-{k}_N.pkl``."""
  key_maps = network_key_maps(model)
  return {name: {PREFIX + key: value for key, value in pytorch_import.export_state_dict(
              getattr(model, name), key_maps[name]).items()}
          for name in NETWORKS}
