"""Evaluation protocols: which test images are queries and galleries, trial by trial.

Implemented in full: the SYSU-MM01 protocol of the AGW reference code (spec
`baseline_data_eval.md` §7.3), all-search and indoor-search, single-shot, 10
random gallery trials. The pieces are generic so that RegDB (fixed query and
gallery lists per trial, §7.5) and LLCM (the same single-shot draw over cameras
1..9, §7.6) can be added on top: `single_shot_gallery_indices`,
`negative_cosine_distance`, `evaluate_split` and `mean_over_trials`.

All selection functions work on metadata arrays of one split (one entry per
image: person id, camera, relative path such as "cam1/0006/0003.jpg") and
return integer indices into them, so features can be computed once for the whole
split and gathered per trial.
"""

import operator
import random
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vireid_jax.evaluation import metrics

# Defined here rather than imported from `vireid_jax.data` so that evaluation
# never pulls in the input side (which owns the TensorFlow dependency).
SYSU_QUERY_CAMERAS = (3, 6)  # Infrared; the query set is the same for both modes.
SYSU_GALLERY_CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}  # RGB, in draw order.
SYSU_NUM_TRIALS = 10

# RegDB: 10 trials, each with its own idx files (and model); queries and gallery
# are the full test lists, nothing is sampled.
REGDB_NUM_TRIALS = 10

# LLCM: camera numbers are shared by both modalities; the NIR test set has no cam3.
LLCM_VISIBLE_CAMERAS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
LLCM_INFRARED_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)
LLCM_NUM_TRIALS = 10

# The `protocol` argument of `metrics.rank_metrics` for each dataset.
METRIC_PROTOCOL = {"sysu": "sysu", "regdb": "regdb", "llcm": "llcm"}


def _check_metadata(person_ids, cameras, relative_paths=None):
  person_ids = np.asarray(person_ids).reshape(-1)
  cameras = np.asarray(cameras).reshape(-1)
  if len(cameras) != len(person_ids):
    raise ValueError(f"{len(person_ids)} person ids but {len(cameras)} cameras.")
  if relative_paths is not None:
    relative_paths = [str(path) for path in relative_paths]
    if len(relative_paths) != len(person_ids):
      raise ValueError(f"{len(person_ids)} person ids but {len(relative_paths)} paths.")
  return person_ids, cameras, relative_paths


def _check_sysu_mode(mode):
  if mode not in SYSU_GALLERY_CAMERAS:
    raise ValueError(f"SYSU-MM01 mode must be one of {tuple(SYSU_GALLERY_CAMERAS)}, got {mode!r}.")


def sysu_query_indices(
    person_ids: Any,
    cameras: Any,
    relative_paths: Sequence[str] | None = None,
    *,
    mode: str = "all",
) -> np.ndarray:
  """SYSU-MM01 queries: every infrared image (cameras 3 and 6) of the test split.

  Order as the reference's `process_query_sysu`: person id ascending, camera 3
  before camera 6, then file path sorted. `mode` is accepted for symmetry with
  the gallery and only validated: all-search and indoor-search share the same
  3,803 queries (indoor queries without an indoor gallery match are invalid and
  skipped by the metric).

  Args:
    person_ids: [N] person ids of the test split.
    cameras: [N] camera numbers (1..6).
    relative_paths: optional [N] paths; without them, images of one
      (id, camera) keep their input order.
    mode: "all" or "indoor".

  Returns:
    int64 [num_query] indices into the metadata arrays.
  """
  _check_sysu_mode(mode)
  person_ids, cameras, relative_paths = _check_metadata(person_ids, cameras, relative_paths)
  candidates = [i for i in range(len(person_ids)) if cameras[i] in SYSU_QUERY_CAMERAS]

  def sort_key(index):
    tie_break = relative_paths[index] if relative_paths is not None else index
    return (person_ids[index], SYSU_QUERY_CAMERAS.index(cameras[index]), tie_break)

  return np.asarray(sorted(candidates, key=sort_key), dtype=np.int64)


