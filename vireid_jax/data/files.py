"""Raw dataset folders: the atomic output folder, and image files read, resized and written.

Whatever writes a dataset folder (the synthetic generator, `translation.translate_infrared`)
writes it into a temporary sibling folder that is renamed into place when complete
(`atomic_output`), so an error or Ctrl-C never leaves a folder that later reads as a complete
dataset, and writes its images with fixed encoder settings (`write_image`), so the bytes depend
only on the pixels (and the codec library).

NumPy and PIL only, no TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
from collections.abc import Iterator

import numpy as np
from PIL import Image

from vireid_jax import disk
from vireid_jax.data import layouts

# Fixed JPEG settings (quality, 4:2:0 chroma subsampling, no optimisation pass): the same pixels
# always give the same bytes.
_SAVE_OPTIONS = {"JPEG": dict(quality=95, subsampling=2, optimize=False)}


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str]:
  """Decodes an image file at its own size.

  Args:
    path: the image file.

  Returns:
    (uint8 [H, W, 3] pixels, PIL's name of the file's format, e.g. "JPEG"). A one-channel
    image (some decoders give IR images one) is replicated to three channels, as the builders
    read it.

  Raises:
    layouts.DatasetIntegrityError (a ValueError) naming the file when it cannot be read or
    decoded, truncated files included.
  """
  try:
    with Image.open(path) as image:
      image_format = image.format
      pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
  except (OSError, SyntaxError, ValueError) as error:
    raise layouts.DatasetIntegrityError(
      f"Cannot decode image {path}: {error}. Re-extract the dataset (or restore that file) and "
      "run again.") from error
  return pixels, image_format


# config.data.resize_filter → the PIL filter of the pre-resize. "bicubic" is what torchvision's
# `Resize(size, interpolation=3)` applies to PIL images (AlignGAN, aligngan.md §1.2).
RESIZE_FILTERS = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC}
DEFAULT_RESIZE_FILTER = "lanczos"


def check_resize_filter(resize_filter: str) -> str:
  """Returns `resize_filter` if it is a key of `RESIZE_FILTERS`.

  Raises:
    ValueError: an unknown filter, naming config.data.resize_filter and the known ones.
  """
  if resize_filter not in RESIZE_FILTERS:
    raise ValueError(f"config.data.resize_filter={resize_filter!r} is not a known resize "
                     f"filter; set it to one of {', '.join(map(repr, RESIZE_FILTERS))} "
                     "(\"lanczos\": the default; \"bicubic\": PIL BICUBIC, AlignGAN's).")
  return resize_filter


def load_resized_image(path: str, image_height: int, image_width: int,
                       resize_filter: str = DEFAULT_RESIZE_FILTER) -> np.ndarray:
  """Decodes an image file to [H, W, 3] uint8, resized ignoring the aspect ratio.

  What the TFRecord builders store for every image, and what `vireid_jax.search` feeds a model.

  Args:
    path: the image file.
    image_height, image_width: the stored size.
    resize_filter: a key of `RESIZE_FILTERS`.

  Raises:
    layouts.DatasetIntegrityError (a ValueError) naming the file when it cannot be read or
    decoded, truncated files included: a corrupt file must stop the build rather than become a
    black sample.
  """
  check_resize_filter(resize_filter)
  try:
    with Image.open(path) as image:
      # Some decoders give IR images one channel; the references assume three.
      image = image.convert("RGB")
      image = image.resize((image_width, image_height), RESIZE_FILTERS[resize_filter])
      return np.asarray(image, dtype=np.uint8)
  except (OSError, SyntaxError, ValueError) as error:
    raise layouts.DatasetIntegrityError(
      f"Cannot decode image {path}: {error}. Re-extract the dataset (or restore that file) "
      "and build again.") from error


def write_image(image: np.ndarray, path: str | os.PathLike, image_format: str) -> None:
  """Writes a uint8 [H, W, 3] image in `image_format` (PIL's name: "JPEG", "BMP", "PNG", ...).

  JPEG is written with fixed settings (quality 95, 4:2:0), so the bytes depend only on the
  pixels; the other formats are lossless.
  """
  Image.fromarray(image).save(path, format=image_format,
                              **_SAVE_OPTIONS.get(image_format, {}))


def _prepare_output(out_dir: pathlib.Path, overwrite: bool) -> pathlib.Path:
  """Checks `out_dir` and returns an empty temporary sibling folder to write into."""
  if out_dir.exists():
    if not out_dir.is_dir():
      raise FileExistsError(f"Output path {out_dir} exists and is not a folder.")
    if any(out_dir.iterdir()) and not overwrite:
      raise FileExistsError(
        f"Output folder {out_dir} exists and is not empty; refusing to overwrite it. Delete it, "
        "choose another folder, or pass overwrite=True (--overwrite).")
  out_dir.parent.mkdir(parents=True, exist_ok=True)
  partial_dir = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
  if partial_dir.exists():
    shutil.rmtree(partial_dir)
  partial_dir.mkdir()
  return partial_dir


def _publish(partial_dir: pathlib.Path, out_dir: pathlib.Path) -> None:
  """Moves the finished dataset into place with renames, so it never looks half-written."""
  if out_dir.exists():
    old_dir = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    os.rename(out_dir, old_dir)
    os.rename(partial_dir, out_dir)
    shutil.rmtree(old_dir)
  else:
    os.rename(partial_dir, out_dir)


@contextlib.contextmanager
def atomic_output(out_dir: pathlib.Path, overwrite: bool) -> Iterator[pathlib.Path]:
  """Yields an empty temporary folder; publishes it as `out_dir` if the block completes.

  The temporary folder is `.<name>.partial-<pid>` beside `out_dir` (same file system, so the
  final rename is atomic). An exception (or Ctrl-C) inside the block removes it and leaves
  `out_dir` as it was.

  Raises:
    FileExistsError: `out_dir` is a file, or a non-empty folder and `overwrite` is False.
    vireid_jax.disk.DiskFullError: the disk filled up inside the block (naming `out_dir`).
  """
  partial_dir = _prepare_output(out_dir, overwrite)
  try:
    with disk.reporting_full_disk(out_dir, "a dataset folder",
                                  f"Nothing was published; {out_dir} is as it was"):
      yield partial_dir
      _publish(partial_dir, out_dir)
  except BaseException:
    shutil.rmtree(partial_dir, ignore_errors=True)
    raise
