"""`config.data.target`: which dataset fields it replaces, and the errors of a mismatch between
the config and the method."""

import pytest

from configs import default
from vireid_jax.data import datasets


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


def test_a_target_without_a_target_method_and_the_reverse_are_refused_before_any_work(
    tmp_path):
  data_config = default.get_config().data
  data_config.root = str(tmp_path / "missing")   # nothing is read before the check
  with pytest.raises(ValueError, match=r"trains on an unlabelled target stream: set "
                                       r"config.data.target.dataset"):
    datasets.load(data_config, with_target=True)
  data_config.target.dataset = "regdb"
  with pytest.raises(ValueError, match=r"config.data.target.dataset='regdb' is set, but the "
                                       r"configured method trains on no target stream"):
    datasets.load(data_config)
