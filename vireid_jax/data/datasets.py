"""From a config to decoded splits: find (or generate) the raw folder, build TFRecords, load.

`config.data` fields used:
* `dataset`: "sysu", "regdb" or "llcm";
* `root`: the raw folder in the dataset's layout (data/README.md);
* `tfds_dir`: where the TFRecords go;
* `image_height`, `image_width`: the stored (pre-resized) image size;
* `trial`: RegDB only, which of its ten train/test splits (1..10);
* `check_counts`: compare the images with the dataset's known counts (default True);
* `synthetic`: generator options for the dataset's layout (`vireid_jax.data.synthetic`), or
  empty for a real dataset;
* `target`: the unlabelled target dataset of domain adaptation (`dataset`, empty for none,
  and its `root`, `tfds_dir`, `trial`, `check_counts`, `synthetic`, plus `domain`: a DAN
  synthetic domain to move its images into); see `load`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

from absl import logging
import ml_collections
import tensorflow_datasets as tfds

from vireid_jax.data import layouts
from vireid_jax.data import pipeline
from vireid_jax.data import synthetic
from vireid_jax.data import target_domains
from vireid_jax.data.splits import SplitArrays
from vireid_jax.data.splits import Splits
from vireid_jax.data.builders import common
from vireid_jax.data.builders import integrity
from vireid_jax.data.builders import llcm
from vireid_jax.data.builders import regdb
from vireid_jax.data.builders import sysu_mm01

_BUILDERS = {"sysu": sysu_mm01.SysuMm01, "regdb": regdb.RegDB, "llcm": llcm.LLCM}
_ROOT_CHECKS = {"sysu": layouts.check_sysu_root, "regdb": layouts.check_regdb_root,
                "llcm": layouts.check_llcm_root}


def _resolve(path: str) -> str:
  return os.path.abspath(os.path.expanduser(path))


def _dataset(data_config) -> str:
  if data_config.dataset not in _BUILDERS:
    raise ValueError(f"config.data.dataset={data_config.dataset!r}: expected one of "
                     f"{', '.join(sorted(_BUILDERS))}.")
  return data_config.dataset


def ensure_raw_dataset(data_config) -> str:
  """Returns the raw dataset folder, generating the synthetic one when it is missing.

  Raises:
    layouts.DatasetNotFoundError: a real dataset's folder is missing or incomplete; the message
      names the folder and points to data/README.md and the synthetic config.
    ValueError: an unknown dataset, or a synthetic folder generated with other options.
  """
  dataset = _dataset(data_config)
  root = _resolve(data_config.root)
  if data_config.get("synthetic"):
    options = data_config.synthetic.to_dict()
    if os.path.isdir(root):
      check_synthetic_options(root, options, layout=dataset)
    else:
      print(f"Generating the synthetic {dataset}-layout dataset in {root} (once)", flush=True)
      synthetic.generate(dataset, root, **options)
  _ROOT_CHECKS[dataset](root)
  return root


def check_synthetic_options(root: str, options: dict, layout: str = "sysu") -> None:
  """Refuses to reuse a synthetic dataset generated in another layout or with other options."""
  info_path = os.path.join(root, synthetic.INFO_FILE_NAME)
  if not os.path.isfile(info_path):
    raise ValueError(f"{root} exists but holds no {synthetic.INFO_FILE_NAME}, so it was not "
                     "written by the synthetic generator; point config.data.root elsewhere.")
  with open(info_path, encoding="utf-8") as info_file:
    info = json.load(info_file)
  if info.get("layout") != layout:
    raise ValueError(f"The synthetic dataset in {root} is in the {info.get('layout')!r} layout, "
                     f"but config.data.dataset={layout!r}; set config.data.root to another "
                     "folder.")
  differences = {key: (info.get(key), value) for key, value in options.items()
                 if info.get(key) != (list(value) if isinstance(value, tuple) else value)}
  if differences:
    listed = ", ".join(f"{key}: folder {old!r}, config {new!r}"
                       for key, (old, new) in differences.items())
    raise ValueError(f"The synthetic dataset in {root} was generated with other options "
                     f"({listed}). Delete that folder (and config.data.tfds_dir) to regenerate "
                     "it, or set config.data.root to another folder.")


def builder_config(data_config) -> common.ImageSizeConfig:
  """The TFDS builder config of `data_config`: image size (and RegDB trial)."""
  dataset = _dataset(data_config)
  check_counts = bool(data_config.get("check_counts", True))
  if dataset == "regdb":
    return regdb.config_for(data_config.get("trial", 1), data_config.image_height,
                            data_config.image_width, check_counts)
  return common.config_for_size(data_config.image_height, data_config.image_width, check_counts)


def build(data_config) -> tfds.core.DatasetBuilder:
  """Builds the TFRecords (once; TFDS writes to a temporary folder and renames when complete).

  Raises:
    layouts.DatasetNotFoundError, layouts.DatasetIntegrityError: the raw folder is missing,
      incomplete, malformed, holds an undecodable image or has other counts than expected; the
      message names the path and what was expected.
  """
  config = builder_config(data_config)  # validates the dataset name and trial first
  root = ensure_raw_dataset(data_config)
  builder = _BUILDERS[data_config.dataset](config=config,
                                           data_dir=_resolve(data_config.tfds_dir))
  if not builder.is_prepared():
    print(f"Writing the TFRecords of {root} to {builder.data_dir} (once)", flush=True)
  # TFDS's own progress bars and prints go to the log, not the console.
  tfds.disable_progress_bar()
  output = io.StringIO()
  with contextlib.redirect_stdout(output):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=root))
  if output.getvalue().strip():
    logging.info("%s", output.getvalue().strip())
  return builder


def load_dataset(data_config) -> tuple[SplitArrays, SplitArrays]:
  """(train, test) splits of one configured dataset, decoded into memory.

  For RegDB both are those of trial `config.data.trial`; every test split holds both
  modalities. The decoded splits are counted again against the dataset's known counts, which
  catches TFRecords built from another raw folder than the configured one.
  """
  builder = build(data_config)
  train, test = pipeline.load_split(builder, "train"), pipeline.load_split(builder, "test")
  if data_config.get("check_counts", True):
    integrity.check_counts(
        data_config.dataset, _resolve(data_config.root),
        {"train": count_arrays(train), "test": count_arrays(test)},
        what=f"TFRecords in {builder.data_dir}",
        hint=f"They were built from other raw data: delete {builder.data_dir} and run again to "
             "rebuild them.")
  return train, test


# The fields of `config.data.target` that replace the source's to describe the target dataset.
TARGET_DATASET_FIELDS = ("dataset", "root", "tfds_dir", "trial", "check_counts", "synthetic")


def target_data_config(data_config) -> ml_collections.ConfigDict:
  """`config.data` with the target dataset's fields (`config.data.target`) in place."""
  target = data_config.target
  config = ml_collections.ConfigDict(data_config.to_dict())
  with config.ignore_type():
    for key in TARGET_DATASET_FIELDS:
      if key in target:
        config[key] = target[key]
  return config


