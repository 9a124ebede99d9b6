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
* `target`: the target dataset of a cross-domain run (`dataset`, empty for none, and its
  `root`, `tfds_dir`, `trial`, `check_counts`, `synthetic`, plus `domain`: a DAN synthetic
  domain to move its images into, `train_split`: which of its splits a domain-adaptation
  method trains on, `identity_split`: "parity" to split a same-dataset task's identities);
  every method is evaluated on its test split, and a method with a target stream also trains
  on it; see `load` and `load_target`.

`config.eval` fields used (by `load`, through `evaluation_data_config`): `test_root` and
`test_tfds_dir`, another raw folder of the same dataset (and its TFRecords) whose test split is
evaluated instead of `config.data.root`'s, e.g. the original SYSU-MM01 for a run trained on the
IR→VIS translated copy (DJANet); "" = `config.data`'s.

TFRecords remember the raw folder they were written from (`integrity.check_raw_folder`);
`build` refuses those of another folder, even one with the same counts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import json
import os
import pathlib

from absl import logging
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from vireid_jax import disk
from vireid_jax.data import layouts
from vireid_jax.data import pipeline
from vireid_jax.data import synthetic
from vireid_jax.data import target_domains
from vireid_jax.data.splits import MODALITY_NAMES
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
  # TFDS writes into a temporary folder renamed when complete: a full disk leaves the
  # TFRecords folder as it was (without this build), and the next start builds it again.
  with contextlib.redirect_stdout(output), disk.reporting_full_disk(
      builder.data_dir, f"the TFRecords of {root}",
      f"Nothing of this build is used; TFRecords built before in {data_config.tfds_dir} are "
      "intact"):
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
# `config.data.target.train_split`: which of the target's splits its unlabelled training stream
# reads (dan.md §1.3): "train" (inductive, the proposed default) or "test" (transductive, the
# released code).
TARGET_TRAIN_SPLITS = ("train", "test")
# `config.data.target.identity_split`: "none", or "parity" (a same-dataset task's training
# identities split between source and target by the parity of their sorted rank).
IDENTITY_SPLITS = ("none", "parity")


def target_data_config(data_config) -> ml_collections.ConfigDict:
  """`config.data` with the target dataset's fields (`config.data.target`) in place.

  An empty `target.tfds_dir` is `config.data.tfds_dir` (TFDS keeps each dataset, trial and
  image size in a folder of its own). An empty `target.root` is `config.data.root`, with its
  synthetic options unless `target.synthetic` sets others: the source's own images, e.g. moved
  into a synthetic domain (SYSU → SYSU-noise).

  Raises:
    ValueError: an empty `target.root` for another dataset than the source's.
  """
  target = data_config.target
  config = ml_collections.ConfigDict(data_config.to_dict())
  with config.ignore_type():
    for key in TARGET_DATASET_FIELDS:
      if key in target:
        config[key] = target[key]
    if not target.get("tfds_dir"):
      config.tfds_dir = data_config.tfds_dir
    if not target.get("root"):
      if target.dataset != data_config.dataset:
        raise ValueError(
            f"config.data.target.root is empty, and the target dataset "
            f"(config.data.target.dataset={target.dataset!r}) is not the source's "
            f"(config.data.dataset={data_config.dataset!r}); set config.data.target.root to "
            f"its raw folder (data/README.md), e.g. --config.data.target.root=data/RegDB.")
      config.root = data_config.root
      if not target.get("synthetic"):
        config.synthetic = data_config.get("synthetic") or {}
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


def _target_settings(data_config) -> tuple[str, str, str]:
  """(train_split, identity_split, domain) of `config.data.target`, with their defaults."""
  target = data_config.target
  return (target.get("train_split", "train"), target.get("identity_split", "none"),
          target.get("domain", ""))


def check_target(data_config) -> None:
  """Refuses a `config.data.target` that names no usable target, before any work.

  Raises:
    ValueError: naming the field: an unknown `dataset`, `train_split`, `identity_split` or
      `domain`; `identity_split="parity"` for a target of another dataset than the source's,
      or with `train_split="test"`; an empty `root` for another dataset; a target that is the
      source itself (same dataset, raw folder and RegDB trial, `train_split="train"`,
      `identity_split="none"`, no domain): a domain-adaptation method would train supervised
      and unsupervised on the same images, and evaluation would score the source's own test
      split.
  """
  target = data_config.target
  if target.dataset not in _BUILDERS:
    raise ValueError(f"config.data.target.dataset={target.dataset!r}: expected one of "
                     f"{', '.join(sorted(_BUILDERS))} (or '' for no target).")
  train_split, identity_split, domain = _target_settings(data_config)
  if train_split not in TARGET_TRAIN_SPLITS:
    raise ValueError(f"config.data.target.train_split={train_split!r}: expected one of "
                     f"{TARGET_TRAIN_SPLITS} (\"train\": the target's training split; "
                     "\"test\": its test images, the released DAN code's transductive mode).")
  if identity_split not in IDENTITY_SPLITS:
    raise ValueError(f"config.data.target.identity_split={identity_split!r}: expected one of "
                     f"{IDENTITY_SPLITS}.")
  if domain and domain not in target_domains.SYNTHETIC_DOMAINS:
    raise ValueError(f"config.data.target.domain={domain!r}: expected '' (none) or one of "
                     f"{target_domains.SYNTHETIC_DOMAINS}.")
  if identity_split == "parity":
    if target.dataset != data_config.dataset:
      raise ValueError(
          f"config.data.target.identity_split='parity' splits one dataset's training "
          f"identities between source and target, but the target "
          f"(config.data.target.dataset={target.dataset!r}) is another dataset than the "
          f"source (config.data.dataset={data_config.dataset!r}), whose identities are "
          "disjoint already; set config.data.target.identity_split='none'.")
    if train_split != "train":
      raise ValueError(
          "config.data.target.identity_split='parity' gives the target the odd half of the "
          "training identities, but config.data.target.train_split='test' trains on the "
          "target's test images instead; set one of them back ('none' or 'train').")
  target_config = target_data_config(data_config)
  same_images = (target_config.dataset == data_config.dataset
                 and _resolve(target_config.root) == _resolve(data_config.root)
                 and (data_config.dataset != "regdb"
                      or target_config.get("trial", 1) == data_config.get("trial", 1)))
  if same_images and train_split == "train" and identity_split == "none" and not domain:
    raise ValueError(
        f"config.data.target is the source itself (dataset {data_config.dataset!r}, raw folder "
        f"{_resolve(data_config.root)}): a domain-adaptation method would train supervised and "
        "unsupervised on the same images, and evaluation would score the source's own test "
        "split. Set config.data.target.domain (e.g. 'noise') to move the target into a "
        "synthetic domain, or config.data.target.identity_split='parity' to split the "
        "identities between source and target, or clear config.data.target.dataset.")


def identity_parity_halves(split: SplitArrays) -> tuple[SplitArrays, SplitArrays]:
  """`split`'s images of the identities at even and at odd ranks among its sorted person ids.

  The ranks are 0-based over the distinct `person_ids` in increasing order: the even half
  holds ranks 0, 2, 4, ... (dan.md §1.3's stricter same-dataset variant). Labels are kept.

  Returns:
    (even half, odd half), each in `split`'s order.
  """
  identities = np.unique(split.person_ids)
  ranks = np.searchsorted(identities, split.person_ids)
  return split.select(ranks % 2 == 0), split.select(ranks % 2 == 1)


def relabelled(split: SplitArrays) -> SplitArrays:
  """`split` with labels 0..C-1: the rank of each image's person id among its C distinct ids."""
  labels = np.searchsorted(np.unique(split.person_ids), split.person_ids).astype(np.int32)
  return dataclasses.replace(split, labels=labels)


def _check_both_modalities(split: SplitArrays, what: str) -> None:
  """Refuses a target training split without images of one modality (the target stream draws
  visible and infrared batches)."""
  for code, name in enumerate(MODALITY_NAMES):
    if not split.count(code):
      raise ValueError(
          f"The target's training split ({what}) holds no {name} images; the target stream "
          "draws both modalities. Check config.data.target.root, or choose another "
          "config.data.target.train_split / identity_split.")


def _target_splits(data_config, names: tuple[str, ...], *,
                   select=None) -> dict[str, SplitArrays]:
  """The target dataset's splits `names` (`target_data_config`), each passed through
  `select(name, split) -> split` (e.g. a parity half) and then moved into
  `config.data.target.domain` (`target_domains.synthetic_target_domain`): only the images kept
  are transformed."""
  target_config = target_data_config(data_config)
  loaded = load_splits(target_config, names, config_fields=TARGET_FIELDS)
  _, _, domain = _target_settings(data_config)
  splits = {}
  for name, split in loaded.items():
    if select is not None:
      split = select(name, split)
    if domain:
      split = target_domains.synthetic_target_domain(split, domain, target_config.dataset)
    splits[name] = split
  return splits


def load_target(data_config) -> tuple[SplitArrays, SplitArrays]:
  """The target's unlabelled training split and its test split (`config.data.target`).

  The training split is the one `train_split` names: "train" (the target's training split;
  with `identity_split="parity"` only its odd-ranked identities, `identity_parity_halves`) or
  "test" (its test images, as the released DAN code does). Both splits are moved into
  `domain` when it is set (e.g. SYSU → SYSU-N); the images of a split read twice are
  transformed once.

  Args:
    data_config: `config.data`, with `target.dataset` set.

  Returns:
    (target_train, target_test). target_train: every label NO_LABEL (identities stay in
    `person_ids` for diagnostics only). target_test: the test split, scored with the target
    dataset's protocols.

  Raises:
    ValueError: `check_target`'s refusals; a target training split without images of one
      modality (naming the split and the modality).
  """
  check_target(data_config)
  train_split, identity_split, _ = _target_settings(data_config)
  if train_split == "test":
    target_test = _target_splits(data_config, ("test",))["test"]
    target_train = target_test
    what = "config.data.target.train_split='test': its test images"
  else:
    keep_odd = lambda name, split: (identity_parity_halves(split)[1]
                                    if name == "train" and identity_split == "parity"
                                    else split)
    loaded = _target_splits(data_config, ("train", "test"), select=keep_odd)
    target_train, target_test = loaded["train"], loaded["test"]
    what = ("config.data.target.train_split='train'"
            + (", identity_split='parity': its odd-ranked identities"
               if identity_split == "parity" else ""))
  _check_both_modalities(target_train, what)
  return target_train.unlabelled(), target_test


def load(data_config, *, with_target: bool = False, eval_config=None) -> Splits:
  """The run's splits: the labelled training split, the evaluated test split, and with
  `with_target` the unlabelled target training split.

  Without a target (`config.data.target.dataset` empty): train of `config.data` and the test
  split of `config.data`, or, when `eval_config` (`config.eval`) sets `test_root` /
  `test_tfds_dir`, the test split of that folder (`evaluation_data_config`; training never
  reads it).

  With one, every method is evaluated on the target's test split (moved into
  `config.data.target.domain`), with the target dataset's protocols (and RegDB trial):
  * `with_target` (a domain-adaptation method, `uses_target`): `Splits.target` is the
    target's unlabelled training split (`load_target`).
  * otherwise `Splits.target` is None: the method trains on the source alone and the run
    measures its direct transfer to the target (one console line says so).
  With `config.data.target.identity_split="parity"` the training split is the source's
  even-ranked identities (`identity_parity_halves`), relabelled 0..C-1, so the method's class
  count is C.

  Raises:
    ValueError: `with_target` without `config.data.target.dataset`; `check_target`'s
      refusals; `config.eval.test_root` / `test_tfds_dir` with a target (whose test split is
      evaluated), or naming the training TFRecords folder for another raw folder; source and
      target halves sharing an identity (`identity_split="parity"` across RegDB trials).
  """
  targeted = has_target(data_config)
  if with_target and not targeted:
    raise ValueError("This method trains on an unlabelled target stream: set "
                     "config.data.target.dataset (and its root) to the target dataset.")
  evaluation_config = (None if eval_config is None
                       else evaluation_data_config(data_config, eval_config))
  if evaluation_config is not None and targeted:
    raise ValueError(
        "config.eval.test_root / config.eval.test_tfds_dir replace the test split of "
        f"config.data, but this run evaluates the target dataset's test split "
        f"(config.data.target.dataset={data_config.target.dataset!r}); set "
        "config.data.target.root / tfds_dir instead, or clear config.eval.test_root and "
        "config.eval.test_tfds_dir.")
  if not targeted:
    if evaluation_config is not None:
      print(f"Evaluating on the test split of {_resolve(evaluation_config.root)} "
            "(config.eval.test_root / test_tfds_dir)", flush=True)
      train = load_splits(data_config, ("train",))["train"]
      test = load_splits(evaluation_config, ("test",),
                         config_fields=_evaluation_config_fields(eval_config))["test"]
    else:
      train, test = load_dataset(data_config)
    return Splits(train=train, test=test, target=None, test_dataset=data_config.dataset,
                  test_trial=data_config.trial if data_config.dataset == "regdb" else None)
  check_target(data_config)   # before anything is read
  # The source's own test split is not evaluated: only its training split is read.
  train = load_splits(data_config, ("train",))["train"]
  _, identity_split, domain = _target_settings(data_config)
  if identity_split == "parity":
    train = relabelled(identity_parity_halves(train)[0])
  target_config = target_data_config(data_config)
  test_name = f"{target_config.dataset}/{domain}" if domain else target_config.dataset
  if with_target:
    target_train, target_test = load_target(data_config)
    shared = (np.intersect1d(train.person_ids, target_train.person_ids)
              if identity_split == "parity" else np.zeros(0))
    if shared.size:
      raise ValueError(
          "config.data.target.identity_split='parity': the source's and the target's "
          f"training halves share person ids {shared[:10].tolist()}; the parity halves are "
          "disjoint only when both training splits hold the same identities (for RegDB: set "
          "config.data.target.trial to config.data.trial).")
  else:
    print(f"The method trains on no target stream: this run evaluates direct transfer to "
          f"{test_name} (config.data.target)", flush=True)
    target_train = None
    target_test = _target_splits(data_config, ("test",))["test"]
  return Splits(train=train, test=target_test, target=target_train,
                test_dataset=target_config.dataset,
                test_trial=target_config.trial if target_config.dataset == "regdb" else None,
                test_domain=domain)


def count_arrays(split: SplitArrays) -> dict:
  """`layouts.count_split` of a decoded split."""
  return layouts.count_split(split.person_ids, split.cameras,
                             [layouts.MODALITIES[m] for m in split.modalities])