def single_shot_gallery_indices(
    person_ids: Any,
    cameras: Any,
    relative_paths: Sequence[str],
    *,
    trial: int,
    gallery_cameras: Sequence[int],
) -> np.ndarray:
  """One random image per (person id, gallery camera), drawn as the reference does.

  The reference (`process_gallery_sysu`, and its LLCM copy) calls
  `random.seed(trial)`, then for each test id in ascending order and each
  gallery camera in the given order, if that camera saw the id, appends
  `random.choice(sorted full paths of that folder)`. `random.choice(seq)` draws
  `seq[rng._randbelow(len(seq))]`, so the picked position depends only on the
  list lengths and the sequence of calls, never on the paths themselves. Here
  a private `random.Random(trial)` (the same Mersenne-Twister stream as
  `random.seed(trial)`, without touching the global generator) makes the same
  calls over the same sorted lists, so it picks the same files. This holds for
  CPython 3 (Python 2's `choice` used `int(random() * n)` instead).

  Sorting relative paths within one (id, camera) equals sorting the
  reference's full paths, since all share the folder prefix. Ids that have no
  image in a gallery camera make no call, exactly like a missing folder.

  Args:
    person_ids: [N] person ids of the split (the reference's ids are 4-digit
      strings; their string order is the numeric order).
    cameras: [N] camera numbers.
    relative_paths: [N] paths, e.g. "cam1/0006/0003.jpg".
    trial: the seed (the reference uses the trial index 0..9).
    gallery_cameras: cameras to draw from, in the reference's loop order.

  Returns:
    int64 [num_gallery] indices into the metadata arrays, in draw order (id
    ascending, then camera in `gallery_cameras` order).
  """
  person_ids, cameras, relative_paths = _check_metadata(person_ids, cameras, relative_paths)
  if relative_paths is None:
    raise ValueError("relative_paths are required: the draw depends on the sorted file order.")
  rng = random.Random(operator.index(trial))

  images_by_id_and_camera: dict[tuple[Any, int], list[int]] = {}
  for index in sorted(range(len(person_ids)), key=lambda i: relative_paths[i]):
    key = (person_ids[index].item(), int(cameras[index]))
    images_by_id_and_camera.setdefault(key, []).append(index)

  chosen = []
  for person_id in sorted(set(person_ids.tolist())):
    for camera in gallery_cameras:
      images = images_by_id_and_camera.get((person_id, int(camera)))
      if images:
        chosen.append(rng.choice(images))
  return np.asarray(chosen, dtype=np.int64)


def sysu_gallery_indices(
    person_ids: Any,
    cameras: Any,
    relative_paths: Sequence[str],
    *,
    trial: int,
    mode: str = "all",
) -> np.ndarray:
  """SYSU-MM01 single-shot gallery of one trial (AGW reference draw).

  One random RGB image per (test id, camera) with cameras 1, 2, 4, 5
  ("all") or 1, 2 ("indoor"), drawn by `single_shot_gallery_indices` with the
  trial index as seed. The indoor gallery of a trial is therefore not a subset
  of the all-search gallery of the same trial (the draws interleave
  differently), exactly as in the reference. On the real test split this gives
  301 ("all") or 112 ("indoor") images per trial.

  Args:
    person_ids: [N] person ids of the test split (may include infrared
      images; only the mode's RGB cameras are drawn from).
    cameras: [N] camera numbers.
    relative_paths: [N] relative paths.
    trial: trial index, the seed (0..9 in the reference).
    mode: "all" or "indoor".

  Returns:
    int64 [num_gallery] indices into the metadata arrays.
  """
  _check_sysu_mode(mode)
  return single_shot_gallery_indices(
      person_ids,
      cameras,
      relative_paths,
      trial=trial,
      gallery_cameras=SYSU_GALLERY_CAMERAS[mode],
  )


@jax.jit
def negative_cosine_distance(query_features: jax.Array, gallery_features: jax.Array) -> jax.Array:
  """Distance = -(Q Gᵀ): cosine distance order for L2-normalised features.

  The features are used as given: the models already L2-normalise their
  evaluation features (spec §7.1). Full float32 precision is requested because
  the default GPU matmul precision (TF32) would perturb the ranking.

  Args:
    query_features: [num_query, D].
    gallery_features: [num_gallery, D].

  Returns:
    [num_query, num_gallery] distances, smaller = closer.
  """
  return -jnp.matmul(
      query_features, gallery_features.T, precision=jax.lax.Precision.HIGHEST
  )


