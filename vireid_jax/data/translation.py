"""Infrared→visible translated copies of a raw dataset folder, as DJANet trains on.

DJANet (spec djanet.md §1) replaces every SYSU-MM01 infrared image (cam3, cam6; train, val and
test identities) by an IR→VIS rendering of it, offline, with a CycleGAN-Turbo translator, and
trains and evaluates on that folder. Here translation is such an offline transform of a raw
folder: `translate_infrared(src_root, out_root, translate)` writes a copy of `src_root` in the
exact same layout in which every infrared image is `translate(image)`, same name, size and
format, and every other file is copied unchanged. The translator is the caller's: no diffusion
model is ported here (data/README.md says how the authors made theirs).

`colour_transfer(visible_mean, visible_std)` is a deterministic stand-in translator (no
identity colour, per image: the grey level, standardised, rescaled to the visible images'
per-channel mean and std); the synthetic generator's `ir_to_visible="colour_transfer"` applies
it with the statistics of its own visible training images (`visible_channel_statistics`),
through the same per-file step (`translate_image_file`).

Only SYSU-MM01's layout is supported: the reference uses RegDB and LLCM untranslated.

NumPy and PIL only, no TensorFlow.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Callable, Sequence

import numpy as np
import tqdm

from vireid_jax.data import files
from vireid_jax.data import layouts
from vireid_jax.data.layouts.common import list_images_in

# image uint8 [H, W, 3] -> image uint8 [H, W, 3] of the same size.
Translate = Callable[[np.ndarray], np.ndarray]

# ITU-R BT.601 luma weights (R, G, B), PIL's "L" conversion: the grey level of an image. For an
# infrared image (grey replicated to three channels) it is the channel itself.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_SUPPORTED_LAYOUTS = ("sysu",)


def _check_layout(layout: str) -> None:
  if layout not in _SUPPORTED_LAYOUTS:
    raise ValueError(
      f"layout={layout!r}: only 'sysu' (SYSU-MM01) can be translated. DJANet translates only "
      "SYSU-MM01's infrared images; its RegDB and LLCM experiments use the untranslated "
      "datasets (spec djanet.md §1), so train on those folders as they are.")


def infrared_relative_paths(root: str | os.PathLike, layout: str = "sysu") -> list[str]:
  """Every infrared image of a raw SYSU-MM01 folder, '/'-separated relative paths, sorted.

  All `*.jpg` files of `cam3/<id>/` and `cam6/<id>/`, whatever split the id is in (train, val,
  test, or none: SYSU-MM01 has ids seen by one modality only, which no loader reads), as
  `layouts` lists them; other files there are not images of the dataset.

  Raises:
    ValueError: a layout other than "sysu".
    layouts.DatasetNotFoundError: `root` is not a SYSU-MM01 folder.
  """
  _check_layout(layout)
  root = layouts.check_sysu_root(root)
  relative_paths = []
  for camera in layouts.SYSU_INFRARED_CAMERAS:
    camera_dir = root / f"cam{camera}"
    for person_dir in sorted(entry for entry in camera_dir.iterdir() if entry.is_dir()):
      relative_paths += [f"cam{camera}/{person_dir.name}/{file_name}"
                         for file_name in list_images_in(person_dir)]
  return relative_paths


def translate_image_file(source: str | os.PathLike, destination: str | os.PathLike,
                         translate: Translate) -> None:
  """Writes `translate(image of source)` to `destination`, in the source's file format.

  `destination` may be `source` (the image is decoded before anything is written).

  Raises:
    layouts.DatasetIntegrityError: `source` cannot be decoded (names it).
    ValueError: `translate` returned another shape or dtype than uint8 [H, W, 3] of the input
      (names the file and both shapes and dtypes).
  """
  image, image_format = files.read_image(source)
  translated = np.asarray(translate(image))
  if translated.shape != image.shape or translated.dtype != np.uint8:
    raise ValueError(
      f"translate changed {source}: it returned {translated.dtype} {list(translated.shape)} for "
      f"an {image.dtype} {list(image.shape)} image. A translation must keep each image's size "
      "and dtype (resize the translator's output back to the input's size and convert it to "
      "uint8 in [0, 255], as the reference does).")
  files.write_image(translated, destination, image_format)


def translate_infrared(src_root: str | os.PathLike, out_root: str | os.PathLike,
                       translate: Translate, layout: str = "sysu", *,
                       progress: bool = True) -> pathlib.Path:
  """Writes a copy of a raw SYSU-MM01 folder whose infrared images are translated.

  Every infrared image (`infrared_relative_paths`: cam3 and cam6, all ids) becomes
  `translate(image)`, under the same relative path and name, at the same size, in the same
  file format (JPEG at fixed settings, `files.write_image`); every other file (visible images,
  `exp/*_id.txt`, a synthetic manifest, anything else) is copied unchanged. The copy is written
  into a temporary folder beside `out_root` and renamed to `out_root` when complete, so an
  error or Ctrl-C leaves nothing that looks like a dataset.

  Args:
    src_root: the raw SYSU-MM01 folder (data/README.md), e.g. data/SYSU-MM01.
    out_root: the translated copy to create, e.g. data/SYSU-MM01_ir2vis; must not exist or be
      empty.
    translate: image uint8 [H, W, 3] (as the builders decode it: RGB) -> image uint8
      [H, W, 3] of the same size.
    layout: "sysu" only.
    progress: show a progress bar over the infrared images on the console (stderr).

  Returns:
    `out_root` as an absolute path.

  Raises:
    ValueError: a layout other than "sysu"; `translate` changed an image's shape or dtype
      (names the file).
    FileExistsError: `out_root` exists and is not an empty folder.
    layouts.DatasetNotFoundError, layouts.DatasetIntegrityError: `src_root` is not a
      SYSU-MM01 folder, or an image cannot be decoded.
  """
  _check_layout(layout)
  src_root = layouts.check_sysu_root(src_root)
  layouts.read_sysu_splits(src_root)  # malformed split files stop here, before any work
  out_root = pathlib.Path(out_root).absolute()
  if out_root.exists() and (not out_root.is_dir() or any(out_root.iterdir())):
    raise FileExistsError(
      f"Output folder {out_root} exists and is not empty; translate_infrared never writes into "
      "an existing dataset. Delete it or choose another out_root.")
  if out_root == src_root or src_root in out_root.parents:
    raise ValueError(f"out_root {out_root} must be outside src_root {src_root}.")
  infrared = infrared_relative_paths(src_root)
  infrared_set = set(infrared)

  def skip_infrared(folder: str, names: Sequence[str]) -> set[str]:
    relative_folder = pathlib.Path(folder).relative_to(src_root).as_posix()
    return {name for name in names if f"{relative_folder}/{name}" in infrared_set}

  with files.atomic_output(out_root, overwrite=False) as partial_dir:
    shutil.copytree(src_root, partial_dir, ignore=skip_infrared, dirs_exist_ok=True)
    for relative_path in tqdm.tqdm(infrared, desc="Translating infrared images", unit="image",
                                   dynamic_ncols=True, disable=not progress):
      translate_image_file(src_root / relative_path, partial_dir / relative_path, translate)
  return out_root


def visible_channel_statistics(root: str | os.PathLike,
                               layout: str = "sysu") -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std of the pixel values of the visible training images.

  Over every pixel of every visible image (cam1, 2, 4, 5) of the train and val ids (the
  training set, `layouts.sysu_train_records`), decoded at its own size, pooled: the colour
  statistics a stand-in translator may know without looking at test images.

  Returns:
    (mean, std), float64 [3] each (R, G, B, in 0..255); std is the population std.

  Raises:
    ValueError: a layout other than "sysu", or no visible training image.
    layouts.DatasetNotFoundError, layouts.DatasetIntegrityError: see `sysu_train_records`.
  """
  _check_layout(layout)
  visible, _ = layouts.sysu_train_records(root)
  if not visible:
    raise ValueError(f"{root} has no visible image of a train or val id to take the colour "
                     "statistics from.")
  # float64 sums: exact enough for the ~10^9 pixel values of SYSU-MM01.
  total = np.zeros(3)
  total_squares = np.zeros(3)
  num_pixels = 0
  for record in visible:
    pixels = files.read_image(record.path)[0].reshape(-1, 3).astype(np.float64)
    total += pixels.sum(axis=0)
    total_squares += np.square(pixels).sum(axis=0)
    num_pixels += len(pixels)
  mean = total / num_pixels
  std = np.sqrt(np.maximum(total_squares / num_pixels - np.square(mean), 0.0))
  return mean, std


