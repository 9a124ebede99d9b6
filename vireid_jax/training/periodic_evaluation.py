"""Evaluation on the test split during training, and the choice of the reported checkpoint.

The references evaluate every other epoch on the test split (gallery trial 0, the BNNeck
feature) and keep the checkpoint with the best rank-1 (spec baseline §6, `train.py:384-400`).
`config.eval.every_epochs = N` evaluates after every 0-based epoch e > 0 with e % N == 0 (the
references: N = 2, epochs 2, 4, ..., 80), on the main protocol variant, the main feature and
gallery trial 0 only, and records R1 / mAP / mINP (TensorBoard "eval/*", `eval_curve.json`
beside the checkpoints, and `results.json` at the end). `config.eval.select`:

* "last" (default): the final model is evaluated and reported.
* "best": the checkpoint with the best R1 so far is kept in `<workdir>/checkpoints_best` and
  evaluated at the end instead. Choosing on the test split inflates the number; results.json
  and the printed table say which checkpoint was used.

A resumed run reads the curve back (so the best-so-far survives a kill) and evaluates an
epoch whose evaluation the kill interrupted before going on.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from absl import logging
import jax
import ml_collections

from vireid_jax.evaluation import report
from vireid_jax.training import orbax_checkpoints

CURVE_FILE = "eval_curve.json"
BEST_CHECKPOINTS_FOLDER = "checkpoints_best"
SELECTIONS = ("last", "best")


def check_config(config) -> None:
  """Raises a ValueError naming the key when `every_epochs` / `select` cannot work."""
  every, select = config.eval.every_epochs, config.eval.select
  if every < 0:
    raise ValueError(f"config.eval.every_epochs={every}: 0 (only at the end) or a period.")
  if select not in SELECTIONS:
    raise ValueError(f"config.eval.select={select!r}: expected one of {SELECTIONS}.")
  if select == "best" and not any(is_due(every, epoch)
                                  for epoch in range(config.train.num_epochs)):
    raise ValueError(f"config.eval.select='best' chooses among the evaluations during "
                     f"training, and config.eval.every_epochs={every} with "
                     f"{config.train.num_epochs} epochs makes none; set every_epochs (the "
                     "references use 2).")


def is_due(every_epochs: int, epoch: int) -> bool:
  """Whether 0-based `epoch` ends with an evaluation (the references: e > 0, e % 2 == 0)."""
  return every_epochs > 0 and epoch > 0 and epoch % every_epochs == 0


def main_protocol_config(eval_config) -> ml_collections.ConfigDict:
  """`config.eval` reduced to what the references evaluate during training: the first
  protocol variant, the main feature, gallery trial 0, no pictures."""
  reduced = ml_collections.ConfigDict(eval_config.to_dict())
  reduced.features = (eval_config.main_feature,)
  reduced.num_trials = 1
  reduced.regdb_directions = tuple(eval_config.regdb_directions)[:1]
  reduced.llcm_directions = tuple(eval_config.llcm_directions)[:1]
  reduced.ranking_queries = 0
  return reduced


def best_directory(workdir: str) -> str:
  return os.path.join(workdir, BEST_CHECKPOINTS_FOLDER)


class PeriodicEvaluation:
  """Runs the evaluations of `config.eval.every_epochs` and keeps the curve and the best state.

  Args:
    config: the experiment config.
    workdir: the run's folder (curve file and best checkpoints live there).
    evaluate: state → summaries of `vireid_jax.evaluation.evaluate` under
      `main_protocol_config` (the first one is used).
    write: (line) → None, how one line per evaluation reaches the console.
  """

  def __init__(self, config, workdir: str, evaluate: Callable[[Any], list],
               write: Callable[[str], None] = print):
    check_config(config)
    self.every_epochs = config.eval.every_epochs
    self.select = config.eval.select
    self._evaluate = evaluate
    self._write = write
    self._curve_path = os.path.join(workdir, CURVE_FILE)
    self.curve = read_curve(self._curve_path)
    self._best_checkpointer = (orbax_checkpoints.Checkpointer(best_directory(workdir),
                                                              max_to_keep=1)
                               if self.select == "best" else None)

  def forget_after(self, step: int) -> None:
    """Drops entries of steps the restored state has not reached (a resume from an older
    checkpoint)."""
    self.curve = [entry for entry in self.curve if entry["step"] <= step]

  def recorded(self, epoch: int) -> bool:
    return any(entry["epoch"] == epoch for entry in self.curve)

  def best(self) -> dict | None:
    """The entry with the highest R1 (the earliest among equals), or None."""
    best = None
    for entry in self.curve:
      if best is None or entry["R1"] > best["R1"]:
        best = entry
    return best

  def after_epoch(self, state, epoch: int, step: int, writer) -> None:
    """Evaluates `state` (the state at the end of 0-based `epoch`) if that epoch is due."""
    if not is_due(self.every_epochs, epoch) or self.recorded(epoch):
      return
    summary = self._evaluate(state)[0]
    entry = {"epoch": epoch, "step": step, "protocol": summary["protocol"],
             "feature": summary["feature"], "R1": summary["mean"]["rank1"],
             "mAP": summary["mean"]["mAP"], "mINP": summary["mean"]["mINP"]}
    previous_best = self.best()
    if self._best_checkpointer is not None and (previous_best is None
                                                or entry["R1"] > previous_best["R1"]):
      # Saved (and finished) before the curve names it: a kill in between evaluates again.
      self._best_checkpointer.save(state)
      self._best_checkpointer.wait()
    self.curve.append(entry)
    if jax.process_index() == 0:
      report.write_results_json(self._curve_path, self.curve)
    writer.scalars(step, {"eval/R1": entry["R1"], "eval/mAP": entry["mAP"],
                          "eval/mINP": entry["mINP"]})
    best = self.best()
    self._write(f"eval epoch {epoch} (step {step}): {entry['protocol']} {entry['feature']}  "
                f"R1 {100 * entry['R1']:.2f}  mAP {100 * entry['mAP']:.2f}  "
                f"mINP {100 * entry['mINP']:.2f}  (best R1 {100 * best['R1']:.2f}, "
                f"epoch {best['epoch']})")

  def close(self) -> None:
    if self._best_checkpointer is not None:
      self._best_checkpointer.wait()
      self._best_checkpointer.close()


def read_curve(path: str) -> list[dict]:
  """The evaluations recorded so far (an empty list for a new run)."""
  if not os.path.isfile(path):
    return []
  with open(path, encoding="utf-8") as curve_file:
    curve = json.load(curve_file)
  logging.info("Read %d evaluations during training from %s", len(curve), path)
  return curve
