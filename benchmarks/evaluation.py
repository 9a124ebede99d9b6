"""Benchmark: our evaluation against NumPy per-query loops written like the reference's.

Per problem size, in one run, on the same inputs, both sides producing the same numbers
(the largest difference is printed):

* distances given: ten (`--trials`) precomputed float32 distance matrices. Ours is one
  `vireid_jax.evaluation.rank_metrics` call per matrix (host NumPy in, metrics out, as a
  user calls it); the reference is the authors' `eval_sysu` (AGW, SYSU-MM01 sizes) or
  `eval_llcm` (LLCM fork) per matrix: a full argsort, then a Python loop over queries
  (removal mask, `np.unique` deduplication, cumulative sums).
* features given: the path `evaluation.evaluate` takes. Ours is one
  `rank_metrics_from_features` call for all trials (distances and metrics block by block,
  in one compiled loop); the reference is what AGW's `test.py` does per trial: a float64
  NumPy matmul for the distance matrix (its feature arrays are float64), then the loop
  above. The reference's time here is its matmuls (timed in this run) plus its loop time
  from the row above, so the slow loop runs once.

Sizes: SYSU-MM01's (3,803 infrared queries x 301 gallery images: one per (id, RGB camera),
96 ids), a 10x gallery (3,010: the official 10-shot gallery's size), and LLCM's IR->VIS
default (7,166 NIR queries; gallery one VIS image per (id, VIS camera) for its 351 test
ids, each id here seen by 4 of the 9 cameras: 1,404 images; the real count depends on the
split). Inputs are random features clustered by identity (D = 2048, L2-normalised), so the
rankings are realistic but no dataset is needed. Our timings exclude compilation, which is
reported apart (first call minus a steady call); all timings are the best of `--repeats`
runs (the reference loop: `--reference-repeats`).

    python benchmarks/evaluation.py [--sizes sysu,10x,llcm] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_jax.evaluation import rank_metrics  # noqa: E402
from vireid_jax.evaluation import rank_metrics_from_features  # noqa: E402

# name: (metric protocol, num ids, query cameras, gallery cameras, (id, camera) pairs,
#        gallery images per pair, num queries)
SIZES = {
    "sysu": ("sysu", 96, (3, 6), (1, 2, 4, 5), 301, 1, 3803),
    "10x": ("sysu", 96, (3, 6), (1, 2, 4, 5), 301, 10, 3803),
    "llcm": ("llcm", 351, (1, 2, 4, 5, 6, 7, 8, 9), tuple(range(1, 10)), 351 * 4, 1, 7166),
}
LABELS = {"sysu": "SYSU-MM01 size", "10x": "10x gallery", "llcm": "LLCM size (IR->VIS)"}


def make_problem(seed, size, *, num_trials, dim):
  """Clustered unit features: queries [Q, D], one gallery [T, G, D] per trial, metadata."""
  _, num_ids, query_cameras, gallery_cameras, num_pairs, per_pair, num_query = SIZES[size]
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=[num_ids, dim]).astype(np.float32)
  pairs = [(person_id, camera) for person_id in range(num_ids) for camera in gallery_cameras]
  pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), num_pairs, replace=False))]
  gallery_pids = np.repeat([p for p, _ in pairs], per_pair)
  gallery_cams = np.repeat([c for _, c in pairs], per_pair)
  query_pids = rng.integers(0, num_ids, num_query)
  query_cams = rng.choice(query_cameras, num_query)

  def unit(ids, extra_shape=()):
    features = centres[ids] + 1.6 * rng.normal(size=[*extra_shape, len(ids), dim]).astype(
        np.float32)
    return features / np.linalg.norm(features, axis=-1, keepdims=True)

  return (unit(query_pids), unit(gallery_pids, (num_trials,)), query_pids, gallery_pids,
          query_cams, gallery_cams)


def reference_eval(distmat, q_pids, g_pids, q_camids, g_camids, protocol, max_rank=20):
  """The authors' eval_sysu / eval_llcm (spec baseline §7.2), per-query loop."""
  num_q, num_g = distmat.shape
  max_rank = min(max_rank, num_g)
  indices = np.argsort(distmat, axis=1)
  pred_label = g_pids[indices]
  matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
  new_all_cmc, all_ap, all_inp = [], [], []
  num_valid_q = 0.0
  for q_idx in range(num_q):
    q_pid, q_camid = q_pids[q_idx], q_camids[q_idx]
    order = indices[q_idx]
    if protocol == "sysu":
      remove = (q_camid == 3) & (g_camids[order] == 2)
    else:
      remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
    keep = np.invert(remove)
    new_cmc = pred_label[q_idx][keep]
    new_index = np.unique(new_cmc, return_index=True)[1]
    new_cmc = [new_cmc[index] for index in sorted(new_index)]
    new_match = (new_cmc == q_pid).astype(np.int32)
    new_all_cmc.append(new_match.cumsum()[:max_rank])
    orig_cmc = matches[q_idx][keep]
    if not np.any(orig_cmc):
      continue
    cmc = orig_cmc.cumsum()
    pos_idx = np.where(orig_cmc == 1)
    pos_max_idx = np.max(pos_idx)
    all_inp.append(cmc[pos_max_idx] / (pos_max_idx + 1.0))
    num_valid_q += 1.0
    num_rel = orig_cmc.sum()
    tmp_cmc = orig_cmc.cumsum()
    tmp_cmc = [x / (i + 1.0) for i, x in enumerate(tmp_cmc)]
    tmp_cmc = np.asarray(tmp_cmc) * orig_cmc
    all_ap.append(tmp_cmc.sum() / num_rel)
  curve = np.asarray(new_all_cmc).astype(np.float32).sum(0) / num_valid_q
  return curve, np.mean(all_ap), np.mean(all_inp)


