"""Benchmark: `vireid_jax.search`'s exact and approximate (faiss IVF) gallery search.

A gallery of clustered unit features (identities, each with images around its centre, as
re-ID features are) and queries drawn near some of them. Exact search is
`search.exact_top_k` (distances block by block on the default device, running top k);
approximate search is `search.approximate_top_k` (a faiss inverted-file index, built here and
searched). The
recall@10 of approximate search is the fraction of each query's exact top 10 it returns, averaged
over queries.

    python benchmarks/search.py [--gallery 200000] [--dim 512] [--queries 1000]

The default size keeps the run to minutes on two CPU cores; the command line scales it to a
million images (`--gallery 1000000`; 2048-d features need 8 GB of host memory).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_jax import search  # noqa: E402


def clustered_features(rng, count, dim, num_ids, spread=1.2):
  centres = rng.normal(size=(num_ids, dim)).astype(np.float32)
  ids = rng.integers(0, num_ids, count)
  features = centres[ids] + spread * rng.normal(size=(count, dim)).astype(np.float32)
  return features / np.linalg.norm(features, axis=1, keepdims=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--gallery", type=int, default=200_000)
  parser.add_argument("--queries", type=int, default=1000)
  parser.add_argument("--dim", type=int, default=512)
  parser.add_argument("--top_k", type=int, default=10)
  parser.add_argument("--probes", type=int, default=64, help="k-means cells searched per query")
  arguments = parser.parse_args()

  import jax
  rng = np.random.default_rng(0)
  gallery = clustered_features(rng, arguments.gallery, arguments.dim,
                               num_ids=max(10, arguments.gallery // 20))
  rows = rng.choice(arguments.gallery, arguments.queries, replace=False)
  queries = gallery[rows] + 0.8 * rng.normal(size=(arguments.queries, arguments.dim)).astype(
      np.float32) / np.sqrt(arguments.dim)

  # The first search compiles (one program per block shape); the second is timed.
  search.exact_top_k(queries, gallery, arguments.top_k)
  start = time.perf_counter()
  exact, _ = search.exact_top_k(queries, gallery, arguments.top_k)
  exact_seconds = time.perf_counter() - start

  start = time.perf_counter()
  approximate, _ = search.approximate_top_k(
      queries, gallery, arguments.top_k, probes=arguments.probes)
  approximate_seconds = time.perf_counter() - start
  recall = np.mean([len(set(a) & set(e)) / arguments.top_k
                    for a, e in zip(approximate, exact)])

  print(f"{arguments.gallery:,} gallery x {arguments.queries:,} queries, D = {arguments.dim}, "
        f"top {arguments.top_k}; device {jax.devices()[0].platform}, {os.cpu_count()} CPUs")
  print("| search | seconds | queries/s | recall@10 |")
  print("|---|---:|---:|---:|")
  print(f"| exact, blocks on the device | {exact_seconds:.2f} | "
        f"{arguments.queries / exact_seconds:,.0f} | 1.000 |")
  print(f"| faiss IVF ({arguments.probes} cells probed), build + search | "
        f"{approximate_seconds:.2f} | {arguments.queries / approximate_seconds:,.0f} | "
        f"{recall:.3f} |")


if __name__ == "__main__":
  main()
