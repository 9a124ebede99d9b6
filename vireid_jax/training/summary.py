"""TensorBoard scalars, written without TensorFlow (tensorboardX), so GPU hosts need no TF."""

from __future__ import annotations

from absl import logging

try:
  from tensorboardX import SummaryWriter
except ImportError:  # pragma: no cover - only where tensorboardX is not installed
  SummaryWriter = None


class Writer:
  """Scalar summaries under `logdir`; a no-op (with one warning) without tensorboardX."""

  def __init__(self, logdir: str):
    if SummaryWriter is None:
      logging.warning("tensorboardX is not installed; no TensorBoard summaries in %s", logdir)
      self._writer = None
    else:
      self._writer = SummaryWriter(logdir)

  def scalars(self, step: int, values: dict) -> None:
    if self._writer is None:
      return
    for name, value in values.items():
      self._writer.add_scalar(name, float(value), step)

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
