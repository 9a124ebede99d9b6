"""`config.data.target`: which dataset fields it replaces, what `load` and `load_target` give
back (direct transfer, the target stream, its training split and identity split), and the
errors of a target that names nothing usable.

The loading cases run the real path (`datasets.load`) on a tiny generated SYSU-MM01-layout
folder and a tiny RegDB-layout one (32 x 16 crops, a few identities).
"""

import numpy as np
import pytest

from configs import default
from vireid_jax.data import datasets
from vireid_jax.data import synthetic
from vireid_jax.data import target_domains
from vireid_jax.data.splits import INFRARED
from vireid_jax.data.splits import NO_LABEL
from vireid_jax.data.splits import SplitArrays
from vireid_jax.data.splits import VISIBLE

HEIGHT, WIDTH = 32, 16
# SYSU: 4 + 1 training identities (train and val), so both parity halves hold several.
TINY = {
    "sysu": dict(seed=1, num_train_ids=4, num_val_ids=1, num_test_ids=3,
                 num_single_modality_ids=0, images_per_camera=(1, 2), image_height=HEIGHT,
                 image_width=WIDTH),
    "regdb": dict(seed=1, num_ids=6, images_per_id=2, image_height=HEIGHT, image_width=WIDTH),
}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
  """The tiny raw folders {dataset: root} and the one TFRecords folder they share."""
  folder = tmp_path_factory.mktemp("target")
  roots = {dataset: synthetic.generate(dataset, folder / dataset, **options)
           for dataset, options in TINY.items()}
  return roots, folder / "tfds"


def data_config(raw, **target):
  """The default `config.data` on the tiny SYSU folder, with `target` fields set."""
  roots, tfds_dir = raw
  config = default.get_config().data
  config.root, config.tfds_dir = str(roots["sysu"]), str(tfds_dir)
  config.image_height, config.image_width = HEIGHT, WIDTH
  for key, value in target.items():
    config.target[key] = value
  return config


def test_the_target_config_replaces_the_dataset_fields_and_keeps_the_rest():
  data_config = default.get_config().data
  data_config.target.dataset = "regdb"
  data_config.target.root = "data/RegDB"
  data_config.target.tfds_dir = "data/regdb_tfds"
  data_config.target.trial = 4
  target = datasets.target_data_config(data_config)
  assert (target.dataset, target.root, target.tfds_dir, target.trial) == (
      "regdb", "data/RegDB", "data/regdb_tfds", 4)
  # Image size, batch geometry and the sampler stay the source's.
  assert (target.image_height, target.ids_per_batch, target.sampler) == (
      data_config.image_height, data_config.ids_per_batch, data_config.sampler)
  assert data_config.dataset == "sysu" and datasets.has_target(data_config)
  # An empty TFRecords folder is the source's (TFDS keeps each dataset in a folder of its own).
  data_config.target.tfds_dir = ""
  assert datasets.target_data_config(data_config).tfds_dir == data_config.tfds_dir


def test_an_empty_target_root_is_the_source_folder_with_its_synthetic_options():
  config = default.get_config()
  config.data.root, config.data.synthetic = "data/synthetic_sysu", dict(seed=0)
  config.data.target.dataset, config.data.target.domain = "sysu", "noise"
  target = datasets.target_data_config(config.data)
  assert (target.root, target.tfds_dir, target.synthetic.to_dict()) == (
      "data/synthetic_sysu", config.data.tfds_dir, dict(seed=0))


def test_the_default_config_trains_inductively_on_aligned_target_batches():
  config = default.get_config()
  assert (config.data.target.train_split, config.data.target.identity_split) == (
      "train", "none")
  assert (config.data.target_sampler, config.data.redraw_source_plan) == ("aligned", False)


