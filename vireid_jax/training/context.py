"""What the loop hands to a method: the sizes it builds its state by, and each epoch's context.

These two types are part of the method contract (`vireid_jax.methods.base` re-exports them and
documents the whole contract). They live here because the loop constructs them, and
`training/` never imports `methods/`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable

from vireid_jax.data.splits import INFRARED
from vireid_jax.data.splits import Splits
from vireid_jax.data.splits import VISIBLE


@dataclasses.dataclass(frozen=True)
class DataInfo:
  """The data sizes a method's `create_state` may size its state by.

  Attributes:
    num_classes: training identities (labels are 0 .. num_classes - 1).
    num_visible, num_infrared: training images per modality.
    num_target_visible, num_target_infrared: target training images per modality (0 without
      a target stream). Target rows carry their position in the target split
      ("target_visible_indices"), 0 .. num_target - 1: a memory sized `[num_target, D]`
      is indexed by them.
    steps_per_epoch: train steps per epoch.
  """

  num_classes: int
  num_visible: int
  num_infrared: int
  steps_per_epoch: int
  num_target_visible: int = 0
  num_target_infrared: int = 0

  @property
  def num_target(self) -> int:
    return self.num_target_visible + self.num_target_infrared

  @classmethod
  def from_splits(cls, splits: Splits, steps_per_epoch: int) -> "DataInfo":
    train, target = splits.train, splits.target
    return cls(num_classes=int(train.labels.max()) + 1, num_visible=train.count(VISIBLE),
               num_infrared=train.count(INFRARED), steps_per_epoch=steps_per_epoch,
               num_target_visible=target.count(VISIBLE) if target is not None else 0,
               num_target_infrared=target.count(INFRARED) if target is not None else 0)


# Beside config.json in a workdir: the sizes the run's state was built with, so that a model
# is rebuilt for inference without its dataset (`vireid_jax.inference`).
DATA_INFO_FILE_NAME = "data_info.json"


def write_data_info(workdir: str, data_info: DataInfo) -> None:
  """Records `data_info` in `<workdir>/data_info.json` (atomically)."""
  from vireid_jax.evaluation import report
  report.write_file_atomically(
      os.path.join(workdir, DATA_INFO_FILE_NAME),
      json.dumps(dataclasses.asdict(data_info), indent=2, sort_keys=True).encode())


def read_data_info(workdir: str) -> DataInfo | None:
  """The `DataInfo` a workdir's training recorded; None when it recorded none (a run of an
  older version) or the file does not hold one."""
  try:
    with open(os.path.join(workdir, DATA_INFO_FILE_NAME), encoding="utf-8") as file:
      return DataInfo(**json.load(file))
  except (OSError, ValueError, TypeError):
    return None


@dataclasses.dataclass
class EpochContext:
  """What a method's `begin_epoch` may use.

  Attributes:
    config: the experiment config.
    splits: the decoded splits (`train`, `test`, `target`; `vireid_jax.data.splits.Splits`).
    mesh: the device mesh.
    features: (state, images [N, H, W, 3] uint8, modality name) → {"pool", "bn", ...}
      [N, D], the method's `features` in evaluation mode, in batches over the mesh.
  """

  config: Any
  splits: Splits
  mesh: Any
  features: Callable[..., dict]

  @property
  def train(self):
    return self.splits.train

  @property
  def target(self):
    return self.splits.target
