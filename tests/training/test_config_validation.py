"""Every config field with a closed set of values or a range is checked before any work
(`vireid_jax.training.config_checks`), naming the field, the value and what is allowed."""

import importlib
import inspect
import os

import pytest

from configs import default
from configs import djanet as djanet_configs
from configs import mmn as mmn_configs
from vireid_jax import methods
from vireid_jax.training import config_checks
from vireid_jax.training import loop

CONFIGS_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs")


def shipped_configs():
  """(name, config) of every experiment in configs/, for each argument its get_config takes."""
  for file_name in sorted(os.listdir(CONFIGS_FOLDER)):
    if not file_name.endswith(".py") or file_name.startswith("_"):
      continue
    module = importlib.import_module(f"configs.{file_name[:-3]}")
    if not hasattr(module, "get_config"):
      continue
    if not inspect.signature(module.get_config).parameters:
      yield file_name, module.get_config()
      continue
    for argument in ("sysu", "regdb", "llcm", "synthetic", "tiny", "short", "full"):
      try:
        yield f"{file_name}:{argument}", module.get_config(argument)
      except (ValueError, KeyError):
        continue   # not an argument this file takes


def test_every_shipped_config_passes():
  checked = {name: config_checks.problems(config, devices=1)
             for name, config in shipped_configs()}
  assert len(checked) >= 20
  assert {name: found for name, found in checked.items() if found} == {}


def bad_value(rule, value):
  """One value outside what `rule` allows, of the type `value` (the field's) has."""
  if rule.choices is not None:
    allowed = list(rule.choices())
    if rule.each:
      return ("no_such_value",)
    if isinstance(value, int):
      return max(allowed) + 1
    return "no_such_value"
  if rule.minimum is not None:
    bad = rule.minimum if rule.above else rule.minimum - 1
  else:
    bad = rule.maximum + 1
  return type(value)(bad) if isinstance(value, float) else int(bad)


@pytest.mark.parametrize("rule", config_checks.RULES, ids=lambda rule: rule.field)
def test_each_rule_refuses_a_bad_value_naming_field_value_and_what_is_allowed(rule):
  config = default.get_config()   # holds every field of the rules
  config_checks.check(config, devices=1)   # the default value passes
  *parents, key = rule.field.split(".")
  section = config
  for name in parents:
    section = section[name]
  bad = bad_value(rule, section[key])
  section[key] = bad
  with pytest.raises(config_checks.ConfigValueError) as error:
    config_checks.check(config, devices=1)
  assert f"config.{rule.field}={bad!r}: expected {rule.allowed()}" in str(error.value)


def test_what_is_allowed_reads_as_the_registries_and_ranges_say():
  rules = {rule.field: rule for rule in config_checks.RULES}
  assert rules["optim.base_lr"].allowed() == "a number > 0"
  assert rules["data.trial"].allowed() == "an integer >= 1 and <= 10"
  assert rules["train.steps_per_epoch"].allowed() == "an integer >= 1 or -1"
  assert "'agw'" in rules["data.sampler"].allowed()
  assert "'domain_adaptation'" in rules["data.sampler"].allowed()
  # Whole numbers only where a count is meant; booleans are not numbers here.
  assert not rules["data.ids_per_batch"].accepts(2.5)
  assert not rules["optim.momentum"].accepts(True)
  assert rules["train.steps_per_epoch"].accepts(-1)


def test_non_increasing_milestones_are_refused():
  config = default.get_config()
  config.optim.milestones = (50, 20)
  with pytest.raises(config_checks.ConfigValueError,
                     match=r"config.optim.milestones=\(50, 20\): expected increasing epochs"):
    config_checks.check(config)


def test_identities_per_batch_must_split_over_the_devices():
  config = default.get_config()
  config.data.ids_per_batch, config.data.images_per_id = 3, 2
  with pytest.raises(config_checks.ConfigValueError) as error:
    config_checks.check(config, devices=4)
  assert ("config.data.ids_per_batch=3: expected ids_per_batch x config.data.images_per_id "
          "(3 x 2 = 6 rows per modality) to be a multiple of the 4 devices") in str(error.value)
  config.data.ids_per_batch = 4
  config_checks.check(config, devices=4)
  config_checks.check(config, devices=8)


def test_every_bad_field_is_listed_in_one_error():
  config = default.get_config()
  config.data.sampler = "nope"
  config.optim.base_lr = -0.1
  config.eval.select = "worst"
  with pytest.raises(config_checks.ConfigValueError) as error:
    config_checks.check(config)
  assert str(error.value).count("\n  config.") == 3


def test_the_loop_refuses_a_bad_value_before_touching_the_workdir(tmp_path):
  config = default.get_config()
  config.optim.warmup_style = "cosine"
  with pytest.raises(config_checks.ConfigValueError, match="config.optim.warmup_style='cosine'"):
    loop.run(config, str(tmp_path / "run"), method=None)
  assert not (tmp_path / "run").exists()


def test_an_image_size_the_network_cannot_reduce_is_refused_by_the_method():
  config = mmn_configs.get_config("synthetic")
  config.data.image_height = 48   # a 3-row layer4 map for 4 stripes
  with pytest.raises(ValueError, match="3 rows high cuts into 3 stripes.*image_height"):
    methods.resolve(config)
  config = djanet_configs.get_config("synthetic")
  config.data.image_height = 80   # a 5 x 3 layer3 grid: no whole attention heads
  with pytest.raises(ValueError, match="DJANet at 80×48"):
    methods.resolve(config)
