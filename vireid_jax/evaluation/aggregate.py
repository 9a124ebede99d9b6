"""Averages the results.json of several runs: RegDB's ten-trial mean, or repeated seeds.

RegDB has ten trials, each with its own train/test identities, so every trial needs its
own trained model and run (`config.data.trial`); a run's results.json holds one trial.
The literature's RegDB number is the mean over the ten runs:

    python -m vireid_jax.evaluation.aggregate runs/regdb_trial*/results.json \
        --output runs/regdb_mean.json

Every (protocol, feature) summary found in the files is pooled: the per-trial values of
all files become the trials of one summary (`report.summarize_trials`: mean and
population standard deviation over them). Summaries of the same (protocol, feature) must
agree on their settings (apart from the data trial), and a data trial may appear only once,
so runs of different configurations or the same run twice are refused rather than mixed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from vireid_jax.evaluation import report

# Per-trial lists copied from each file's summaries into the pooled trials.
_TRIAL_KEYS = ("mAP", "mINP", "num_valid_queries", "gallery_size")


def _summaries_of(document: Any, key: str, source: str) -> list[Mapping[str, Any]]:
  if isinstance(document, Mapping):
    if key not in document:
      raise KeyError(f"{source} has no {key!r} results (it holds {sorted(document)}); choose"
                     " one with --key.")
    document = document[key]
  if not isinstance(document, list) or not all(
      isinstance(summary, Mapping) and "per_trial" in summary for summary in document):
    raise ValueError(f"{source}: {key!r} is not a list of evaluation summaries.")
  return document


def aggregate_results(
    documents: Sequence[Any],
    *,
    key: str = "trained",
    sources: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
  """Pools the summaries of several results.json documents.

  Args:
    documents: parsed results.json files ({"trained": [summaries], ...}), or
      bare lists of summaries.
    key: which results of each document ("trained" or "before_training").
    sources: names of the documents for messages and the output (default:
      "document 0", "document 1", ...).

  Returns:
    One summary per (protocol, feature), in order of first appearance, with
    "num_trials" = the pooled trial count, "settings" of the first file plus
    "data_trials" (their data trials, where recorded) and "sources".

  Raises:
    ValueError: no documents, settings that differ between files for one
      (protocol, feature), or one data trial found twice.
  """
  if not documents:
    raise ValueError("No results to aggregate.")
  sources = list(sources) if sources is not None else [f"document {i}"
                                                        for i in range(len(documents))]
  groups: dict[tuple[str, str], dict[str, Any]] = {}
  for document, source in zip(documents, sources):
    for summary in _summaries_of(document, key, source):
      group_key = (summary["protocol"], summary["feature"])
      settings = dict(summary.get("settings", {}))
      data_trial = settings.pop("data_trial", None)
      group = groups.setdefault(group_key, {"settings": settings, "first_source": source,
                                            "trials": [], "data_trials": [], "sources": []})
      if settings != group["settings"]:
        raise ValueError(
            f"{source} evaluated {group_key[0]} / {group_key[1]} with settings {settings}, but"
            f" {group['first_source']} with {group['settings']}: aggregate runs of one"
            " configuration only."
        )
      if data_trial is not None:
        if data_trial in group["data_trials"]:
          raise ValueError(f"Data trial {data_trial} of {group_key[0]} / {group_key[1]} appears"
                           f" twice (again in {source}); each trial must be counted once.")
        group["data_trials"].append(data_trial)
      group["sources"].append(source)
      per_trial = summary["per_trial"]
      for index in range(len(per_trial["cmc"])):
        group["trials"].append({"cmc": per_trial["cmc"][index],
                                **{name: per_trial[name][index] for name in _TRIAL_KEYS
                                   if name in per_trial}})

  pooled = []
  for (protocol, feature), group in groups.items():
    summary = report.summarize_trials({"trials": group["trials"]}, feature=feature,
                                      protocol=protocol)
    summary["settings"] = {**group["settings"],
                           **({"data_trials": group["data_trials"]}
                              if group["data_trials"] else {})}
    summary["sources"] = group["sources"]
    pooled.append(summary)
  return pooled


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m vireid_jax.evaluation.aggregate",
      description="Average the results.json of several runs (e.g. RegDB's ten trials).")
  parser.add_argument("results", nargs="+", help="results.json files")
  parser.add_argument("--key", default="trained",
                      help="results to pool: 'trained' (default) or 'before_training'")
  parser.add_argument("--output", help="write the pooled summaries here (JSON)")
  args = parser.parse_args(argv)
  documents = []
  for path in args.results:
    try:
      with open(path, encoding="utf-8") as f:
        documents.append(json.load(f))
    except (OSError, json.JSONDecodeError) as error:
      parser.error(f"cannot read {path}: {error}")
  pooled = aggregate_results(documents, key=args.key, sources=args.results)
  print(report.format_results_table(pooled))
  for summary in pooled:
    print(f"{summary['protocol']} / {summary['feature']}: {summary['num_trials']} trials from"
          f" {len(summary['sources'])} files")
  if args.output:
    report.write_results_json(os.path.abspath(args.output), pooled)
  return 0


if __name__ == "__main__":
  sys.exit(main())
