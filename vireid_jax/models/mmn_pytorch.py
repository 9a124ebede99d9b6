"""MMN reference key map: :class:`~vireid_jax.models.mmn.MMN` <-> the reference ``embed_net``.

MMN's ``train.py`` saves AGW's checkpoint dict (``{'net': state_dict, 'cmc', 'mAP', 'mINP',
'epoch'}``). Keys (spec mmn.md §3):

  visible_module.visible.conv1 / bn1        → visible_stem.conv1 / bn1
  thermal_module.thermal.conv1 / bn1        → infrared_stem.conv1 / bn1
  base_resnet.base.layer{s+1}.{j}.…         → stages.layers[s][j].…
  encode1 / fc1 / bn1, encode2 / fc2 / bn2  → visible_encoder / infrared_encoder .encode/.fc/.bn
  decode                                    → decoder
  bottleneck{k+1} / classifier{k+1}         → bottlenecks[k] / classifiers[k]

As with AGW, the three whole ResNets' modules that never run are skipped (layer1–4 and ``fc``
under the stem prefixes; ``conv1``/``bn1``/``fc`` under the base prefix), and so are the
BatchNorm counters; the four BNNeck β (frozen at 0 by the reference) must be zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import nnx

from vireid_jax.models import pytorch_import
from vireid_jax.models.mmn import MMN, build_mmn
from vireid_jax.models.agw_pytorch import STEM_PREFIXES, UNUSED_KEY
from vireid_jax.models.pytorch_import import TORCH_LEAF, Path, StateDict, StateDictSource
from vireid_jax.models.resnet_pytorch import stages_key, stem_key

_ENCODER_SUFFIX = {'visible_encoder': '1', 'infrared_encoder': '2'}
_MODEL_FIELDS_HINT = ('Check config.model against the checkpoint: the reference MMN is depth 50, '
                      'width 64, num_stripes 4 (configs/mmn.py).')


def mmn_key(path: Path) -> str:
  """A path in :class:`MMN` -> the reference ``embed_net`` key."""
  head, *rest = path
  if head in STEM_PREFIXES:
    return STEM_PREFIXES[head] + stem_key(tuple(rest))
  if head == 'stages':
    return 'base_resnet.base.' + stages_key(tuple(rest))
  if head in _ENCODER_SUFFIX:
    module, leaf = rest
    return f'{module}{_ENCODER_SUFFIX[head]}.{TORCH_LEAF[leaf]}'
  if head == 'decoder':
    return f'decode.{TORCH_LEAF[rest[-1]]}'
  if head in ('bottlenecks', 'classifiers'):
    index, leaf = rest
    return f'{head[:-1]}{index + 1}.{TORCH_LEAF[leaf]}'
  raise ValueError(f'No reference name for MMN parameter {path}.')


def _describe(model: MMN) -> str:
  return (f'MMN(num_classes={model.num_classes}, feature_dim={model.feature_dim}, blocks per '
          f'stage {[len(layer) for layer in model.stages.layers]}, '
          f'{model.num_stripes} stripes)')


def load_pytorch(path_or_state_dict: StateDictSource, model_config: Any) -> MMN:
  """The MMN model of a checkpoint of the reference ``train.py``.

  Args:
    path_or_state_dict: a ``.t`` / ``.pth`` file (``{'net': state_dict, ...}`` or bare), a
      ``.npz`` or an in-memory state dict.
    model_config: the ``config.model`` block (depth, width, last_stride, num_stripes,
      mmg_init, dtype).

  Returns:
    The model in training mode (``vireid_jax.inference.extract_features`` gives its
    "pool", "bn", "pool_middle", "bn_middle" and "bn_sum").

  Raises:
    ValueError: every missing, unexpected and mis-shaped key (both shapes), or a non-zero
      BNNeck β.
  """
  num_stripes = model_config.num_stripes
  return pytorch_import.load_reid_model(
      path_or_state_dict,
      lambda num_classes: build_mmn(model_config, num_classes, rngs=nnx.Rngs(0)),
      mmn_key,
      method='MMN',
      frozen_bias_keys=tuple(f'bottleneck{k + 1}.bias' for k in range(num_stripes)),
      classifier_key='classifier1.weight',
      describe=_describe,
      skipped=UNUSED_KEY.match,
      hint=_MODEL_FIELDS_HINT,
  )


def to_pytorch_state_dict(model: MMN) -> StateDict:
  """An MMN's weights and statistics under the reference keys, plus the four zero BNNeck β."""
  state_dict = pytorch_import.export_state_dict(model, mmn_key)
  for k in range(model.num_stripes):
    state_dict[f'bottleneck{k + 1}.bias'] = np.zeros(model.feature_dim, np.float32)
  return state_dict
