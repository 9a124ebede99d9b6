"""Seeds and random streams shared by every module of the synthetic generator.

Every random quantity of a synthetic dataset comes from a `numpy.random.Generator` seeded from
(seed, stream, keys...) by `stream_rng`, each kind of quantity on its own stream; each layout
adds its own offset to the dataset seed (`layout_seed`).
"""

from __future__ import annotations

import numpy as np

# Random streams: each quantity draws from its own generator, so e.g. changing how camera
# presence is drawn cannot shift the appearance of an identity.
ATTRIBUTE_STREAM = 1
PRESENCE_STREAM = 2
SCENE_STREAM = 3
IMAGE_STREAM = 4
# Random stream of RegDB's ten train/test splits.
TRIAL_STREAM = 5

# Identities and scenes are drawn from the seed plus a per-layout offset, so that datasets of
# different layouts never share people or backgrounds, whatever their seeds: a cross-dataset
# experiment (e.g. SYSU-MM01 -> RegDB) must not meet its training people again in the target.
# SYSU-MM01's offset is 0, so its images are those of earlier versions.
LAYOUT_SEED_OFFSETS = {"sysu": 0, "regdb": 1 << 32, "llcm": 2 << 32}
SEED_LIMIT = 1 << 32


def stream_rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
  """The generator of `stream` for (seed, keys...), e.g. (seed, IMAGE_STREAM, person, camera)."""
  return np.random.default_rng([seed, stream, *keys])


def layout_seed(layout: str, seed: int) -> int:
  """The seed a layout's identities and scenes are drawn from: `seed` plus the layout's offset."""
  return LAYOUT_SEED_OFFSETS[layout] + int(seed)