def evaluate_split(
    query_features: Any,
    query_pids: Any,
    query_cams: Any,
    gallery_features: Any,
    gallery_pids: Any,
    gallery_cams: Any,
    *,
    protocol: str,
    max_rank: int = 20,
) -> dict[str, Any]:
  """Metrics of one query/gallery split with cosine distance.

  Args:
    query_features: [num_query, D] (L2-normalised).
    query_pids: [num_query].
    query_cams: [num_query].
    gallery_features: [num_gallery, D] (L2-normalised).
    gallery_pids: [num_gallery].
    gallery_cams: [num_gallery].
    protocol: metric protocol of `metrics.rank_metrics` ("sysu", "llcm",
      "regdb").
    max_rank: CMC length.

  Returns:
    `metrics.rank_metrics` output plus "gallery_size".
  """
  distances = negative_cosine_distance(jnp.asarray(query_features), jnp.asarray(gallery_features))
  result = metrics.rank_metrics(
      distances,
      query_pids,
      gallery_pids,
      query_cams,
      gallery_cams,
      protocol=protocol,
      max_rank=max_rank,
  )
  result["gallery_size"] = int(np.shape(gallery_pids)[0])
  return result


def mean_over_trials(trials: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """Arithmetic mean over trials of the CMC vector, mAP and mINP (reference: sum / 10).

  Args:
    trials: per-trial `rank_metrics` results (all with the same CMC length).

  Returns:
    dict with "cmc" (float64 [max_rank]), "mAP" and "mINP" (floats).
  """
  if not trials:
    raise ValueError("No trials to average.")
  return {
      "cmc": np.mean(np.stack([np.asarray(t["cmc"], np.float64) for t in trials]), axis=0),
      "mAP": float(np.mean([t["mAP"] for t in trials])),
      "mINP": float(np.mean([t["mINP"] for t in trials])),
  }


def evaluate_sysu(
    query_features: Any,
    query_pids: Any,
    query_cams: Any,
    candidate_features: Any,
    candidate_pids: Any,
    candidate_cams: Any,
    candidate_paths: Sequence[str],
    *,
    mode: str = "all",
    num_trials: int = SYSU_NUM_TRIALS,
    max_rank: int = 20,
) -> dict[str, Any]:
  """SYSU-MM01 evaluation, AGW protocol: fixed queries, one random gallery per trial.

  Trial t draws its gallery from the candidates with
  `sysu_gallery_indices(..., trial=t, mode=mode)`, ranks it by
  `negative_cosine_distance` and scores it with the "sysu" metric protocol
  (camera-3 queries ignore all camera-2 gallery images; deduplicated CMC). The
  final numbers are the arithmetic means over trials of the CMC vector, mAP and
  mINP, as in the reference (`test.py:295-301`).

  Args:
    query_features: [num_query, D] features of the queries (normally every
      infrared test image, `sysu_query_indices`), L2-normalised.
    query_pids: [num_query] person ids.
    query_cams: [num_query] cameras (3 or 6).
    candidate_features: [num_candidate, D] features of the RGB test images
      the galleries are drawn from, L2-normalised.
    candidate_pids: [num_candidate] person ids.
    candidate_cams: [num_candidate] cameras.
    candidate_paths: [num_candidate] relative paths (decide the draw).
    mode: "all" or "indoor".
    num_trials: trials 0..num_trials-1 (10 in the reference).
    max_rank: CMC length.

  Returns:
    dict with "protocol" ("sysu_all" / "sysu_indoor"), "mode", "num_trials",
    "num_queries", "trials" (per-trial `rank_metrics` results plus
    "gallery_size" and "gallery_indices" into the candidates) and the means
    "cmc", "mAP", "mINP".
  """
  _check_sysu_mode(mode)
  if num_trials < 1:
    raise ValueError(f"num_trials must be >= 1, got {num_trials}.")
  candidate_pids, candidate_cams, candidate_paths = _check_metadata(
      candidate_pids, candidate_cams, candidate_paths
  )
  candidate_features = jnp.asarray(candidate_features)
  if candidate_features.shape[0] != len(candidate_pids):
    raise ValueError(
        f"{candidate_features.shape[0]} candidate features but {len(candidate_pids)} candidate ids."
    )
  query_features = jnp.asarray(query_features)

  trials = []
  for trial in range(num_trials):
    gallery_indices = sysu_gallery_indices(
        candidate_pids, candidate_cams, candidate_paths, trial=trial, mode=mode
    )
    result = evaluate_split(
        query_features,
        query_pids,
        query_cams,
        jnp.take(candidate_features, jnp.asarray(gallery_indices), axis=0),
        candidate_pids[gallery_indices],
        candidate_cams[gallery_indices],
        protocol=METRIC_PROTOCOL["sysu"],
        max_rank=max_rank,
    )
    result["gallery_indices"] = gallery_indices
    trials.append(result)

  return {
      "protocol": f"sysu_{mode}",
      "mode": mode,
      "num_trials": num_trials,
      "num_queries": int(query_features.shape[0]),
      "trials": trials,
      **mean_over_trials(trials),
  }
