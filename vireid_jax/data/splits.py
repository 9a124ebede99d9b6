"""Decoded splits and the one definition of the two modalities (NumPy only, no TensorFlow).

Everything after the input pipeline (methods, the training loop, evaluation) speaks of a
modality either by name ("visible", "infrared": the stem an image goes through) or by its
integer code in a split's `modalities` array (0, 1); both come from here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

VISIBLE = 0
INFRARED = 1
# Name of each code, in code order: MODALITY_NAMES[VISIBLE] == "visible".
MODALITY_NAMES = ("visible", "infrared")
# -1: an image without a training label (test splits, an unlabelled target domain).
NO_LABEL = -1


def modality_code(name: str) -> int:
  """"visible" → 0, "infrared" → 1; anything else is a ValueError naming both."""
  if name not in MODALITY_NAMES:
    raise ValueError(f"modality must be one of {MODALITY_NAMES}, got {name!r}.")
  return MODALITY_NAMES.index(name)


@dataclasses.dataclass(frozen=True)
class SplitArrays:
  """One split decoded into memory.

  Attributes:
    images: [N, H, W, 3] uint8.
    labels: [N] int32 training labels (NO_LABEL in test splits and unlabelled target splits).
    person_ids: [N] int32 dataset identities.
    cameras: [N] int32 1-based camera numbers.
    modalities: [N] int32, VISIBLE or INFRARED.
    relative_paths: [N] str, e.g. "cam3/0006/0001.jpg".
  """

  images: np.ndarray
  labels: np.ndarray
  person_ids: np.ndarray
  cameras: np.ndarray
  modalities: np.ndarray
  relative_paths: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)

  def select(self, mask_or_indices) -> "SplitArrays":
    return SplitArrays(**{field.name: getattr(self, field.name)[mask_or_indices]
                          for field in dataclasses.fields(self)})

  def count(self, modality: int) -> int:
    """Number of images of one modality code."""
    return int(np.sum(self.modalities == modality))

  def unlabelled(self) -> "SplitArrays":
    """The same images with every training label NO_LABEL (identities stay in person_ids)."""
    return dataclasses.replace(self, labels=np.full_like(self.labels, NO_LABEL))


@dataclasses.dataclass(frozen=True)
class Splits:
  """What a run trains and evaluates on.

  Attributes:
    train: the labelled training split (the source domain of a domain-adaptation run).
    test: the split evaluation runs on: the training dataset's test split, or with a target
      dataset (`config.data.target`) the target's test split, whatever the method.
    target: the unlabelled target training split (labels NO_LABEL) of a method that trains on
      one (`uses_target`), else None.
    test_dataset: "sysu", "regdb" or "llcm": whose protocols `test` is scored with.
    test_trial: the RegDB trial of `test` (1..10), None for the other datasets.
    test_domain: the synthetic domain `test` was moved into ("noise", "lighting",
      "background": `config.data.target.domain`), "" for none.
  """

  train: SplitArrays
  test: SplitArrays
  target: SplitArrays | None
  test_dataset: str
  test_trial: int | None = None
  test_domain: str = ""

  @property
  def test_name(self) -> str:
    """What `test` is, for people: "regdb", "sysu/noise"."""
    return f"{self.test_dataset}/{self.test_domain}" if self.test_domain else self.test_dataset
