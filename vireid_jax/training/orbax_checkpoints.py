"""Orbax checkpoints of the train state under `<workdir>/checkpoints/<step>`.

Orbax writes each checkpoint into a temporary folder and renames it only once complete, and
`latest_step` lists finalised checkpoints only, so a write interrupted midway is never restored.
Before restoring, every array's shape is compared with the config's model, so a checkpoint of
another architecture stops with an error naming each mismatched parameter and both shapes
instead of failing deep inside the restore.

Orbax does not checksum the arrays it writes: a flipped byte in a data file restores as other
numbers, silently. So once a save has committed, a manifest of every file of that step (size
and SHA-256, `checksums.json` in the step's folder, written atomically by process 0) is
recorded, and `restore` verifies it first: a flipped byte, a truncated or a missing file stops
with `CheckpointCorruptError` naming the step and the file, and how to fall back to the
previous step. A step without a manifest (a process killed between the commit and the manifest,
or a checkpoint of an older version) is restored unverified, with a log line.

A full disk while saving (the error orbax reports, or `OSError(ENOSPC)`) is a
`vireid_jax.disk.DiskFullError` naming the step's folder; the write went to a temporary folder,
so the previous checkpoints stay committed and the next start resumes from the newest of them.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from absl import logging
from flax import serialization
import jax
import orbax.checkpoint as ocp

from vireid_jax import disk
from vireid_jax import failpoints
from vireid_jax import pytree_paths
from vireid_jax.evaluation import report

CHECKPOINTS_FOLDER = "checkpoints"
# The manifest of a committed step's files, inside the step's folder.
CHECKSUMS_FILE = "checksums.json"


class CheckpointMismatchError(ValueError):
  """A checkpoint's arrays do not fit the state the config builds."""


class CheckpointCorruptError(ValueError):
  """A committed checkpoint's files differ from the manifest recorded when it was saved."""


class Checkpointer:
  """Saves and restores a method's state (any pytree with a scalar `step`) by step.

  A checkpoint holds every array of the state, as the nested dict of its field names
  (`flax.serialization.to_state_dict`); static parts (graph definitions, optimisers) are
  rebuilt from the config.

  Args:
    directory: the folder holding one sub-folder per step (`<workdir>/checkpoints`).
    max_to_keep: newest checkpoints kept; older ones are deleted after a successful save.
    read_only: only restore (evaluation): never creates, writes or deletes anything, so it may
      read the folder of a run that is training.
  """

  def __init__(self, directory: str, *, max_to_keep: int = 3, read_only: bool = False):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only,
                                             read_only=read_only),
        item_handlers=ocp.StandardCheckpointHandler())
    # Saved steps whose manifest is written once their save has committed.
    self._without_manifest = []

  @classmethod
  def for_workdir(cls, workdir: str, *, max_to_keep: int = 3) -> "Checkpointer":
    return cls(os.path.join(workdir, CHECKPOINTS_FOLDER), max_to_keep=max_to_keep)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def step_directory(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, state, *, force: bool = False) -> None:
    """Saves asynchronously; a step that is already saved is left as it is.

    Raises:
      disk.DiskFullError: the disk filled up during this save or the previous one.
    """
    step = int(jax.device_get(state.step))
    if step in self.manager.all_steps():
      return
    # Orbax would wait for the previous save here anyway; its manifest is written meanwhile.
    self._finish_saves()
    with disk.reporting_full_disk(self.step_directory(step), f"the checkpoint of step {step}",
                                  self._kept()):
      self.manager.save(step, args=ocp.args.StandardSave(checkpoint_items(state)), force=force)
    self._without_manifest.append(step)
    failpoints.hit("checkpoint_write")

  def _kept(self) -> str:
    # Orbax lists a step whose save is under way among its steps.
    steps = ", ".join(str(step) for step in self.all_steps()
                      if step not in self._without_manifest) or "none"
    return (f"The committed checkpoints in {self.directory} (steps {steps}) are intact, and the "
            "next start resumes from the newest")

  def _finish_saves(self) -> None:
    """Waits for the pending save and records the manifest of each committed step."""
    pending = self._without_manifest[-1] if self._without_manifest else None
    with disk.reporting_full_disk(
        self.directory if pending is None else self.step_directory(pending),
        "a checkpoint" if pending is None else f"the checkpoint of step {pending}",
        self._kept()):
      self.manager.wait_until_finished()
      steps, self._without_manifest = self._without_manifest, []
      if jax.process_index() != 0:
        return
      committed = set(self.manager.all_steps())
      for step in steps:
        if step in committed:
          failpoints.hit("checkpoint_manifest")
          write_checksums(self.step_directory(step))

  def verify(self, step: int) -> bool:
    """Checks step `step`'s files against its manifest; False when it has none.

    Raises:
      CheckpointCorruptError: naming the step, the file and the previous steps to fall back on.
    """
    problem = checksum_problem(self.step_directory(step))
    if problem is None:
      return True
    if problem == "":
      return False
    previous = [other for other in self.all_steps() if other < step]
    fallback = (
        f"The previous committed step is {previous[-1]}: evaluate it with "
        f"--config.eval.checkpoint={self.step_directory(previous[-1])}, or resume training from "
        f"it by moving {self.step_directory(step)} out of {self.directory} (the run then "
        f"recomputes the steps after {previous[-1]} exactly)." if previous else
        "No earlier step is kept in this folder; train again from scratch (a new --workdir).")
    raise CheckpointCorruptError(
        f"The checkpoint of step {step} in {self.directory} is corrupt: {problem}. It was not "
        f"restored. {fallback}")

  def restore(self, state, step: int | None = None):
    """Restores `step` (default: the newest) into a state of the same structure.

    The restored arrays take the shardings of `state`'s arrays (replicated over the mesh).

    Raises:
      FileNotFoundError: no finalised checkpoint (or not that step) in the folder.
      CheckpointCorruptError: a file of the step differs from its manifest (`verify`).
      CheckpointMismatchError: missing, unexpected or differently shaped arrays, each named.
    """
    step = self.latest_step() if step is None else step
    if step is None or step not in self.manager.all_steps():
      available = ", ".join(map(str, self.all_steps())) or "none"
      raise FileNotFoundError(f"No checkpoint for step {step} in {self.directory} "
                              f"(finalised steps: {available}).")
    if not self.verify(step):
      logging.warning("The checkpoint of step %d in %s has no %s (saved by an older version, or "
                      "the process ended just after the save): restored without verifying its "
                      "files.", step, self.directory, CHECKSUMS_FILE)
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, checkpoint_items(state))
    check_shapes(self.manager.item_metadata(step), target,
                 os.path.join(self.directory, str(step)))
    restored = self.manager.restore(step, args=ocp.args.StandardRestore(target))
    return serialization.from_state_dict(state, restored)

  def wait(self) -> None:
    self._finish_saves()

  def close(self) -> None:
    self.manager.close()


