"""Orbax checkpoints of the train state under `<workdir>/checkpoints/<step>`.

Orbax writes each checkpoint into a temporary folder and renames it only once complete, and
`latest_step` lists finalised checkpoints only, so a write interrupted midway is never restored.
Before restoring, every array's shape is compared with the config's model, so a checkpoint of
another architecture stops with an error naming each mismatched parameter and both shapes
instead of failing deep inside the restore.
"""

from __future__ import annotations

import os
from typing import Any

from flax import serialization
import jax
import orbax.checkpoint as ocp

from vireid_jax import pytree_paths

CHECKPOINTS_FOLDER = "checkpoints"


class CheckpointMismatchError(ValueError):
  """A checkpoint's arrays do not fit the state the config builds."""


class Checkpointer:
  """Saves and restores a method's state (any pytree with a scalar `step`) by step.

  A checkpoint holds every array of the state, as the nested dict of its field names
  (`flax.serialization.to_state_dict`); static parts (graph definitions, optimisers) are
  rebuilt from the config.

  Args:
    directory: the folder holding one sub-folder per step (`<workdir>/checkpoints`).
    max_to_keep: newest checkpoints kept; older ones are deleted after a successful save.
  """

  def __init__(self, directory: str, *, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        item_handlers=ocp.StandardCheckpointHandler())

  @classmethod
  def for_workdir(cls, workdir: str, *, max_to_keep: int = 3) -> "Checkpointer":
    return cls(os.path.join(workdir, CHECKPOINTS_FOLDER), max_to_keep=max_to_keep)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, state, *, force: bool = False) -> None:
    """Saves asynchronously; a step that is already saved is left as it is."""
    step = int(jax.device_get(state.step))
    if step in self.manager.all_steps():
      return
    self.manager.save(step, args=ocp.args.StandardSave(checkpoint_items(state)), force=force)

  def restore(self, state, step: int | None = None):
    """Restores `step` (default: the newest) into a state of the same structure.

    The restored arrays take the shardings of `state`'s arrays (replicated over the mesh).

    Raises:
      FileNotFoundError: no finalised checkpoint (or not that step) in the folder.
      CheckpointMismatchError: missing, unexpected or differently shaped arrays, each named.
    """
    step = self.latest_step() if step is None else step
    if step is None or step not in self.manager.all_steps():
      available = ", ".join(map(str, self.all_steps())) or "none"
      raise FileNotFoundError(f"No checkpoint for step {step} in {self.directory} "
                              f"(finalised steps: {available}).")
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, checkpoint_items(state))
    check_shapes(self.manager.item_metadata(step), target,
                 os.path.join(self.directory, str(step)))
    restored = self.manager.restore(step, args=ocp.args.StandardRestore(target))
    return serialization.from_state_dict(state, restored)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def checkpoint_items(state: Any) -> Any:
  """What a checkpoint of `state` holds: its arrays as nested dicts of field names."""
  return serialization.to_state_dict(state)


def resolve(path: str) -> tuple[str, int | None]:
  """`config.eval.checkpoint` → (checkpoints folder, step or None for the newest).

  Accepts a workdir, its `checkpoints` folder, or one step's folder (`.../checkpoints/840`).
  """
  path = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(path):
    raise FileNotFoundError(f"config.eval.checkpoint={path} does not exist; give a workdir, "
                            "its checkpoints folder, or one step's folder in it.")
  if os.path.isdir(os.path.join(path, CHECKPOINTS_FOLDER)):
    return os.path.join(path, CHECKPOINTS_FOLDER), None
  name = os.path.basename(path)
  if name.isdigit() and os.path.isfile(os.path.join(path, "_CHECKPOINT_METADATA")):
    return os.path.dirname(path), int(name)
  return path, None


def _shapes(tree: Any) -> dict[str, tuple]:
  return {pytree_paths.path_string(path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def check_shapes(saved_metadata: Any, target: Any, location: str) -> None:
  """Raises CheckpointMismatchError listing every array that does not fit, with both shapes."""
  saved, expected = _shapes(saved_metadata), _shapes(target)
  problems = [f"  {name}: checkpoint {saved[name]}, config {expected[name]}"
              for name in sorted(saved.keys() & expected.keys()) if saved[name] != expected[name]]
  problems += [f"  {name}: in the config's model, not in the checkpoint"
               for name in sorted(expected.keys() - saved.keys())]
  problems += [f"  {name}: in the checkpoint, not in the config's model"
               for name in sorted(saved.keys() - expected.keys())]
  if problems:
    raise CheckpointMismatchError(
        f"The checkpoint {location} does not match the model the config builds "
        f"({len(problems)} arrays):\n" + "\n".join(problems) +
        "\nEvaluate it with the config it was trained with (the workdir's config.json).")
