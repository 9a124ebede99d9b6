"""Data parallelism over a device mesh: the modern form of `pmap`.

All devices (of every process) form a one-axis mesh named "data". Batches are global arrays
sharded along their first axis over that axis; the train state is replicated. A train step is
then one `jax.jit` over global arrays: XLA inserts the gradient all-reduce, and BatchNorm
statistics are computed over the global batch, exactly as on one device holding the whole batch.

Multi-host: each process holds the rows of every global batch that belong to its own devices
(contiguous, in process order: `vireid_jax.data.pipeline.train_dataset` yields exactly those),
and `global_batch` assembles them into one global array without copying data between hosts.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A one-axis "data" mesh over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array (parameters, optimiser state, metrics)."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Rows split over the data axis (batches)."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_divisible(global_batch_size: int, mesh: Mesh, what: str) -> None:
  """Raises a ValueError naming the config key when a batch does not split over the devices."""
  if global_batch_size % mesh.size:
    raise ValueError(f"{what}={global_batch_size} is not divisible by the {mesh.size} devices "
                     "of the mesh; change it to a multiple of the device count.")


def global_batch(local_batch: Any, mesh: Mesh) -> Any:
  """This process's rows of a batch (a pytree of NumPy arrays) → global sharded arrays."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(
      lambda local: jax.make_array_from_process_local_data(sharding, np.asarray(local)),
      local_batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places every array of `tree` on every device of the mesh."""
  return jax.device_put(tree, replicated(mesh))


def replicated_batch(batch: Any, mesh: Mesh) -> Any:
  """A batch every process holds whole (evaluation images) → global arrays sharded by rows.

  Each process cuts out the rows of its own devices, so this works across hosts as long as
  every process passes the same batch.
  """
  sharding = batch_sharded(mesh)

  def place(array):
    array = np.asarray(array)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

  return jax.tree.map(place, batch)
