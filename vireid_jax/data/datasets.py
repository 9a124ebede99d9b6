"""From a config to decoded splits: find (or generate) the raw folder, build TFRecords, load.

`config.data` fields used: `dataset` ("sysu"), `root` (raw folder), `tfds_dir` (where the
TFRecords go), `image_height`, `image_width`, and `synthetic` (a dict of generator options, or
empty for a real dataset).
"""

from __future__ import annotations

import json
import os

from absl import logging
import tensorflow_datasets as tfds

from vireid_jax.data import layouts
from vireid_jax.data import pipeline
from vireid_jax.data import synthetic
from vireid_jax.data.builders import sysu_mm01


def _resolve(path: str) -> str:
  return os.path.abspath(os.path.expanduser(path))


def ensure_raw_dataset(data_config) -> str:
  """Returns the raw dataset folder, generating the synthetic one when it is missing.

  Raises:
    layouts.DatasetNotFoundError: a real dataset's folder is missing or incomplete; the message
      names the folder and points to data/README.md and configs/synthetic.py.
  """
  root = _resolve(data_config.root)
  if data_config.dataset != "sysu":
    raise ValueError(f"config.data.dataset={data_config.dataset!r}: only 'sysu' is available "
                     "so far.")
  if data_config.get("synthetic"):
    options = data_config.synthetic.to_dict()
    if os.path.isdir(root):
      check_synthetic_options(root, options)
    else:
      logging.info("Generating the synthetic SYSU-MM01-layout dataset in %s", root)
      synthetic.generate_sysu(root, **options)
  layouts.check_sysu_root(root)
  return root


def check_synthetic_options(root: str, options: dict) -> None:
  """Refuses to reuse a synthetic dataset generated with other options than the config's."""
  info_path = os.path.join(root, synthetic.INFO_FILE_NAME)
  if not os.path.isfile(info_path):
    raise ValueError(f"{root} exists but holds no {synthetic.INFO_FILE_NAME}, so it was not "
                     "written by the synthetic generator; point config.data.root elsewhere.")
  with open(info_path, encoding="utf-8") as info_file:
    info = json.load(info_file)
  differences = {key: (info.get(key), value) for key, value in options.items()
                 if info.get(key) != (list(value) if isinstance(value, tuple) else value)}
  if differences:
    listed = ", ".join(f"{key}: folder {old!r}, config {new!r}"
                       for key, (old, new) in differences.items())
    raise ValueError(f"The synthetic dataset in {root} was generated with other options "
                     f"({listed}). Delete that folder (and config.data.tfds_dir) to regenerate "
                     "it, or set config.data.root to another folder.")


def build(data_config) -> tfds.core.DatasetBuilder:
  """Builds the TFRecords (once; TFDS writes to a temporary folder and renames when complete)."""
  root = ensure_raw_dataset(data_config)
  builder = sysu_mm01.SysuMm01(
      config=sysu_mm01.config_for_size(data_config.image_height, data_config.image_width),
      data_dir=_resolve(data_config.tfds_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=root))
  return builder


def load(data_config) -> tuple[pipeline.SplitArrays, pipeline.SplitArrays]:
  """(train, test) splits of the configured dataset, decoded into memory."""
  builder = build(data_config)
  return pipeline.load_split(builder, "train"), pipeline.load_split(builder, "test")
