"""Tests of `python -m vireid_jax.evaluation.aggregate`: pooling the results.json of
several runs (RegDB's ten trials) into one mean and standard deviation."""

import json
import subprocess
import sys

import numpy as np
import pytest

from vireid_jax.evaluation import summarize_trials
from vireid_jax.evaluation import write_results_json
from vireid_jax.evaluation.aggregate import aggregate_results

REPO_ROOT = __file__.rsplit("/tests/", 1)[0]


def _run_results(data_trial, rank1, mean_ap):
  """A results.json document of one RegDB run (one trial), as the loop writes it."""
  cmc = np.minimum(rank1 + np.arange(20) / 40, 1.0)
  summaries = []
  for feature, offset in (("pool", -0.05), ("bn", 0.0)):
    summary = summarize_trials(
        {"trials": [{"cmc": cmc + offset, "mAP": mean_ap + offset, "mINP": mean_ap / 2,
                     "num_valid_queries": 2060, "gallery_size": 2060}],
         "num_queries": 2060},
        feature=feature, protocol="regdb_visible_to_thermal")
    summary["settings"] = {"dataset": "regdb", "direction": "visible_to_thermal",
                           "data_trial": data_trial}
    summaries.append(summary)
  return {"step": 100, "main_feature": "bn", "trained": summaries}


def test_pools_trials_into_mean_and_std():
  documents = [_run_results(1, 0.6, 0.5), _run_results(2, 0.7, 0.6), _run_results(3, 0.8, 0.4)]
  pooled = aggregate_results(documents, sources=["a.json", "b.json", "c.json"])
  assert [(s["protocol"], s["feature"]) for s in pooled] == [
      ("regdb_visible_to_thermal", "pool"), ("regdb_visible_to_thermal", "bn")]
  bn = pooled[1]
  assert bn["num_trials"] == 3
  assert bn["mean"]["rank1"] == pytest.approx(0.7)
  assert bn["mean"]["mAP"] == pytest.approx(0.5)
  assert bn["std"]["mAP"] == pytest.approx(np.std([0.5, 0.6, 0.4]))
  assert bn["per_trial"]["gallery_size"] == [2060] * 3
  assert bn["settings"] == {"dataset": "regdb", "direction": "visible_to_thermal",
                            "data_trials": [1, 2, 3]}
  assert bn["sources"] == ["a.json", "b.json", "c.json"]
  assert pooled[0]["mean"]["mAP"] == pytest.approx(0.45)


def test_refuses_a_trial_twice_and_mixed_settings():
  with pytest.raises(ValueError, match="trial 2"):
    aggregate_results([_run_results(2, 0.6, 0.5), _run_results(2, 0.7, 0.6)])
  other = _run_results(3, 0.6, 0.5)
  for summary in other["trained"]:
    summary["settings"]["direction"] = "thermal_to_visible"
  with pytest.raises(ValueError, match="settings"):
    aggregate_results([_run_results(1, 0.6, 0.5), other])
  with pytest.raises(KeyError, match="before_training"):
    aggregate_results([_run_results(1, 0.6, 0.5)], key="before_training")


def test_command_line(tmp_path):
  paths = []
  for trial, (rank1, mean_ap) in enumerate([(0.6, 0.5), (0.8, 0.7)], start=1):
    path = tmp_path / f"trial{trial}" / "results.json"
    path.parent.mkdir()
    write_results_json(path, _run_results(trial, rank1, mean_ap))
    paths.append(str(path))
  output = tmp_path / "mean.json"
  completed = subprocess.run(
      [sys.executable, "-m", "vireid_jax.evaluation.aggregate", *paths, "--output", str(output)],
      cwd=REPO_ROOT, capture_output=True, text=True, check=False)
  assert completed.returncode == 0, completed.stderr
  # Mean rank-1 of bn: (0.6 + 0.8) / 2 = 70 %; mAP 60 %.
  assert "| regdb_visible_to_thermal | bn      | 70.00 |" in completed.stdout
  pooled = json.loads(output.read_text())
  assert pooled[1]["mean"]["mAP"] == pytest.approx(0.6) and pooled[1]["num_trials"] == 2
