"""Reporting: JSON-ready summaries, a results table, and atomic file writers.

Metrics stay fractions in [0, 1] in every dict and file; only the table shows
percentages.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vireid_jax import failpoints

# Table columns: (header, key in the "mean" dict of a summary).
_TABLE_COLUMNS = (
    ("R1", "rank1"),
    ("R5", "rank5"),
    ("R10", "rank10"),
    ("R20", "rank20"),
    ("mAP", "mAP"),
    ("mINP", "mINP"),
)
# Rank-k (1-based) = CMC entry k - 1.
_REPORTED_RANKS = (1, 5, 10, 20)


def _cmc_at_ranks(cmc: np.ndarray) -> dict[str, float | None]:
  # A CMC clipped to a gallery smaller than k has no rank-k value (the
  # reference would fail to print it): None rather than an invented number.
  return {f"rank{k}": (float(cmc[k - 1]) if k <= len(cmc) else None) for k in _REPORTED_RANKS}


def summarize_trials(
    result: Mapping[str, Any], *, feature: str, protocol: str | None = None
) -> dict[str, Any]:
  """Turns a multi-trial result (one protocol variant's per-trial `rank_metrics`, as
  `evaluator.evaluate` scores them) into a JSON-ready dict.

  Args:
    result: dict with "trials", a list of per-trial dicts holding "cmc",
      "mAP", "mINP" (and optionally "num_valid_queries", "gallery_size"), and
      optionally "protocol" and "num_queries".
    feature: name of the evaluated feature, e.g. "fc" or "pool".
    protocol: protocol name; defaults to `result["protocol"]`.

  Returns:
    dict with "protocol", "feature", "num_trials", "num_queries" (if known),
    "per_trial" (lists over trials of rank1/5/10/20, mAP, mINP, cmc,
    num_valid_queries, gallery_size), "mean" (means over trials, "cmc"
    included) and "std" (population standard deviation over trials, ddof=0).
    Plain Python floats/ints/lists only; a rank beyond the CMC length is None.
  """
  if protocol is None:
    protocol = result.get("protocol")
    if protocol is None:
      raise ValueError("No protocol name: pass protocol= or give the result a 'protocol' key.")
  trials = list(result["trials"])
  if not trials:
    raise ValueError("The result has no trials.")

  cmc_per_trial = np.stack([np.asarray(trial["cmc"], np.float64) for trial in trials])
  per_trial: dict[str, list] = {key: [] for _, key in _TABLE_COLUMNS}
  for trial, cmc in zip(trials, cmc_per_trial):
    for key, value in _cmc_at_ranks(cmc).items():
      per_trial[key].append(value)
    per_trial["mAP"].append(float(trial["mAP"]))
    per_trial["mINP"].append(float(trial["mINP"]))
  per_trial["cmc"] = cmc_per_trial.tolist()
  for optional_key in ("num_valid_queries", "gallery_size"):
    if all(optional_key in trial for trial in trials):
      per_trial[optional_key] = [int(trial[optional_key]) for trial in trials]

  mean = {**_cmc_at_ranks(cmc_per_trial.mean(axis=0)), "cmc": cmc_per_trial.mean(axis=0).tolist()}
  std = dict(_cmc_at_ranks(cmc_per_trial.std(axis=0)))
  for key in ("mAP", "mINP"):
    mean[key] = float(np.mean(per_trial[key]))
    std[key] = float(np.std(per_trial[key]))

  summary = {"protocol": protocol, "feature": feature, "num_trials": len(trials)}
  if "num_queries" in result:
    summary["num_queries"] = int(result["num_queries"])
  summary.update(per_trial=per_trial, mean=mean, std=std)
  return summary


def format_results_table(results: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> str:
  """A Markdown table of the mean metrics, one row per (protocol, feature).

  Args:
    results: one summary or a sequence of summaries from `summarize_trials`
      (each with "protocol", "feature" and a "mean" dict).

  Returns:
    The table: columns protocol, feature, R1, R5, R10, R20, mAP, mINP, the
    metrics as percentages with 2 decimals ("-" where a rank is unavailable),
    rows in the given order, no trailing newline.
  """
  if isinstance(results, Mapping):
    results = [results]
  headers = ["protocol", "feature"] + [header for header, _ in _TABLE_COLUMNS]
  rows = []
  for summary in results:
    row = [str(summary["protocol"]), str(summary["feature"])]
    for _, key in _TABLE_COLUMNS:
      value = summary["mean"].get(key)
      row.append("-" if value is None else f"{100.0 * float(value):.2f}")
    rows.append(row)

  widths = [max(len(cells[i]) for cells in [headers] + rows) for i in range(len(headers))]
  # Names left-aligned, numbers right-aligned so that decimal points line up.
  num_text_columns = 2

  def format_row(cells):
    padded = [
        cell.ljust(width) if i < num_text_columns else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths))
    ]
    return "| " + " | ".join(padded) + " |"

  # Separator cells span the cell's padding too; ":" on the right = right-aligned.
  separator = [
      "-" * (width + 2) if i < num_text_columns else "-" * (width + 1) + ":"
      for i, width in enumerate(widths)
  ]
  lines = [format_row(headers), "|" + "|".join(separator) + "|"]
  lines += [format_row(row) for row in rows]
  return "\n".join(lines)


def _to_json_compatible(value: Any) -> Any:
  """`json.dumps` fallback: NumPy/JAX arrays and scalars to lists and numbers."""
  # NumPy arrays, NumPy scalars and jax.Arrays all expose __array__.
  if hasattr(value, "__array__"):
    return np.asarray(value).tolist()
  raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable.")


def write_results_json(path: str | os.PathLike, results: Any) -> None:
  """Writes `results` as JSON to `path` atomically (`write_file_atomically`).

  The whole document is serialised before any file is touched, so a results
  object that cannot be written leaves the old file as it was.

  Args:
    path: destination file; its folder must exist.
    results: JSON-compatible data; NumPy/JAX arrays and scalars are converted
      to lists and numbers. NaN and infinity are rejected (they are not JSON).

  Raises:
    TypeError, ValueError: `results` cannot be serialised (nothing is written).
    OSError: the file could not be written (the old file, if any, is intact).
  """
  text = json.dumps(results, default=_to_json_compatible, indent=2, allow_nan=False) + "\n"
  write_file_atomically(path, text.encode("utf-8"))


def write_file_atomically(path: str | os.PathLike, data: bytes) -> None:
  """Writes `data` to `path` so that readers see the old file or the new one, never half.

  The bytes go to a temporary file in the same folder, flushed and fsync'ed,
  which is then moved over `path` with `os.replace` (atomic on POSIX within
  one file system). A crash or error at any point leaves either the old file
  or the complete new one; an error removes the temporary file, while a killed
  process may leave its hidden `.<name>.*.tmp` behind, which nothing reads.

  Args:
    path: destination file; its folder must exist.
    data: the complete new content.

  Raises:
    OSError: the file could not be written (the old file, if any, is intact).
  """
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  file_descriptor, temporary_path = tempfile.mkstemp(
      dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
  )
  try:
    with os.fdopen(file_descriptor, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    # mkstemp creates files readable by the owner only; results are meant to be shared.
    os.chmod(temporary_path, 0o644)
    failpoints.hit(f"rename:{os.path.basename(path)}")
    os.replace(temporary_path, path)
  except BaseException:
    if os.path.exists(temporary_path):
      os.remove(temporary_path)
    raise
  _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
  # Makes the rename itself durable; not possible on every platform (Windows).
  try:
    folder_descriptor = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(folder_descriptor)
  except OSError:
    pass
  finally:
    os.close(folder_descriptor)
