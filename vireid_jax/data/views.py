"""What the training views are, for both places that compute them (TensorFlow- and JAX-free).

The references' augmentation settings (random-erasing variants, fills, grey weights, MCJA's
VIMC branches), the augmentation registry (`config.data.augmentation` → the views of each
stream), and the view plan of a batch. `augment` computes the views in tf.data
(`config.data.augment_on = "host"`), `device_augment` in jnp inside the train step ("device");
both read these, and so does the GPU benchmark on machines without TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from vireid_jax.data import sampling
from vireid_jax.data.splits import INFRARED
from vireid_jax.data.splits import VISIBLE

# CAJ's and DJANet's ChannelRandomErasing fill: CIFAR-10 channel means, written as-is into the
# already-normalised tensor (spec baseline §3.3.1, djanet §2.3).
CAJ_ERASING_FILL = (0.4914, 0.4822, 0.4465)
# Grey of CAJ's / DJANet's ChannelAdapGray, computed on the normalised channels.
TENSOR_GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)


class ErasingVariant(NamedTuple):
  """One reference's random erasing (spec baseline §3.2–3.3.1, mcja §1.1 step 6).

  Attributes:
    probability: chance that an image is erased at all.
    area_range: (min, max) fraction of the image area, drawn uniformly.
    aspect_range: (min, max) height/width ratio.
    log_aspect: draw the ratio log-uniformly (torchvision) rather than uniformly (Zhong et
      al.'s `random_erasing.py`, used by the LLCM fork, MMN, CAJ and DJANet).
    max_attempts: tries before giving up (image unchanged).
    fill: per-channel value written into the normalised image.
  """

  probability: float
  area_range: tuple[float, float]
  aspect_range: tuple[float, float]
  log_aspect: bool
  max_attempts: int
  fill: tuple[float, float, float]


ERASING_VARIANTS = {
    # [LLCM] AGW fork and MMN: fill 0, i.e. the ImageNet mean colour (spec baseline §3.2).
    "llcm": ErasingVariant(0.5, (0.02, 0.4), (0.3, 1 / 0.3), False, 100, (0.0, 0.0, 0.0)),
    # CAJ's ChannelRandomErasing, also DJANet's "CRE" (spec baseline §3.3.1, djanet §2.3).
    "caj": ErasingVariant(0.5, (0.02, 0.4), (0.3, 1 / 0.3), False, 100, CAJ_ERASING_FILL),
    # MCJA: torchvision RandomErasing(value=0, scale=(0.02, 0.30)) (spec mcja §1.1 step 6).
    "mcja": ErasingVariant(0.5, (0.02, 0.3), (0.3, 3.3), True, 10, (0.0, 0.0, 0.0)),
}


def check_erasing_variant(variant: str) -> None:
  if variant not in ERASING_VARIANTS:
    raise ValueError(f"Unknown random erasing variant {variant!r}; expected one of "
                     f"{sorted(ERASING_VARIANTS)} (config.data.random_erasing).")


# The four branches of MCJA's RandomChoice (spec mcja §1.1 step 2), in order, and their names
# in `config.data.vimc_branches`.
VIMC_HUE, VIMC_WEIGHTED_GREY, VIMC_CUTMIX, VIMC_SPECTRUM = range(4)
VIMC_BRANCHES = ("hue", "weighted_grey", "channel_cutmix", "spectrum_jitter")


def vimc_branch_switches(branches) -> tuple[bool, bool, bool, bool]:
  """`config.data.vimc_branches` ({name: bool} over `VIMC_BRANCHES`) as four switches."""
  unknown = sorted(set(branches) - set(VIMC_BRANCHES))
  if unknown:
    raise ValueError(f"config.data.vimc_branches: unknown branches {unknown}; the four are "
                     f"{', '.join(VIMC_BRANCHES)}.")
  return tuple(bool(branches.get(name, True)) for name in VIMC_BRANCHES)


# --- The augmentation registry ---------------------------------------------------------------

# config.data.augmentation → the views of each stream modality, as (batch key suffix, recipe
# name); recipes are the names of `augment.RECIPES` and `device_augment.DEVICE_RECIPES`.
# "mixed" is MCJA's stream of both modalities together.
StreamViews = dict  # {VISIBLE | INFRARED | "mixed": ((suffix, recipe name), ...)}
AUGMENTATIONS: dict[str, StreamViews] = {}


def register_augmentation(name: str, views: StreamViews) -> None:
  """Adds an augmentation (views per stream modality) to `AUGMENTATIONS`.

  Its recipes are checked where they are computed (`augment.train_view` on the host,
  `device_augment.DeviceAugmentation` on the device), and for both by the tests.
  """
  if name in AUGMENTATIONS:
    raise ValueError(f"An augmentation named {name!r} is registered already.")
  AUGMENTATIONS[name] = views


def get_augmentation(name: str) -> StreamViews:
  if name not in AUGMENTATIONS:
    raise ValueError(f"config.data.augmentation={name!r} is not one of "
                     f"{sorted(AUGMENTATIONS)} (vireid_jax.data.views.AUGMENTATIONS).")
  return AUGMENTATIONS[name]


register_augmentation("agw", {VISIBLE: (("", "agw"),), INFRARED: (("", "agw"),),
                              "mixed": (("", "agw"),)})
# CAJ: the visible batch twice (plain and channel-exchanged), the infrared once.
register_augmentation("caj", {VISIBLE: (("", "caj_visible"), ("_augmented", "caj_visible_exchange")),
                              INFRARED: (("", "caj_infrared"),)})
# DJANet's four views: V1, V2 (visible), T1, T2 (infrared).
register_augmentation("djanet", {
    VISIBLE: (("", "djanet_visible"), ("_augmented", "caj_visible_exchange")),
    INFRARED: (("", "djanet_infrared"), ("_augmented", "djanet_infrared_scale"))})
register_augmentation("mcja", {VISIBLE: (("", "mcja"),), INFRARED: (("", "mcja"),),
                               "mixed": (("", "mcja"),)})


# --- The views of a batch --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class View:
  """One view the method reads: `recipe` applied to a stream's images with seed `seed_index`.

  Attributes:
    key: its key in the method's batch ("visible", "visible_augmented", ...).
    stream: the stream whose images it augments (`sampling.Stream.name`).
    recipe: a recipe name.
    seed_index: which of the batch's seeds (`views.augmentation_seeds`) it is drawn with.
  """

  key: str
  stream: str
  recipe: str
  seed_index: int


def view_plan(streams, data_config) -> tuple[View, ...]:
  """The views of every batch: `config.data.augmentation`'s recipes for each stream.

  Args:
    streams: the sampler's streams (`sampling.Stream`; name and modality are read).
    data_config: `config.data` (augmentation, sampler).
  """
  augmentation = data_config.get("augmentation", "agw")
  stream_views = get_augmentation(augmentation)
  views = []
  for stream in streams:
    if stream.modality not in stream_views:
      raise ValueError(f"config.data.augmentation={augmentation!r} needs visible and infrared "
                       f"streams; sampler {data_config.sampler!r} mixes the modalities.")
    for suffix, recipe in stream_views[stream.modality]:
      views.append(View(key=stream.name + suffix, stream=stream.name, recipe=recipe,
                        seed_index=len(views)))
  return tuple(views)


def augmentation_seeds(seed: int, epoch: int, num_batches: int,
                       num_views: int = 2) -> np.ndarray:
  """[num_batches, num_views, 2] int32 stateless seeds, a function of (seed, epoch).

  View v of batch b is augmented with seeds[b, v], on the host or on the device; with two
  views (AGW: visible, infrared) these are the seeds the AGW pipeline has always used.
  """
  rng = sampling.epoch_rng(seed, epoch, "augmentation")
  return rng.integers(0, 2**31 - 1, size=(num_batches, num_views, 2),
                      dtype=np.int64).astype(np.int32)
