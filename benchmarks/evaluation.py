"""Benchmark: our evaluation against a NumPy per-query loop written like the reference's.

Both start from the same features and galleries and produce the same numbers (checked):
SYSU-MM01's protocol (camera-3 queries drop camera-2 gallery images, deduplicated CMC,
mAP, mINP) over every trial.

* ours: `vireid_jax.evaluation.rank_metrics_from_features`, one jitted call for all
  trials; distances and per-query metrics block by block, vectorised over queries.
* reference: what AGW's `test.py` + `eval_metrics.eval_sysu` do per trial: a float64
  NumPy matmul for the distance matrix, a full argsort, then a Python loop over queries
  (removal mask, `np.unique` deduplication, cumulative sums).

Two sizes in one run: SYSU-MM01's (3,803 queries x 301 gallery images x 10 trials) and a
10x larger gallery (3,010 per trial, the size of the official 10-shot gallery). Inputs are
random features clustered by identity (96 ids, D = 2048, L2-normalised), so the rankings
are realistic but no dataset is needed. Timings exclude compilation (reported apart) and
are the best of `--repeats` runs.

    python benchmarks/evaluation.py [--repeats 3] [--dim 2048]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_jax.evaluation import rank_metrics_from_features  # noqa: E402

NUM_IDS = 96
QUERY_CAMERAS = (3, 6)
GALLERY_CAMERAS = (1, 2, 4, 5)


def make_problem(seed, *, num_query, gallery_per_id_camera, num_trials, dim):
  """Clustered unit features: queries [Q, D] and one gallery [T, G, D] per trial.

  Each trial's gallery holds `gallery_per_id_camera` images per (id, camera) for the
  (id, camera) pairs that exist (about 3.1 cameras per id, as in SYSU-MM01: 301 pairs).
  """
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=[NUM_IDS, dim]).astype(np.float32)
  pairs = [(person_id, camera) for person_id in range(NUM_IDS) for camera in GALLERY_CAMERAS]
  pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), 301, replace=False))]
  gallery_pids = np.repeat([p for p, _ in pairs], gallery_per_id_camera)
  gallery_cams = np.repeat([c for _, c in pairs], gallery_per_id_camera)
  query_pids = rng.integers(0, NUM_IDS, num_query)
  query_cams = rng.choice(QUERY_CAMERAS, num_query)

  def unit(ids, extra_shape=()):
    features = centres[ids] + 1.6 * rng.normal(size=[*extra_shape, len(ids), dim]).astype(
        np.float32)
    return features / np.linalg.norm(features, axis=-1, keepdims=True)

  query_features = unit(query_pids)
  gallery_features = unit(gallery_pids, (num_trials,))
  return (query_features, gallery_features, query_pids, gallery_pids, query_cams,
          gallery_cams)


def reference_eval_sysu(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=20):
  """The AGW reference's eval_sysu, per-query loop (spec baseline §7.2)."""
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
    remove = (q_camid == 3) & (g_camids[order] == 2)
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


def run_reference(problem):
  query_features, gallery_features, query_pids, gallery_pids, query_cams, gallery_cams = problem
  query_features = query_features.astype(np.float64)  # the reference keeps float64 features
  results = []
  for trial_features in gallery_features:
    distmat = -np.matmul(query_features, trial_features.astype(np.float64).T)
    results.append(reference_eval_sysu(distmat, query_pids, gallery_pids, query_cams,
                                       gallery_cams))
  return results


def run_ours(problem):
  return rank_metrics_from_features(*problem, protocol="sysu", distance="cosine")


def best_time(function, argument, repeats):
  times, result = [], None
  for _ in range(repeats):
    start = time.perf_counter()
    result = function(argument)
    times.append(time.perf_counter() - start)
  return min(times), result


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (best kept)")
  parser.add_argument("--reference-repeats", type=int, default=1,
                      help="timed runs of the (slow) NumPy loop")
  parser.add_argument("--queries", type=int, default=3803)
  parser.add_argument("--trials", type=int, default=10)
  parser.add_argument("--dim", type=int, default=2048)
  args = parser.parse_args()

  print(f"JAX {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}),"
        f" {os.cpu_count()} CPU cores; NumPy {np.__version__}")
  rows = []
  for label, per_pair in (("SYSU-MM01 size", 1), ("10x gallery", 10)):
    problem = make_problem(0, num_query=args.queries, gallery_per_id_camera=per_pair,
                           num_trials=args.trials, dim=args.dim)
    num_gallery = problem[1].shape[1]
    device_problem = (jax.device_put(problem[0]), jax.device_put(problem[1]), *problem[2:])
    start = time.perf_counter()
    run_ours(device_problem)
    first_call = time.perf_counter() - start
    ours_time, ours = best_time(run_ours, device_problem, args.repeats)
    reference_time, reference = best_time(run_reference, problem, args.reference_repeats)
    difference = max(
        max(np.max(np.abs(o["cmc"] - r[0])), abs(o["mAP"] - r[1]), abs(o["mINP"] - r[2]))
        for o, r in zip(ours, reference))
    rows.append((label, args.queries, num_gallery, args.trials, reference_time, ours_time,
                 first_call, difference))
    print(f"{label}: {args.queries} queries x {num_gallery} gallery x {args.trials} trials:"
          f" reference loop {reference_time:.2f} s, ours {ours_time:.3f} s"
          f" (first call incl. compilation {first_call:.2f} s),"
          f" ratio {reference_time / ours_time:.1f}x, max |difference| {difference:.1e}",
          flush=True)

  print()
  print("| inputs | queries x gallery x trials | NumPy loop (s) | ours (s) | ratio |"
        " first call (s) | max abs diff |")
  print("|---|---|--:|--:|--:|--:|--:|")
  for label, queries, gallery, trials, reference_time, ours_time, first_call, diff in rows:
    print(f"| {label} | {queries} x {gallery} x {trials} | {reference_time:.2f} |"
          f" {ours_time:.3f} | {reference_time / ours_time:.1f}x | {first_call:.2f} |"
          f" {diff:.1e} |")


if __name__ == "__main__":
  main()
