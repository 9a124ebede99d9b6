"""The dataset configs: each real config and its synthetic counterpart select the same data."""

import importlib
import inspect

import pytest

from vireid_jax.data import datasets
from vireid_jax.data import synthetic

# (real config, synthetic counterpart, dataset).
PAIRS = [("sysu", "synthetic", "sysu"), ("regdb", "synthetic_regdb", "regdb"),
         ("llcm", "synthetic_llcm", "llcm")]


def get_config(name):
  return importlib.import_module(f"configs.{name}").get_config()


@pytest.mark.parametrize("real, counterpart, dataset", PAIRS)
def test_real_and_synthetic_configs_select_the_same_dataset_and_protocol(real, counterpart,
                                                                         dataset):
  real_config, synthetic_config = get_config(real), get_config(counterpart)
  for config in (real_config, synthetic_config):
    assert config.data.dataset == dataset
  # Training-side data settings that define the experiment are shared.
  for key in ("trial", "random_erasing", "sampler", "ids_per_batch", "images_per_id"):
    if key in real_config.data:
      assert synthetic_config.data[key] == real_config.data[key], key
  # A real config never generates; its counterpart generates under data/, elsewhere.
  assert not real_config.data.synthetic
  assert synthetic_config.data.synthetic
  assert synthetic_config.data.root != real_config.data.root
  assert synthetic_config.data.tfds_dir != real_config.data.tfds_dir


@pytest.mark.parametrize("real, counterpart, dataset", PAIRS)
def test_synthetic_options_are_the_layout_generators(real, counterpart, dataset):
  options = get_config(counterpart).data.synthetic.to_dict()
  inspect.signature(synthetic.GENERATORS[dataset]).bind("out", **options)


def test_builder_configs_name_the_trial_and_size():
  regdb = get_config("regdb")
  assert datasets.builder_config(regdb.data).name == "trial1_288x144"
  regdb.data.trial = 10
  assert datasets.builder_config(regdb.data).trial == 10
  regdb.data.trial = 11
  with pytest.raises(ValueError, match="config.data.trial=11"):
    datasets.builder_config(regdb.data)
  assert datasets.builder_config(get_config("llcm").data).name == "288x144"
  other = get_config("sysu")
  other.data.dataset = "market1501"
  with pytest.raises(ValueError, match="config.data.dataset='market1501'.*llcm, regdb, sysu"):
    datasets.builder_config(other.data)
