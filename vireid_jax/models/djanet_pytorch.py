"""DJANet reference key map: :class:`~vireid_jax.models.djanet.DJANet` <-> the reference
``embed_net`` (``model/model.py``; spec djanet.md §4).

DJANet's ``train.py`` saves AGW's checkpoint dict (``{'net': state_dict, 'cmc', 'mAP', 'mINP',
'epoch'}``). Keys:

  visible_module.visible / visible_moduleA.visible .{conv1,bn1}   → visible_stem /
  thermal_module.thermal / thermal_moduleA.thermal .{conv1,bn1}     visible_augmented_stem /
                                                                    infrared_stem /
                                                                    infrared_augmented_stem
  base_resnet.base.layer{s+1}.{j}.…, NL_{s+1}.{k}.…               → stages.layers / .inserted
  layerATT{l}.ATT_narrow                                          → fusions[l].narrow
  layerATT{l}.ATT_narrow1 (l = 0, 1) / ATT_narrow2 (l = 2)        → fusions[l].down
  layerATT{l}.ln_1 / ln_1o                                        → .query_norm / .key_norm
  layerATT{l}.attn.in_proj_weight, in_proj_bias, out_proj         → .attention.in_proj / out_proj
  layerATT{l}.mambablock (l ≤ 2) / mambablock_2 (l = 3)
      .norm1, .mamba.{in_proj, conv1d, x_proj, dt_proj, A_log, D,
      out_proj}, .norm2, .mlp.{fc1, fc2}                          → .mamba.{mamba_norm, mamba.…,
                                                                    ffn_norm, ffn_in, ffn_out}
  layerATT{l}.mamba_broad                                         → .broad
  bottleneck / classifier                                         → bottleneck / classifier

Skipped, because the reference's forward never runs them: layer1–4 under the four stem
prefixes, ``base_resnet.base.{conv1,bn1}``, ``local_conv``, ``feat_bn2d``, each layerATT's
``ATT_broad``, ``mlp`` (the QuickGELU MLP), ``ln_2``, its unused Mamba layer and its unused
down-convolutions; BatchNorm counters. ``bottleneck.bias`` (frozen at 0) must be 0. Every other
missing, unexpected or mis-shaped key is an error listing each with both shapes.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from flax import nnx

from vireid_jax.models import pytorch_import
from vireid_jax.models.agw_pytorch import non_local_key
from vireid_jax.models.djanet import DJANet, build_djanet
from vireid_jax.models.pytorch_import import TORCH_LEAF, Path, StateDict, StateDictSource
from vireid_jax.models.resnet_pytorch import stages_key, stem_key

_STEM_PREFIXES = {
    'visible_stem': 'visible_module.visible.',
    'visible_augmented_stem': 'visible_moduleA.visible.',
    'infrared_stem': 'thermal_module.thermal.',
    'infrared_augmented_stem': 'thermal_moduleA.thermal.',
}
# layerATT{l}'s down-convolution and Mamba layer, by l; the others it builds never run.
_DOWN = ('ATT_narrow1', 'ATT_narrow1', 'ATT_narrow2', None)
_MAMBA_LAYER = ('mambablock', 'mambablock', 'mambablock', 'mambablock_2')
_FUSION_MODULES = {
    'narrow': 'ATT_narrow', 'broad': 'mamba_broad', 'query_norm': 'ln_1', 'key_norm': 'ln_1o',
}
_MAMBA_LAYER_MODULES = {
    'mamba_norm': 'norm1', 'ffn_norm': 'norm2', 'ffn_in': 'mlp.fc1', 'ffn_out': 'mlp.fc2',
}
_UNUSED_KEY = re.compile(
    r'^(?:(?:visible_module|visible_moduleA)\.visible\.(?:layer[1-4]|fc)\.'
    r'|(?:thermal_module|thermal_moduleA)\.thermal\.(?:layer[1-4]|fc)\.'
    r'|base_resnet\.base\.(?:conv1|bn1|fc)\.|local_conv\.|feat_bn2d\.'
    r'|layerATT[0-9]+\.(?:ATT_broad|mlp|ln_2)\.'
    r'|layerATT[0-2]\.(?:mambablock_2|ATT_narrow2)\.|layerATT[01]\.ATT_narrow2\.'
    r'|layerATT2\.ATT_narrow1\.|layerATT3\.(?:mambablock|ATT_narrow1|ATT_narrow2)\.)')
_MODEL_FIELDS_HINT = (
    'Check config.model and the input size against the checkpoint: the reference DJANet is '
    'depth 50, width 64, non_local_inner "half", mamba_d_state 64, mamba_d_conv 4, '
    'mamba_expand 2, built for 384×192 images (config.data.image_height/width: the attention '
    'embeds the 24×12 = 288 positions of the layer3 map).')


def _leaf(leaf: str) -> str:
  return TORCH_LEAF.get(leaf, leaf)   # A_log and D keep their names


def _fusion_key(index: int, path: Path) -> str:
  prefix = f'layerATT{index}.'
  module, *rest = path
  if module in _FUSION_MODULES:
    return f'{prefix}{_FUSION_MODULES[module]}.{_leaf(rest[-1])}'
  if module == 'down':
    return f'{prefix}{_DOWN[index]}.{_leaf(rest[-1])}'
  if module == 'attention':
    projection, leaf = rest
    if projection == 'in_proj':
      return f'{prefix}attn.in_proj_{_leaf(leaf)}'
    return f'{prefix}attn.out_proj.{_leaf(leaf)}'
  if module == 'mamba':
    layer_prefix = prefix + _MAMBA_LAYER[index]
    part, *inner = rest
    if part in _MAMBA_LAYER_MODULES:
      return f'{layer_prefix}.{_MAMBA_LAYER_MODULES[part]}.{_leaf(inner[-1])}'
    return f'{layer_prefix}.mamba.' + '.'.join([*inner[:-1], _leaf(inner[-1])])
  raise ValueError(f'No reference name for DJANet layerATT parameter {path}.')


def djanet_key(path: Path) -> str | None:
  """A path in :class:`DJANet` -> the reference ``embed_net`` key."""
  head, *rest = path
  if head in _STEM_PREFIXES:
    return _STEM_PREFIXES[head] + stem_key(tuple(rest))
  if head == 'stages':
    if rest[0] == 'layers':
      return 'base_resnet.base.' + stages_key(tuple(rest))
    return non_local_key(tuple(rest))
  if head == 'fusions':
    return _fusion_key(rest[0], tuple(rest[1:]))
  if head in ('bottleneck', 'classifier'):
    return f'{head}.{TORCH_LEAF[rest[-1]]}'
  raise ValueError(f'No reference name for DJANet parameter {path}.')


def _describe(model: DJANet) -> str:
  fusion = model.fusions[0]
  return (f'DJANet(num_classes={model.num_classes}, feature_dim={model.feature_dim}, blocks per '
          f'stage {[len(layer) for layer in model.stages.layers]}, input '
          f'{model.image_size[0]}×{model.image_size[1]}: E = {fusion.height}×{fusion.width}, '
          f'r = {fusion.reduced})')


def load_pytorch(path_or_state_dict: StateDictSource, model_config: Any, *,
                 image_size: tuple[int, int]) -> DJANet:
  """The DJANet model of a checkpoint of the reference ``train.py``.

  Args:
    path_or_state_dict: a ``.t`` / ``.pth`` file (``{'net': state_dict, ...}`` or bare), a
      ``.npz`` or an in-memory state dict.
    model_config: the ``config.model`` block.
    image_size: (H, W) the model is built for (the reference's 384 × 192).

  Returns:
    The model in training mode (``vireid_jax.inference.extract_features`` gives "pool", "bn").

  Raises:
    ValueError: every missing, unexpected and mis-shaped key (both shapes) with a hint naming
      ``config.data.image_height/width``, or a non-zero BNNeck β.
  """
  return pytorch_import.load_reid_model(
      path_or_state_dict,
      lambda num_classes: build_djanet(model_config, num_classes, image_size,
                                       rngs=nnx.Rngs(0)),
      djanet_key,
      method='DJANet',
      frozen_bias_keys=('bottleneck.bias',),
      describe=_describe,
      skipped=_UNUSED_KEY.match,
      hint=_MODEL_FIELDS_HINT,
  )


def to_pytorch_state_dict(model: DJANet) -> StateDict:
  """A DJANet's weights and statistics under the reference keys, plus the BNNeck's zero β."""
  state_dict = pytorch_import.export_state_dict(model, djanet_key)
  state_dict['bottleneck.bias'] = np.zeros(model.feature_dim, np.float32)
  return state_dict
