"""Tests of the result summaries, the results table and the atomic JSON writer."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from vireid_jax.evaluation import format_results_table
from vireid_jax.evaluation import report
from vireid_jax.evaluation import summarize_trials
from vireid_jax.evaluation import write_results_json


def _two_trial_result():
  # CMC of trial 0: rank-k = 0.5 + k/100 for k = 1..20; trial 1: 0.6 + k/100.
  ranks = np.arange(1, 21)
  return {
      "protocol": "sysu_all",
      "num_queries": 3803,
      "trials": [
          {
              "cmc": 0.5 + ranks / 100, "mAP": 0.40, "mINP": 0.30,
              "num_valid_queries": 3803, "gallery_size": 301,
              "gallery_indices": np.arange(301),
          },
          {
              "cmc": 0.6 + ranks / 100, "mAP": 0.50, "mINP": 0.20,
              "num_valid_queries": 3803, "gallery_size": 301,
              "gallery_indices": np.arange(301),
          },
      ],
  }  # fmt: skip


def test_summarize_trials_means_stds_and_per_trial_values():
  summary = summarize_trials(_two_trial_result(), feature="fc")
  assert summary["protocol"] == "sysu_all" and summary["feature"] == "fc"
  assert summary["num_trials"] == 2 and summary["num_queries"] == 3803
  per_trial = summary["per_trial"]
  np.testing.assert_allclose(per_trial["rank1"], [0.51, 0.61])
  np.testing.assert_allclose(per_trial["rank20"], [0.70, 0.80])
  assert per_trial["mAP"] == [0.40, 0.50] and per_trial["mINP"] == [0.30, 0.20]
  assert per_trial["num_valid_queries"] == [3803, 3803]
  assert per_trial["gallery_size"] == [301, 301]
  # Means: rank-k = 0.55 + k/100; mAP 0.45; mINP 0.25.
  mean = summary["mean"]
  np.testing.assert_allclose(
      [mean["rank1"], mean["rank5"], mean["rank10"], mean["rank20"]], [0.56, 0.60, 0.65, 0.75]
  )
  np.testing.assert_allclose([mean["mAP"], mean["mINP"]], [0.45, 0.25])
  np.testing.assert_allclose(mean["cmc"], 0.55 + np.arange(1, 21) / 100)
  # Population std of two values a, b is |a - b| / 2.
  np.testing.assert_allclose([summary["std"]["rank1"], summary["std"]["mAP"]], [0.05, 0.05])
  # Plain Python data: serialisable without any converter.
  json.dumps(summary, allow_nan=False)


def test_summarize_trials_protocol_override_and_missing_name():
  result = _two_trial_result()
  assert summarize_trials(result, feature="pool", protocol="sysu_x")["protocol"] == "sysu_x"
  del result["protocol"]
  with pytest.raises(ValueError, match="protocol"):
    summarize_trials(result, feature="pool")


def test_results_table():
  summary = summarize_trials(_two_trial_result(), feature="fc")
  # A gallery of 7 images clips the CMC to 7 entries: no rank-10/20.
  short = summarize_trials(
      {"trials": [{"cmc": np.linspace(0.4, 1.0, 7), "mAP": 0.123456, "mINP": 0.1}]},
      feature="pool",
      protocol="tiny",
  )
  assert short["mean"]["rank10"] is None
  expected = "\n".join([
      "| protocol | feature |    R1 |    R5 |   R10 |   R20 |   mAP |  mINP |",
      "|----------|---------|------:|------:|------:|------:|------:|------:|",
      "| sysu_all | fc      | 56.00 | 60.00 | 65.00 | 75.00 | 45.00 | 25.00 |",
      "| tiny     | pool    | 40.00 | 80.00 |     - |     - | 12.35 | 10.00 |",
  ])
  assert format_results_table([summary, short]) == expected
  # A single summary is one row.
  assert format_results_table(summary).splitlines()[2] == expected.splitlines()[2]


def _folder_entries(folder):
  return sorted(os.listdir(folder))


def test_write_results_json_converts_arrays(tmp_path):
  path = tmp_path / "results.json"
  write_results_json(
      path,
      {
          "cmc": np.array([0.5, 1.0], np.float32),
          "jax_cmc": jnp.array([0.25, 1.0]),
          "mAP": np.float64(0.75),
          "num_valid_queries": np.int64(3),
          "nested": [{"indices": np.arange(3)}],
      },
  )
  assert json.loads(path.read_text()) == {
      "cmc": [0.5, 1.0],
      "jax_cmc": [0.25, 1.0],
      "mAP": 0.75,
      "num_valid_queries": 3,
      "nested": [{"indices": [0, 1, 2]}],
  }
  assert _folder_entries(tmp_path) == ["results.json"]  # no temporary file left
  assert os.stat(path).st_mode & 0o777 == 0o644


def test_write_results_json_replaces_existing_file(tmp_path):
  path = tmp_path / "results.json"
  write_results_json(path, {"version": 1})
  write_results_json(path, {"version": 2})
  assert json.loads(path.read_text()) == {"version": 2}
  assert _folder_entries(tmp_path) == ["results.json"]


@pytest.mark.parametrize(
    "bad_results",
    [{"model": object()}, {"mAP": float("nan")}],
    ids=["unserialisable", "nan"],
)
def test_failed_serialisation_keeps_old_file(tmp_path, bad_results):
  path = tmp_path / "results.json"
  write_results_json(path, {"mAP": 0.5})
  old_text = path.read_text()
  with pytest.raises((TypeError, ValueError)):
    write_results_json(path, bad_results)
  assert path.read_text() == old_text
  assert _folder_entries(tmp_path) == ["results.json"]


def test_failed_write_keeps_old_file_and_removes_temporary(tmp_path, monkeypatch):
  path = tmp_path / "results.json"
  write_results_json(path, {"mAP": 0.5})
  old_text = path.read_text()

  def failing_fsync(file_descriptor):
    raise OSError("disk full")

  # The new content is already written to the temporary file when fsync fails.
  monkeypatch.setattr(report.os, "fsync", failing_fsync)
  with pytest.raises(OSError, match="disk full"):
    write_results_json(path, {"mAP": 0.9})
  assert path.read_text() == old_text
  assert _folder_entries(tmp_path) == ["results.json"]
