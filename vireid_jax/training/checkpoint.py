"""Orbax checkpoints of the train state under `<workdir>/checkpoints`.

Orbax writes each checkpoint into a temporary folder and renames it only once complete, and
`latest_step` lists finalised checkpoints only, so a write interrupted midway is never restored.
"""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from vireid_jax.training.state import TrainState


class Checkpointer:
  """Saves and restores `TrainState` by step number."""

  def __init__(self, workdir: str, *, max_to_keep: int = 3):
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, state: TrainState) -> None:
    step = int(jax.device_get(state.step))
    self.manager.save(step, args=ocp.args.StandardSave(state.checkpoint_items()))

  def restore(self, state: TrainState, step: int | None = None) -> TrainState:
    """Restores `step` (default: the newest) into a state with the same structure."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {self.directory}.")
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state.checkpoint_items())
    restored = self.manager.restore(step, args=ocp.args.StandardRestore(target))
    return state.replace_checkpoint_items(restored)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
