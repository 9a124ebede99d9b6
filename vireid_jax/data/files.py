"""Writing raw dataset folders: the atomic output folder, and image files read and written.

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
  """
  partial_dir = _prepare_output(out_dir, overwrite)
  try:
    yield partial_dir
    _publish(partial_dir, out_dir)
  except BaseException:
    shutil.rmtree(partial_dir, ignore_errors=True)
    raise