# (target fields, the start of the message): each refused before anything is read.
REFUSED = {
    "unknown dataset": (dict(dataset="market"), r"config.data.target.dataset='market'"),
    "unknown train split": (dict(dataset="sysu", domain="noise", train_split="val"),
                            r"config.data.target.train_split='val': expected one of"),
    "unknown identity split": (dict(dataset="sysu", domain="noise", identity_split="halves"),
                               r"config.data.target.identity_split='halves': expected"),
    "unknown domain": (dict(dataset="sysu", domain="fog"),
                       r"config.data.target.domain='fog': expected '' \(none\) or one of"),
    "parity across datasets": (dict(dataset="regdb", root="data/RegDB", identity_split="parity"),
                               r"identity_split='parity' splits one dataset's .* another "
                               r"dataset .* set config.data.target.identity_split='none'"),
    "parity of test images": (dict(dataset="sysu", identity_split="parity", train_split="test"),
                              r"identity_split='parity' .*train_split='test'"),
    "the source itself": (dict(dataset="sysu"),
                          r"config.data.target is the source itself .* Set "
                          r"config.data.target.domain .*identity_split='parity'"),
    "empty root of another dataset": (dict(dataset="regdb"),
                                      r"config.data.target.root is empty"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("with_target", [False, True])
def test_a_target_naming_nothing_usable_is_refused_before_any_work(case, with_target, tmp_path):
  target, message = REFUSED[case]
  config = default.get_config().data
  config.root = str(tmp_path / "missing")   # nothing is read before the checks
  config.tfds_dir = str(tmp_path / "tfds")
  for key, value in target.items():
    config.target[key] = value
  with pytest.raises(ValueError, match=message):
    datasets.load(config, with_target=with_target)
  assert list(tmp_path.iterdir()) == []


def test_a_method_with_a_target_stream_needs_a_target(tmp_path):
  config = default.get_config().data
  config.root = str(tmp_path / "missing")
  with pytest.raises(ValueError, match=r"trains on an unlabelled target stream: set "
                                       r"config.data.target.dataset"):
    datasets.load(config, with_target=True)
  assert list(tmp_path.iterdir()) == []


def test_the_same_folder_is_a_target_once_it_differs_from_the_source(tmp_path):
  config = default.get_config().data
  config.root = str(tmp_path / "missing")
  config.target.dataset = "sysu"
  for fields in (dict(domain="lighting"), dict(identity_split="parity"),
                 dict(train_split="test"), dict(root=str(tmp_path / "other"))):
    checked = config.copy_and_resolve_references()
    for key, value in fields.items():
      checked.target[key] = value
    datasets.check_target(checked)
  # RegDB: another trial of the same folder is another split of its identities.
  config.dataset, config.target.dataset, config.target.trial = "regdb", "regdb", 2
  datasets.check_target(config)


def test_direct_transfer_trains_on_the_source_and_scores_the_target_test_split(raw, capsys):
  roots, tfds_dir = raw
  config = data_config(raw, dataset="regdb", root=str(roots["regdb"]), trial=3)
  splits = datasets.load(config)   # a method without a target stream, e.g. AGW
  source_train, _ = datasets.load_dataset(config)
  _, regdb_test = datasets.load_dataset(datasets.target_data_config(config))
  assert splits.target is None
  assert splits.train.relative_paths.tolist() == source_train.relative_paths.tolist()
  assert splits.test.relative_paths.tolist() == regdb_test.relative_paths.tolist()
  np.testing.assert_array_equal(splits.test.images, regdb_test.images)
  assert (splits.test_dataset, splits.test_trial, splits.test_domain) == ("regdb", 3, "")
  assert ("The method trains on no target stream: this run evaluates direct transfer to regdb "
          "(config.data.target)") in capsys.readouterr().out
  # Both datasets' TFRecords went to the one configured folder (the target's tfds_dir is "").
  assert {"regdb", "sysu_mm01"} <= {path.name for path in tfds_dir.iterdir()}


def test_the_target_stream_is_the_unlabelled_target_training_split_in_its_domain(raw):
  config = data_config(raw, dataset="sysu", domain="noise")
  splits = datasets.load(config, with_target=True)
  source_train, source_test = datasets.load_dataset(config)
  target_train, target_test = datasets.load_target(config)
  np.testing.assert_array_equal(splits.target.images, target_train.images)
  np.testing.assert_array_equal(splits.test.images, target_test.images)
  # SYSU → SYSU-N: the same images and identities, moved into the noise domain, no labels.
  assert (target_train.labels == NO_LABEL).all()
  np.testing.assert_array_equal(target_train.person_ids, source_train.person_ids)
  expected = target_domains.synthetic_target_domain(source_train, "noise", "sysu")
  np.testing.assert_array_equal(target_train.images, expected.images)
  np.testing.assert_array_equal(
      target_test.images, target_domains.synthetic_target_domain(source_test, "noise",
                                                                 "sysu").images)
  assert (splits.test_dataset, splits.test_trial, splits.test_domain) == ("sysu", None, "noise")
  assert splits.test_name == "sysu/noise"
  np.testing.assert_array_equal(splits.train.labels, source_train.labels)
  # The release's transductive mode: the target trains on its (unlabelled) test images.
  config.target.train_split = "test"
  transductive, test = datasets.load_target(config)
  assert transductive.relative_paths.tolist() == source_test.relative_paths.tolist()
  np.testing.assert_array_equal(transductive.images, test.images)
  assert (transductive.labels == NO_LABEL).all()


def test_parity_gives_the_source_the_even_identities_and_the_target_the_odd(raw):
  config = data_config(raw, dataset="sysu", domain="lighting", identity_split="parity")
  splits = datasets.load(config, with_target=True)
  full_train, _ = datasets.load_dataset(config)
  identities = np.unique(full_train.person_ids)
  assert len(identities) == 5
  source_ids, target_ids = np.unique(splits.train.person_ids), np.unique(splits.target.person_ids)
  np.testing.assert_array_equal(source_ids, identities[0::2])
  np.testing.assert_array_equal(target_ids, identities[1::2])
  # Relabelled 0..C-1 in the order of the ids: the method's class count follows (3).
  np.testing.assert_array_equal(splits.train.labels,
                                np.searchsorted(source_ids, splits.train.person_ids))
  assert int(splits.train.labels.max()) + 1 == 3
  assert (splits.target.labels == NO_LABEL).all()
  # Every image of each half, in the split's order; only the target's are transformed.
  even = np.isin(full_train.person_ids, source_ids)
  np.testing.assert_array_equal(splits.train.images, full_train.images[even])
  np.testing.assert_array_equal(
      splits.target.images,
      target_domains.synthetic_target_domain(full_train.select(~even), "lighting",
                                             "sysu").images)
  # A method without a target stream trains on the even half too.
  assert np.array_equal(datasets.load(config).train.person_ids, splits.train.person_ids)


def tiny_split(modalities) -> SplitArrays:
  count = len(modalities)
  return SplitArrays(np.zeros((count, 2, 2, 3), np.uint8), np.zeros(count, np.int32),
                     np.arange(count, dtype=np.int32), np.ones(count, np.int32),
                     np.asarray(modalities, np.int32), np.array([f"{i}.jpg" for i in
                                                                 range(count)]))


def test_a_target_training_split_without_one_modality_is_named(monkeypatch, tmp_path):
  visible_only = tiny_split([VISIBLE, VISIBLE])
  monkeypatch.setattr(datasets, "load_splits", lambda config, names, **kwargs: {
      name: visible_only if name == "train" else tiny_split([VISIBLE, INFRARED])
      for name in names})
  config = default.get_config().data
  config.root = str(tmp_path)
  config.target.dataset, config.target.domain = "sysu", ""
  config.target.root = str(tmp_path / "other")
  with pytest.raises(ValueError, match=r"The target's training split \(config.data.target."
                                       r"train_split='train'\) holds no infrared images"):
    datasets.load_target(config)
  config.target.train_split = "test"
  assert len(datasets.load_target(config)[0]) == 2
