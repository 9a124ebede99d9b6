"""The config a workdir was trained with, kept beside its checkpoints as `config.json`.

A workdir resumes the run it holds. Starting it again with a config that would train a
different run (another learning rate, model or dataset) would silently mix two experiments in
one set of checkpoints, so it is refused, naming every differing key, unless the user asks to
override. Keys that never change what is trained (evaluation, logging, how many checkpoints to
keep, and the epoch count, which the schedule does not depend on) may differ freely, and so
may keys the recorded file lacks: a newer version of the library added them, at defaults that
keep the old behaviour.
"""

from __future__ import annotations

import json
import os
import shutil
import time

CONFIG_FILE_NAME = "config.json"

# Keys (dotted prefixes) whose change leaves every training step as it was.
FREE_KEYS = (
    "eval.",
    "data.eval_batch_size",
    "train.num_epochs",
    "train.log_every_steps",
    "train.checkpoints_to_keep",
    "train.checkpoint_every_steps",
    "train.distributed",
)


class ConfigMismatchError(ValueError):
  """The workdir holds a run with a different training config."""


def flatten(tree, prefix: str = "") -> dict:
  """Nested dicts → {"a.b.c": value}; sequences become lists (as in JSON)."""
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(flatten(value, name + "."))
    else:
      flat[name] = list(value) if isinstance(value, tuple) else value
  return flat


def config_dict(config) -> dict:
  """The config as plain JSON data (ConfigDict or dict)."""
  return json.loads(config.to_json_best_effort() if hasattr(config, "to_json_best_effort")
                    else json.dumps(config))


def differences(recorded: dict, current: dict) -> dict[str, tuple]:
  """{key: (recorded value, current value)} for keys that change what is trained."""
  old, new = flatten(recorded), flatten(current)
  return {key: (old[key], new.get(key, "<absent>"))
          for key in sorted(old.keys())
          if old[key] != new.get(key, "<absent>")
          and not any(key == free or (free.endswith(".") and key.startswith(free))
                      for free in FREE_KEYS)}


def _write_json(path: str, data: dict) -> None:
  temporary = f"{path}.tmp-{os.getpid()}"
  with open(temporary, "w", encoding="utf-8") as file:
    json.dump(data, file, indent=2, sort_keys=True)
    file.write("\n")
  os.replace(temporary, path)


def check_or_record(config, workdir: str, *, allow_change: bool = False) -> None:
  """Records the config in a new workdir; refuses a different one in a used workdir.

  With `allow_change`, the new config replaces the recorded one, which is kept as
  `config.replaced-<time>.json` so nothing written before is lost.

  Raises:
    ConfigMismatchError: naming each differing key with both values and the way out.
  """
  path = os.path.join(workdir, CONFIG_FILE_NAME)
  current = config_dict(config)
  if not os.path.exists(path):
    os.makedirs(workdir, exist_ok=True)
    _write_json(path, current)
    return
  try:
    with open(path, encoding="utf-8") as file:
      recorded = json.load(file)
  except (OSError, json.JSONDecodeError) as error:
    raise ConfigMismatchError(f"{path} is unreadable ({error}); restore it, or pass "
                              "--override_config to record the current config.") from error
  changed = differences(recorded, current)
  if not changed:
    # Free keys may differ; the recorded file stays the one the run started with.
    return
  if not allow_change:
    listed = "\n".join(f"  {key}: workdir {old!r}, now {new!r}"
                       for key, (old, new) in changed.items())
    raise ConfigMismatchError(
        f"{workdir} holds a run trained with a different config ({path}):\n{listed}\n"
        "Use another --workdir for a new experiment, or pass --override_config to continue "
        "this run with the new values.")
  # Copy first, then replace atomically: a crash in between leaves both configs on disk.
  shutil.copy2(path, os.path.join(workdir, f"config.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
                                           ".json"))
  _write_json(path, current)