def colour_transfer(visible_mean: Sequence[float],
                    visible_std: Sequence[float]) -> Translate:
  """A deterministic stand-in IR→VIS translator: the grey level, recoloured per channel.

  For an image with grey level g (`LUMA_WEIGHTS`; an infrared image's single channel),
  standardised over the image, channel c of the result is

    clip(mean_c + std_c * (g - mean(g)) / std(g), 0, 255), rounded to uint8,

  so each image takes the visible images' per-channel mean and std while keeping its own
  structure; no identity gets a colour of its own. A constant image (std(g) = 0) becomes
  mean_c everywhere.

  Args:
    visible_mean, visible_std: per-channel (R, G, B) mean and std, e.g. from
      `visible_channel_statistics`.

  Returns:
    translate: uint8 [H, W, 3] -> uint8 [H, W, 3].
  """
  mean = np.asarray(visible_mean, dtype=np.float64)
  std = np.asarray(visible_std, dtype=np.float64)
  if mean.shape != (3,) or std.shape != (3,) or np.any(std < 0):
    raise ValueError(f"colour_transfer needs three channel means and three non-negative stds, "
                     f"got mean {mean.tolist()} and std {std.tolist()}.")

  def translate(image: np.ndarray) -> np.ndarray:
    grey = image.astype(np.float64) @ np.asarray(LUMA_WEIGHTS)     # [H, W]
    grey_std = grey.std()
    standardised = (grey - grey.mean()) / grey_std if grey_std > 0 else np.zeros_like(grey)
    recoloured = mean + std * standardised[..., None]               # [H, W, 3]
    return np.rint(np.clip(recoloured, 0, 255)).astype(np.uint8)

  return translate
