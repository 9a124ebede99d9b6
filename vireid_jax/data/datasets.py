"""From a config to decoded splits: find (or generate) the raw folder, build TFRecords, load.

`config.data` fields used:
* `dataset`: "sysu", "regdb" or "llcm";
* `root`: the raw folder in the dataset's layout (data/README.md);
* `tfds_dir`: where the TFRecords go;
* `image_height`, `image_width`: the stored (pre-resized) image size;
* `resize_filter`: the filter of that resize, "lanczos" (default) or "bicubic" (AlignGAN); a
  bicubic build is a builder config (and folder) of its own, "<H>x<W>_bicubic";
* `trial`: RegDB only, which of its ten train/test splits (1..10);
* `check_counts`: compare the images with the dataset's known counts (default True);
* `synthetic`: generator options for the dataset's layout (`vireid_jax.data.synthetic`), or
  empty for a real dataset;
* `target`: the unlabelled target dataset of domain adaptation (`dataset`, empty for none,
  and its `root`, `tfds_dir`, `trial`, `check_counts`, `synthetic`, plus `domain`: a DAN
  synthetic domain to move its images into); see `load`.

`config.eval` fields used (by `load`, through `evaluation_data_config`): `test_root` and
`test_tfds_dir`, another raw folder of the same dataset (and its TFRecords) whose test split is
evaluated instead of `config.data.root`'s, e.g. the original SYSU-MM01 for a run trained on the
IR→VIS translated copy (DJANet); "" = `config.data`'s.

TFRecords remember the raw folder they were written from (`integrity.check_raw_folder`);
`build` refuses those of another folder, even one with the same counts.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import os
import pathlib

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
# The config fields that name a dataset's raw folder and TFRecords folder, for messages.
DATA_FIELDS = ("config.data.root", "config.data.tfds_dir")
TARGET_FIELDS = ("config.data.target.root", "config.data.target.tfds_dir")


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
  # A manifest written before the generator took an option was generated at its default.
  defaults = {name: parameter.default for name, parameter in
              inspect.signature(synthetic.GENERATORS[layout]).parameters.items()
              if parameter.default is not inspect.Parameter.empty}
  recorded = {key: info.get(key, defaults.get(key)) for key in options}
  differences = {key: (recorded[key], value) for key, value in options.items()
                 if recorded[key] != (list(value) if isinstance(value, tuple) else value)}
  if differences:
    listed = ", ".join(f"{key}: folder {old!r}, config {new!r}"
                       for key, (old, new) in differences.items())
    raise ValueError(f"The synthetic dataset in {root} was generated with other options "
                     f"({listed}). Delete that folder (and config.data.tfds_dir) to regenerate "
                     "it, or set config.data.root to another folder.")


def builder_config(data_config) -> common.ImageSizeConfig:
  """The TFDS builder config of `data_config`: image size, resize filter (and RegDB trial).

  Raises:
    ValueError: an unknown dataset, RegDB trial or `config.data.resize_filter`.
  """
  dataset = _dataset(data_config)
  check_counts = bool(data_config.get("check_counts", True))
  resize_filter = data_config.get("resize_filter", common.DEFAULT_RESIZE_FILTER)
  if dataset == "regdb":
    return regdb.config_for(data_config.get("trial", 1), data_config.image_height,
                            data_config.image_width, check_counts, resize_filter)
  return common.config_for_size(data_config.image_height, data_config.image_width, check_counts,
                                resize_filter)


def build(data_config, *,
          config_fields: tuple[str, str] = DATA_FIELDS) -> tfds.core.DatasetBuilder:
  """Builds the TFRecords (once; TFDS writes to a temporary folder and renames when complete).

  TFRecords already in `data_config.tfds_dir` are used only if they were written from the
  content of `data_config.root` (`integrity.check_raw_folder`: a content fingerprint recorded at
  build time decides, so a moved folder keeps its TFRecords). TFRecords written before builds
  recorded their raw folder are used as before, with a console note: only the counts check of
  `load_dataset` judges them.

  Args:
    data_config: `config.data` (or a config of the same form: the target's, the test's).
    config_fields: the config fields naming the raw and the TFRecords folder, for messages.

  Raises:
    layouts.DatasetNotFoundError, layouts.DatasetIntegrityError: the raw folder is missing,
      incomplete, malformed, holds an undecodable image or has other counts than expected, or
      the TFRecords were written from another raw folder; the message names the paths and what
      was expected.
  """
  config = builder_config(data_config)  # validates the dataset name and trial first
  root = ensure_raw_dataset(data_config)
  builder = _BUILDERS[data_config.dataset](config=config,
                                           data_dir=_resolve(data_config.tfds_dir))
  was_prepared = builder.is_prepared()
  if not was_prepared:
    print(f"Writing the TFRecords of {root} to {builder.data_dir} (once)", flush=True)
  # TFDS's own progress bars and prints go to the log, not the console.
  tfds.disable_progress_bar()
  output = io.StringIO()
  with contextlib.redirect_stdout(output):
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=root))
  if output.getvalue().strip():
    logging.info("%s", output.getvalue().strip())
  # The folder name says the filter; the metadata must agree (builds without the key predate
  # the option and are Lanczos builds).
  recorded_filter = (builder.info.metadata or {}).get(common.RESIZE_FILTER_KEY,
                                                      common.DEFAULT_RESIZE_FILTER)
  if recorded_filter != config.resize_filter:
    raise layouts.DatasetIntegrityError(
        f"The TFRecords in {builder.data_dir} were resized with {recorded_filter!r}, but "
        f"config.data.resize_filter={config.resize_filter!r} and the folder's name say "
        f"{config.resize_filter!r}; delete that folder to rebuild it.")
  # A build just made records this very folder; older TFRecords must show they are its.
  if was_prepared:
    root_field, tfds_dir_field = config_fields
    recorded = (builder.info.metadata or {}).get(integrity.RAW_FOLDER_KEY)
    if not integrity.check_raw_folder(
        recorded, root, builder.split_records(pathlib.Path(root)), str(builder.data_dir),
        root_field=root_field, tfds_dir_field=tfds_dir_field):
      print(f"Note: the TFRecords in {builder.data_dir} do not record which raw folder they were "
            f"written from (an older vireid-jax wrote them); only their counts are checked "
            f"against {root}. Delete that folder to rebuild them with the record.", flush=True)
  return builder


def load_splits(data_config, names: tuple[str, ...] = ("train", "test"), *,
                config_fields: tuple[str, str] = DATA_FIELDS) -> dict[str, SplitArrays]:
  """Splits `names` of one configured dataset, decoded into memory (the others are not).

  For RegDB they are those of trial `config.data.trial`; every test split holds both
  modalities. The decoded splits are counted again against the dataset's known counts, which
  catches TFRecords built from another raw folder than the configured one.

  Args:
    data_config: `config.data` (or a config of the same form).
    names: which splits, of "train" and "test".
    config_fields: see `build`.

  Returns:
    {name: split}.
  """
  builder = build(data_config, config_fields=config_fields)
  loaded = {name: pipeline.load_split(builder, name) for name in names}
  if data_config.get("check_counts", True):
    integrity.check_counts(
        data_config.dataset, _resolve(data_config.root),
        {name: count_arrays(split) for name, split in loaded.items()},
        what=f"TFRecords in {builder.data_dir}",
        hint=f"They were built from other raw data: delete {builder.data_dir} and run again to "
             "rebuild them.")
  return loaded


def load_dataset(data_config) -> tuple[SplitArrays, SplitArrays]:
  """(train, test) splits of one configured dataset, decoded into memory (`load_splits`)."""
  loaded = load_splits(data_config)
  return loaded["train"], loaded["test"]


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


def evaluation_data_config(data_config, eval_config) -> ml_collections.ConfigDict | None:
  """Where the evaluated test split comes from: `config.data` with `config.eval.test_root`
  and `config.eval.test_tfds_dir` in place, or None when they name `config.data`'s folders.

  An empty field takes `config.data`'s (`root`, `tfds_dir`). Image size, trial and
  `check_counts` stay `config.data`'s. A synthetic dataset's test root takes the generator
  options of `config.data.synthetic` without `ir_to_visible`: when missing it is generated
  untranslated, and an existing one may be translated or not (e.g. a run on
  data/synthetic_sysu_ir2vis evaluated on data/synthetic_sysu).

  Args:
    data_config: `config.data`.
    eval_config: `config.eval`.

  Raises:
    ValueError: `test_root` is another folder than `config.data.root` but the TFRecords
      folder is the same (their TFRecords would be those of `config.data.root`).
  """
  test_root = eval_config.get("test_root", "") or data_config.root
  test_tfds_dir = eval_config.get("test_tfds_dir", "") or data_config.tfds_dir
  same_root = _resolve(test_root) == _resolve(data_config.root)
  same_tfds_dir = _resolve(test_tfds_dir) == _resolve(data_config.tfds_dir)
  if same_root and same_tfds_dir:
    return None
  if same_tfds_dir:
    raise ValueError(
        f"config.eval.test_root={eval_config.test_root!r} is another raw folder than "
        f"config.data.root={data_config.root!r}, but both would use the TFRecords in "
        f"config.data.tfds_dir={data_config.tfds_dir!r}, which hold only one folder's images. "
        "Set config.eval.test_tfds_dir to a folder of its own for the test root.")
  config = ml_collections.ConfigDict(data_config.to_dict())
  with config.ignore_type():
    config.root, config.tfds_dir = test_root, test_tfds_dir
    if not same_root and config.get("synthetic") and "ir_to_visible" in config.synthetic:
      config.synthetic = {key: value for key, value in config.synthetic.items()
                          if key != "ir_to_visible"}
  return config


def _evaluation_config_fields(eval_config) -> tuple[str, str]:
  """The fields that name the test split's raw and TFRecords folder (`evaluation_data_config`)."""
  return ("config.eval.test_root" if eval_config.get("test_root", "") else "config.data.root",
          "config.eval.test_tfds_dir" if eval_config.get("test_tfds_dir", "")
          else "config.data.tfds_dir")


