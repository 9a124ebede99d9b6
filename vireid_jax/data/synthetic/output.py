"""Writing a synthetic dataset, whatever its layout.

Option checks shared by the layouts, image files (JPEG with fixed settings, BMP), the atomic
output folder (files are written into a temporary sibling folder that is renamed into place
when complete; an error or Ctrl-C leaves the target as it was; both from
`vireid_jax.data.files`, which `vireid_jax.data.translation` shares), and the manifest
(`INFO_FILE_NAME`) with the generator options and the counts the dataset must have.
"""

from __future__ import annotations

import inspect
import json
import pathlib
from collections.abc import Callable, Iterable

import numpy as np

from vireid_jax.data import files
from vireid_jax.data import layouts
from vireid_jax.data.synthetic.common import SEED_LIMIT

GENERATOR_VERSION = 1
# Written into the dataset root with the generator options; ignored by the loader.
INFO_FILE_NAME = "synthetic.json"

# Every generator writes its folder through this (`files.atomic_output`).
atomic_output = files.atomic_output


def check_common_options(seed, image_height: int, image_width: int,
                         nir_luminance_mix: float) -> None:
  """Checks the options every layout takes: seed, nominal image size, NIR luminance mix."""
  if not (isinstance(seed, (int, np.integer)) and 0 <= seed < SEED_LIMIT):
    raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
  if not 0.0 <= nir_luminance_mix <= 1.0:
    raise ValueError(f"nir_luminance_mix must be in [0, 1], got {nir_luminance_mix}")
  if image_height < 32 or image_width < 16:
    raise ValueError(f"image size must be at least 32 x 16, got {image_height} x {image_width}")


def check_images_range(name: str, value) -> tuple[int, int]:
  """`value` as (min, max) ints with 1 ≤ min ≤ max; a ValueError naming `name` otherwise."""
  min_images, max_images = (int(n) for n in value)
  if not 1 <= min_images <= max_images:
    raise ValueError(f"{name} must be (min, max) with 1 ≤ min ≤ max, got {tuple(value)}")
  return min_images, max_images


def save_jpeg(image: np.ndarray, path: pathlib.Path) -> None:
  """Writes a [H, W, 3] uint8 image as JPEG (fixed settings: `files.write_image`)."""
  files.write_image(image, path, "JPEG")


def save_bmp(image: np.ndarray, path: pathlib.Path) -> None:
  """Writes a [H, W, 3] uint8 image as BMP."""
  # RegDB ships uncompressed bitmaps.
  files.write_image(image, path, "BMP")


def write_info(folder: pathlib.Path, layout: str, options: dict, num_images: int,
               plan_counts: Callable[..., dict]) -> None:
  """Writes the manifest: the generator options and the counts the dataset must have.

  `plan_counts` is the layout's plan as counts (e.g. `sysu.sysu_counts`); it is called with the
  options it takes (`counts_of_plan`), as `expected_counts` calls it when a manifest is read.
  """
  info = dict(generator="vireid_jax.data.synthetic", version=GENERATOR_VERSION, layout=layout,
              **options, num_images=num_images)
  info["expected_counts"] = counts_of_plan(plan_counts, info)
  (folder / INFO_FILE_NAME).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")


def count_plan(images: Iterable[tuple[int, int, str, int]]) -> dict:
  """`layouts.count_split` of a plan: (person_id, camera, modality, number of images) rows."""
  person_ids, cameras, modalities = [], [], []
  for person_id, camera, modality, num_images in images:
    person_ids += [person_id] * num_images
    cameras += [camera] * num_images
    modalities += [modality] * num_images
  return layouts.count_split(person_ids, cameras, modalities)


def counts_of_plan(plan_counts: Callable[..., dict], info: dict) -> dict:
  """`plan_counts(**options)`, the options taken from `info` (a manifest) by parameter name.

  Lists (JSON has no tuples) are passed as tuples.
  """
  accepted = inspect.signature(plan_counts).parameters
  options = {key: (tuple(value) if isinstance(value, list) else value)
             for key, value in info.items() if key in accepted}
  return plan_counts(**options)
