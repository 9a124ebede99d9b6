"""Plain names of pytree paths, for messages, checkpoint checks, key maps and parameter groups.

JAX key paths (``jax.tree_util.tree_leaves_with_path``, ``tree_map_with_path``) hold entry
objects: ``DictKey(key)``, ``GetAttrKey(name)``, ``SequenceKey(idx)``,
``FlattenedIndexKey(key)``. ``nnx.to_flat_state`` paths hold the plain names already. These
helpers turn either kind into plain names, so every part of the library names a parameter the
same way: ``path_string(path) == 'stages.layers.0.1.conv1.kernel'``.

Pure Python: no JAX, TensorFlow or PyTorch import.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# A trailing entry of this name is the array inside an ``nnx.Variable`` (the leaves of an
# ``nnx.State`` flattened as a plain pytree); it names no parameter.
VARIABLE_VALUE = 'value'


def key_name(entry: Any) -> Any:
  """The plain name of one path entry.

  Args:
    entry: a JAX key-path entry (``DictKey``, ``GetAttrKey``, ``SequenceKey``,
      ``FlattenedIndexKey``) or an already plain name (``str``, ``int``).

  Returns:
    The dict key or attribute name (usually a ``str``) or the sequence index (an ``int``);
    a plain name is returned as it is.
  """
  for attribute in ('key', 'name', 'idx'):
    if hasattr(entry, attribute):
      return getattr(entry, attribute)
  return entry


def path_names(path: Iterable[Any]) -> tuple[Any, ...]:
  """The plain names of a path's entries, without nnx's trailing ``'value'``.

  Indices stay ``int`` (key maps compute with them, e.g. ``layer{stage + 1}``).

  Args:
    path: a JAX key path or a tuple of plain names (``nnx.to_flat_state``).

  Returns:
    e.g. ``('stages', 'layers', 0, 1, 'conv1', 'kernel')``.
  """
  names = [key_name(entry) for entry in path]
  if names and names[-1] == VARIABLE_VALUE:
    names.pop()
  return tuple(names)


def path_string(path: Iterable[Any], sep: str = '.') -> str:
  """A path as one string, its names joined by ``sep``: ``'bottleneck.scale'``."""
  return sep.join(str(name) for name in path_names(path))