def has_target(data_config) -> bool:
  """Whether `config.data.target` names a target dataset."""
  return bool(data_config.get("target") and data_config.target.get("dataset"))


def load(data_config, *, with_target: bool = False, eval_config=None) -> Splits:
  """The run's splits: the training dataset's, and with `with_target` the target's.

  Without a target: train of `config.data` and the test split of `config.data`, or, when
  `eval_config` (`config.eval`) sets `test_root` / `test_tfds_dir`, the test split of that
  folder (`evaluation_data_config`; training never reads it). With one (`config.data.target`, for
  domain adaptation): train of `config.data` (the labelled source), the target dataset's
  training split with every label NO_LABEL (identities stay in `person_ids` for diagnostics
  only), and the target's test split, which evaluation then scores with the target dataset's
  protocols. `config.data.target.domain` ("noise", "lighting", "background") moves the
  target's images into that synthetic domain (`target_domains.synthetic_target_domain`), e.g.
  SYSU → SYSU-N.

  Raises:
    ValueError: `with_target` without `config.data.target.dataset`, or a target without
      `with_target` (the method would ignore it); `config.eval.test_root` / `test_tfds_dir`
      with a target (whose test split is evaluated), or naming the training TFRecords folder
      for another raw folder.
  """
  if has_target(data_config) != with_target:
    if with_target:
      raise ValueError("This method trains on an unlabelled target stream: set "
                       "config.data.target.dataset (and its root) to the target dataset.")
    raise ValueError(
        f"config.data.target.dataset={data_config.target.dataset!r} is set, but the "
        "configured method trains on no target stream; clear it "
        "(--config.data.target.dataset='') or choose a domain-adaptation method.")
  evaluation_config = (None if eval_config is None
                       else evaluation_data_config(data_config, eval_config))
  if evaluation_config is not None and with_target:
    raise ValueError(
        "config.eval.test_root / config.eval.test_tfds_dir replace the test split of "
        f"config.data, but this run evaluates the target dataset's test split "
        f"(config.data.target.dataset={data_config.target.dataset!r}); set "
        "config.data.target.root / tfds_dir instead, or clear config.eval.test_root and "
        "config.eval.test_tfds_dir.")
  if evaluation_config is not None:
    print(f"Evaluating on the test split of {_resolve(evaluation_config.root)} "
          "(config.eval.test_root / test_tfds_dir)", flush=True)
    train = load_splits(data_config, ("train",))["train"]
    test = load_splits(evaluation_config, ("test",),
                       config_fields=_evaluation_config_fields(eval_config))["test"]
  else:
    train, test = load_dataset(data_config)
  if not with_target:
    return Splits(train=train, test=test, target=None, test_dataset=data_config.dataset,
                  test_trial=data_config.trial if data_config.dataset == "regdb" else None)
  target_config = target_data_config(data_config)
  target = load_splits(target_config, config_fields=TARGET_FIELDS)
  target_train, target_test = target["train"], target["test"]
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
