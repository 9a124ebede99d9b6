"""The workdir's recorded config: which differences refuse a run, and what override keeps."""

import json
import os

import pytest

from configs import synthetic
from vireid_jax.training import workdir_config


def test_first_run_records_the_config(tmp_path):
  config = synthetic.get_config()
  workdir_config.check_or_record(config, str(tmp_path))
  recorded = json.loads((tmp_path / "config.json").read_text())
  assert recorded["optim"]["base_lr"] == config.optim.base_lr
  assert recorded["model"]["depth"] == 18


def test_keys_that_leave_training_unchanged_may_differ(tmp_path):
  config = synthetic.get_config()
  workdir_config.check_or_record(config, str(tmp_path))
  before = (tmp_path / "config.json").read_text()
  config.eval.num_trials = 1
  config.eval.rerank = "k_reciprocal"
  config.train.num_epochs = 40
  config.train.log_every_steps = 7
  config.train.checkpoint_every_steps = 5
  config.data.eval_batch_size = 32
  workdir_config.check_or_record(config, str(tmp_path))
  assert (tmp_path / "config.json").read_text() == before


def test_a_training_key_is_refused_naming_key_and_both_values(tmp_path):
  config = synthetic.get_config()
  workdir_config.check_or_record(config, str(tmp_path))
  config.optim.milestones = (5, 9)
  config.data.ids_per_batch = 4
  with pytest.raises(workdir_config.ConfigMismatchError) as error:
    workdir_config.check_or_record(config, str(tmp_path))
  message = str(error.value)
  assert "data.ids_per_batch: workdir 8, now 4" in message
  assert "optim.milestones: workdir [8, 11], now [5, 9]" in message
  assert "--override_config" in message and str(tmp_path) in message


def test_keys_the_recorded_file_lacks_were_added_by_a_newer_version(tmp_path):
  config = synthetic.get_config()
  workdir_config.check_or_record(config, str(tmp_path))
  recorded = json.loads((tmp_path / "config.json").read_text())
  del recorded["model"]["gem_learnable"]
  (tmp_path / "config.json").write_text(json.dumps(recorded))
  workdir_config.check_or_record(config, str(tmp_path))


def test_override_replaces_the_record_and_keeps_the_old_one(tmp_path):
  config = synthetic.get_config()
  workdir_config.check_or_record(config, str(tmp_path))
  config.optim.base_lr = 0.5
  workdir_config.check_or_record(config, str(tmp_path), allow_change=True)
  assert json.loads((tmp_path / "config.json").read_text())["optim"]["base_lr"] == 0.5
  replaced = [name for name in os.listdir(tmp_path) if name.startswith("config.replaced-")]
  assert len(replaced) == 1
  assert json.loads((tmp_path / replaced[0]).read_text())["optim"]["base_lr"] == 0.1


def test_unreadable_record_names_the_file(tmp_path):
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(workdir_config.ConfigMismatchError, match="config.json is unreadable"):
    workdir_config.check_or_record(synthetic.get_config(), str(tmp_path))