def has_target(data_config) -> bool:
  """Whether `config.data.target` names a target dataset."""
  return bool(data_config.get("target") and data_config.target.get("dataset"))


def load(data_config, *, with_target: bool = False) -> Splits:
  """The run's splits: the training dataset's, and with `with_target` the target's.

  Without a target: train and test of `config.data`. With one (`config.data.target`, for
  domain adaptation): train of `config.data` (the labelled source), the target dataset's
  training split with every label NO_LABEL (identities stay in `person_ids` for diagnostics
  only), and the target's test split, which evaluation then scores with the target dataset's
  protocols. `config.data.target.domain` ("noise", "lighting", "background") moves the
  target's images into that synthetic domain (`target_domains.synthetic_target_domain`), e.g.
  SYSU → SYSU-N.

  Raises:
    ValueError: `with_target` without `config.data.target.dataset`, or a target without
      `with_target` (the method would ignore it).
  """
  if has_target(data_config) != with_target:
    if with_target:
      raise ValueError("This method trains on an unlabelled target stream: set "
                       "config.data.target.dataset (and its root) to the target dataset.")
    raise ValueError(
        f"config.data.target.dataset={data_config.target.dataset!r} is set, but the "
        "configured method trains on no target stream; clear it "
        "(--config.data.target.dataset='') or choose a domain-adaptation method.")
  train, test = load_dataset(data_config)
  if not with_target:
    return Splits(train=train, test=test, target=None, test_dataset=data_config.dataset,
                  test_trial=data_config.trial if data_config.dataset == "regdb" else None)
  target_config = target_data_config(data_config)
  target_train, target_test = load_dataset(target_config)
  domain = data_config.target.get("domain", "")
  if domain:
    target_train, target_test = (
        target_domains.synthetic_target_domain(split, domain, target_config.dataset)
        for split in (target_train, target_test))
  return Splits(train=train, test=target_test, target=target_train.unlabelled(),
                test_dataset=target_config.dataset,
                test_trial=target_config.trial if target_config.dataset == "regdb" else None)


def count_arrays(split: SplitArrays) -> dict:
  """`layouts.count_split` of a decoded split."""
  return layouts.count_split(split.person_ids, split.cameras,
                             [layouts.MODALITIES[m] for m in split.modalities])
