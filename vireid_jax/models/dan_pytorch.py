"""DAN reference key map: DAN's network (:class:`~vireid_jax.models.agw.AGW` with max pooling,
no non-local blocks) <-> the reference ``embed_net`` of ``fuxianghuang1/DAN`` (``model.py``).

DAN's ``train.py`` saves ``{'net': state_dict, 'cmc', 'mAP', 'mINP', 'epoch'}``. Keys (spec
dan.md §2.1, issue 17 item 9):

  visible_module.visible.conv1 / bn1        → visible_stem.conv1 / bn1
  thermal_module.thermal.conv1 / bn1        → infrared_stem.conv1 / bn1
  share_resnet.backone.{s}.{j}.…            → stages.layers[s][j].… (layer{s+1})
  bottleneck (β frozen at 0) / classifier   → bottleneck / classifier

Skipped: the stems' whole-ResNet modules that never run (layer1–4 and ``fc`` under the two
stem prefixes) and the GVB leftovers ``reduction``, ``bridge``, ``bottleneck2``,
``classifier2`` (dan.md §2.2). Every other missing, unexpected or mis-shaped key is an error
listing each key (an AGW checkpoint, whose trunk is ``base_resnet.base.*``, is refused so). The
file holds no domain discriminator: a DAN run restored from it starts a fresh one.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from flax import nnx

from vireid_jax.models import pytorch_import
from vireid_jax.models.dan import DANNetwork, build_dan_network
from vireid_jax.models.agw_pytorch import STEM_PREFIXES, UNUSED_STEM_MODULES
from vireid_jax.models.pytorch_import import TORCH_LEAF, Path, StateDict, StateDictSource
from vireid_jax.models.resnet_pytorch import stages_key, stem_key

_UNUSED_KEY = re.compile(
    rf'^(?:{UNUSED_STEM_MODULES}|reduction|bridge|bottleneck2|classifier2)\.')
_MODEL_FIELDS_HINT = ('Check config.model against the checkpoint: the reference DAN is depth 50, '
                      "width 64, non_local False, pooling 'max' (configs/dan.py).")


def dan_key(path: Path) -> str:
  """A path in DAN's network -> the reference ``embed_net`` key."""
  head, *rest = path
  if head in STEM_PREFIXES:
    return STEM_PREFIXES[head] + stem_key(tuple(rest))
  if head == 'stages' and rest[0] == 'layers':
    layer, tail = stages_key(tuple(rest)).split('.', 1)   # "layer{s+1}", "{j}.…"
    return f'share_resnet.backone.{int(layer[len("layer"):]) - 1}.{tail}'
  if head in ('bottleneck', 'classifier'):
    return f'{head}.{TORCH_LEAF[rest[-1]]}'
  raise ValueError(f'No reference name for DAN parameter {path}.')


def _describe(model: DANNetwork) -> str:
  return (f'DAN network(num_classes={model.num_classes}, feature_dim={model.feature_dim}, '
          f'blocks per stage {[len(layer) for layer in model.stages.layers]})')


def load_pytorch(path_or_state_dict: StateDictSource, model_config: Any) -> DANNetwork:
  """DAN's network from a checkpoint of the reference ``embed_net``.

  Built from ``model_config`` (``configs/dan.py``'s: depth, width, last stride, max pooling;
  ``pretrained`` ignored) with as many classes as the checkpoint's classifier.

  Args:
    path_or_state_dict: a file as DAN's ``train.py`` writes it, a bare state dict file, or an
      in-memory state dict (`pytorch_import.read_state_dict`).
    model_config: the ``config.model`` block.

  Returns:
    The network in training mode; `vireid_jax.inference.extract_features` gives {"pool", "bn"}.

  Raises:
    ValueError: every missing, unexpected and mis-shaped key, a non-zero BNNeck β, or a
      config.model other than DAN's.
  """
  return pytorch_import.load_reid_model(
      path_or_state_dict,
      lambda num_classes: build_dan_network(model_config, num_classes, rngs=nnx.Rngs(0)),
      dan_key,
      method='DAN',
      frozen_bias_keys=('bottleneck.bias',),
      describe=_describe,
      skipped=_UNUSED_KEY.match,
      hint=_MODEL_FIELDS_HINT)


def to_pytorch_state_dict(model: DANNetwork) -> StateDict:
  """DAN's network under the reference ``embed_net`` keys (those :func:`load_pytorch` reads,
  with the BNNeck's zero β; no GVB leftovers)."""
  state_dict = pytorch_import.export_state_dict(model, dan_key)
  state_dict['bottleneck.bias'] = np.zeros(model.feature_dim, np.float32)
  return state_dict
