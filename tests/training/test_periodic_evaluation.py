"""When evaluation during training happens, what it evaluates, and the checks of its config."""

import pytest

from configs import default
from vireid_jax.training import periodic_evaluation


def test_due_epochs_are_the_references_even_epochs_from_two():
  due = [epoch for epoch in range(81) if periodic_evaluation.is_due(2, epoch)]
  assert due == list(range(2, 81, 2))
  assert not any(periodic_evaluation.is_due(0, epoch) for epoch in range(81))
  assert [e for e in range(10) if periodic_evaluation.is_due(3, e)] == [3, 6, 9]


def test_during_training_only_the_main_protocol_feature_and_trial_zero_are_evaluated():
  config = default.get_config()
  config.eval.main_feature = "pool"
  reduced = periodic_evaluation.main_protocol_config(config.eval)
  assert reduced.features == ("pool",) and reduced.num_trials == 1
  assert reduced.regdb_directions == ("visible_to_thermal",)
  assert reduced.llcm_directions == ("ir_to_vis",)
  assert reduced.ranking_queries == 0
  # Everything else (protocol mode, distance, re-ranking) is the configured one.
  assert (reduced.mode, reduced.distance, reduced.rerank) == ("all", "cosine", "none")
  assert config.eval.features == ("pool", "bn")


def test_settings_that_cannot_work_are_refused_naming_the_key():
  config = default.get_config()
  config.eval.select = "best"
  with pytest.raises(ValueError, match=r"config.eval.select='best' chooses among"):
    periodic_evaluation.check_config(config)
  config.eval.every_epochs = 100   # beyond the 81 epochs: still no evaluation
  with pytest.raises(ValueError, match="makes none"):
    periodic_evaluation.check_config(config)
  config.eval.every_epochs = 2
  periodic_evaluation.check_config(config)
  config.eval.select = "first"
  with pytest.raises(ValueError, match=r"config.eval.select='first'"):
    periodic_evaluation.check_config(config)