def checkpoint_items(state: Any) -> Any:
  """What a checkpoint of `state` holds: its arrays as nested dicts of field names."""
  return serialization.to_state_dict(state)


def _file_digests(step_directory: str) -> dict[str, dict]:
  """{path relative to the step's folder: {"size", "sha256"}} of every file but the manifest."""
  digests = {}
  for folder, _, names in os.walk(step_directory):
    for name in names:
      path = os.path.join(folder, name)
      relative = os.path.relpath(path, step_directory)
      if relative == CHECKSUMS_FILE:
        continue
      digests[relative] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
  return digests


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as file:
    for chunk in iter(lambda: file.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def write_checksums(step_directory: str) -> None:
  """Records the manifest of a committed step (`CHECKSUMS_FILE`), atomically."""
  manifest = {"algorithm": "sha256", "files": _file_digests(step_directory)}
  report.write_file_atomically(os.path.join(step_directory, CHECKSUMS_FILE),
                               (json.dumps(manifest, indent=1, sort_keys=True) + "\n")
                               .encode("utf-8"))


def checksum_problem(step_directory: str) -> str | None:
  """What is wrong with a step's files: None (all match), "" (no manifest) or the first
  difference, naming the file."""
  manifest_path = os.path.join(step_directory, CHECKSUMS_FILE)
  try:
    with open(manifest_path, encoding="utf-8") as file:
      recorded = json.load(file)["files"]
  except FileNotFoundError:
    return ""
  except (OSError, ValueError, KeyError) as error:
    return f"its manifest {manifest_path} is unreadable ({error})"
  for relative, expected in sorted(recorded.items()):
    path = os.path.join(step_directory, relative)
    if not os.path.isfile(path):
      return f"the file {path} is missing"
    size = os.path.getsize(path)
    if size != expected["size"]:
      return (f"the file {path} has {size} bytes, {expected['size']} when it was saved "
              f"({'truncated' if size < expected['size'] else 'grown'})")
  for relative, expected in sorted(recorded.items()):
    path = os.path.join(step_directory, relative)
    actual = _sha256(path)
    if actual != expected["sha256"]:
      return (f"the file {path} has other bytes than when it was saved (SHA-256 "
              f"{actual[:16]}…, recorded {expected['sha256'][:16]}…)")
  return None


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