def best_time(function, repeats):
  times, result = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    result = jax.block_until_ready(function())
    times.append(time.perf_counter() - start)
  return min(times), result


def first_call_time(function):
  start = time.perf_counter()
  jax.block_until_ready(function())
  return time.perf_counter() - start


def max_difference(ours, reference):
  return max(
      max(np.max(np.abs(o["cmc"] - r[0])), abs(o["mAP"] - r[1]), abs(o["mINP"] - r[2]))
      for o, r in zip(ours, reference))


def run_size(size, args):
  protocol = SIZES[size][0]
  problem = make_problem(0, size, num_trials=args.trials, dim=args.dim)
  query_features, gallery_features, query_pids, gallery_pids, query_cams, gallery_cams = problem
  metadata = (query_pids, gallery_pids, query_cams, gallery_cams)
  # The ten float32 matrices both sides rank (ours from host memory, as a user passes them).
  distmats = [-(query_features @ trial.T) for trial in gallery_features]

  def ours_from_distances():
    return [rank_metrics(distmat, *metadata, protocol=protocol) for distmat in distmats]

  def reference_from_distances():
    return [reference_eval(distmat, *metadata, protocol) for distmat in distmats]

  device_features = (jax.device_put(query_features), jax.device_put(gallery_features))

  def ours_from_features():
    return rank_metrics_from_features(*device_features, *metadata, protocol=protocol,
                                      distance="cosine")

  query_features_64 = query_features.astype(np.float64)
  gallery_features_64 = [trial.astype(np.float64) for trial in gallery_features]

  def reference_distances():
    return [-np.matmul(query_features_64, trial.T) for trial in gallery_features_64]

  first_distances = first_call_time(lambda: rank_metrics(distmats[0], *metadata,
                                                         protocol=protocol))
  ours_time, ours = best_time(ours_from_distances, args.repeats)
  compile_distances = first_distances - ours_time / len(distmats)
  first_features = first_call_time(ours_from_features)
  features_time, ours_features = best_time(ours_from_features, args.repeats)
  compile_features = first_features - features_time
  reference_matmul_time, _ = best_time(reference_distances, args.reference_repeats)
  reference_time, reference = best_time(reference_from_distances, args.reference_repeats)
  difference = max(max_difference(ours, reference), max_difference(ours_features, reference))
  row = dict(
      label=LABELS[size], shape=f"{len(query_pids)} x {len(gallery_pids)} x {args.trials}",
      reference=reference_time, ours=ours_time, compile_distances=compile_distances,
      reference_features=reference_matmul_time + reference_time, features=features_time,
      compile_features=compile_features, difference=difference)
  print(f"{row['label']} ({row['shape']}): distances given: reference loop"
        f" {reference_time:.2f} s, rank_metrics {ours_time:.3f} s"
        f" ({reference_time / ours_time:.0f}x); features given: reference"
        f" {row['reference_features']:.2f} s (matmuls {reference_matmul_time:.2f} s),"
        f" rank_metrics_from_features {features_time:.3f} s"
        f" ({row['reference_features'] / features_time:.0f}x); max |difference|"
        f" {difference:.1e}", flush=True)
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="sysu,10x,llcm",
                      help=f"comma-separated subset of {sorted(SIZES)}")
  parser.add_argument("--repeats", type=int, default=3, help="timed runs of ours (best kept)")
  parser.add_argument("--reference-repeats", type=int, default=1,
                      help="timed runs of the (slow) NumPy loop")
  parser.add_argument("--trials", type=int, default=10)
  parser.add_argument("--dim", type=int, default=2048)
  args = parser.parse_args()
  sizes = args.sizes.split(",")
  unknown = sorted(set(sizes) - set(SIZES))
  if unknown:
    parser.error(f"unknown sizes {unknown}; expected a subset of {sorted(SIZES)}")

  print(f"{datetime.date.today()}: JAX {jax.__version__} on {jax.devices()[0].device_kind}"
        f" ({jax.default_backend()}), {os.cpu_count()} CPU cores; NumPy {np.__version__}")
  rows = [run_size(size, args) for size in sizes]
  print()
  print("| inputs | queries × gallery × trials | reference loop (s) | `rank_metrics` × T (s)"
        " | ratio | compile (s) | reference f64 matmul + loop (s) |"
        " `rank_metrics_from_features` (s) | ratio | compile (s) | max abs diff |")
  print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
  for row in rows:
    print(f"| {row['label']} | {row['shape'].replace('x', '×')} | {row['reference']:.2f} |"
          f" {row['ours']:.3f} | {row['reference'] / row['ours']:.0f}x |"
          f" {row['compile_distances']:.2f} | {row['reference_features']:.2f} |"
          f" {row['features']:.3f} | {row['reference_features'] / row['features']:.0f}x |"
          f" {row['compile_features']:.2f} | {row['difference']:.1e} |")


if __name__ == "__main__":
  main()
