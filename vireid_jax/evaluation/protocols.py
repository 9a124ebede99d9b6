"""Evaluation protocols: which test images are queries and galleries, trial by trial.

Every protocol variant of the three datasets, each named as it appears in the results
(spec `baseline_data_eval.md` §7, `mcja.md` §9):

SYSU-MM01 (`sysu_trials`; queries = every infrared image, cameras 3 and 6, in both modes):
  * "sysu_all", "sysu_indoor": the AGW reference code's galleries, one random RGB image
    per (id, camera) drawn with Python's `random` seeded with the trial index (§7.3);
  * "..._official": the official evaluation kit's fixed permutations from
    `rand_perm_cam.mat` (row t of each (camera, id) permutation, first `shots` entries;
    §7.4, MCJA's protocol), single-shot or "..._10shot_official". The AGW code has no
    multi-shot gallery, so 10 shots exist only in the official scheme.
  Cameras 2 and 3 share a location: camera-3 queries ignore every camera-2 image.
RegDB (`regdb_trials`; the split's one trial, all its test images, nothing sampled, §7.5):
  * "regdb_visible_to_thermal" (AGW's default), "regdb_thermal_to_visible" (`--tvsearch`);
    standard CMC, or the deduplicated CMC MCJA reports ("..._dedup_cmc"). Each of the ten
    RegDB trials has its own training split and so its own model: average the ten runs'
    results.json with `python -m vireid_jax.evaluation.aggregate`.
LLCM (`llcm_trials`; cameras 1..9 shared by both modalities, 10 random gallery trials, §7.6):
  * "llcm_ir_to_vis": queries = every NIR image, gallery = one random VIS image per
    (id, camera) (the reference's `test_mode=[1, 2]`, its default);
  * "llcm_vis_to_ir": queries = every VIS image, gallery = one random NIR image per
    (id, camera) (what the name says; the reference's in-training evaluation);
  * "llcm_vis_to_ir_swapped": what the reference's `test.py` reports as "VIS→IR"
    (`test_mode=[2, 1]`): the loaders build the VIS→IR sets above, then the evaluation is
    called with the roles swapped, so the sampled NIR images are the queries and every
    VIS image is the gallery. The LLCM papers' second column comes from this.
  A query ignores gallery images of its own id taken by its own camera number.

All selection functions work on metadata arrays of one split (one entry per image:
person id, camera, modality, relative path such as "cam1/0006/0003.jpg") and return
integer indices into them, so features are computed once for the whole split and
gathered per trial.
"""

from __future__ import annotations

import dataclasses
import operator
import os
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vireid_jax.data.splits import INFRARED
from vireid_jax.data.splits import MODALITY_NAMES
from vireid_jax.data.splits import VISIBLE
from vireid_jax.evaluation import metrics
from vireid_jax.evaluation.distances import negative_cosine_distance

# Defined here rather than imported from `vireid_jax.data` so that evaluation
# never pulls in the input side (which owns the TensorFlow dependency).
SYSU_QUERY_CAMERAS = (3, 6)  # Infrared; the query set is the same for both modes.
SYSU_GALLERY_CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}  # RGB, in draw order.
SYSU_NUM_TRIALS = 10
SYSU_GALLERY_SCHEMES = ("agw", "official")
# Gallery images per (id, camera): single-shot, and the official multi-shot.
SYSU_GALLERY_SHOTS = (1, 10)

# RegDB: 10 trials, each with its own idx files (and model); queries and gallery
# are the full test lists, nothing is sampled.
REGDB_NUM_TRIALS = 10
REGDB_DIRECTIONS = ("visible_to_thermal", "thermal_to_visible")

# LLCM: camera numbers are shared by both modalities; the NIR test set has no cam3.
LLCM_VISIBLE_CAMERAS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
LLCM_INFRARED_CAMERAS = (1, 2, 4, 5, 6, 7, 8, 9)
LLCM_NUM_TRIALS = 10
LLCM_DIRECTIONS = ("ir_to_vis", "vis_to_ir", "vis_to_ir_swapped")

# The `protocol` argument of `metrics.rank_metrics` for each dataset.
METRIC_PROTOCOL = {"sysu": "sysu", "regdb": "regdb", "llcm": "llcm"}



@dataclasses.dataclass(frozen=True)
class Trials:
  """Queries and galleries of every trial of one protocol variant.

  Attributes:
    name: the protocol as named in the results, e.g. "sysu_all".
    metric_protocol: the `protocol` of `metrics.rank_metrics`.
    cmc: None (the metric protocol's CMC) or "deduplicated" / "standard".
    query_indices: per trial, int64 [num_query] rows of the split; a single
      entry is shared by every trial.
    gallery_indices: per trial, int64 [num_gallery] rows; a single entry is
      shared by every trial.
    num_trials: number of trials.
    query_modality: 0 (visible) or 1 (infrared): every query's modality.
    gallery_modality: every gallery image's modality.
    settings: JSON-ready description of the variant for results.json.
  """

  name: str
  metric_protocol: str
  cmc: str | None
  query_indices: tuple[np.ndarray, ...]
  gallery_indices: tuple[np.ndarray, ...]
  num_trials: int
  query_modality: int
  gallery_modality: int
  settings: Mapping[str, Any]

  def queries(self, trial: int) -> np.ndarray:
    return self.query_indices[trial % len(self.query_indices)]

  def gallery(self, trial: int) -> np.ndarray:
    return self.gallery_indices[trial % len(self.gallery_indices)]


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


def _rows_in_order(rows, person_ids, cameras, relative_paths, camera_order):
  """`rows` sorted like the references' loaders: id, camera in `camera_order`, path."""
  return np.asarray(
      sorted(
          rows,
          key=lambda i: (person_ids[i], camera_order.index(cameras[i]), relative_paths[i]),
      ),
      dtype=np.int64,
  )


def _draw_from_rows(rows, person_ids, cameras, relative_paths, *, trial, gallery_cameras):
  """`single_shot_gallery_indices` over a subset of rows; returns split rows."""
  chosen = single_shot_gallery_indices(
      person_ids[rows],
      cameras[rows],
      [relative_paths[i] for i in rows],
      trial=trial,
      gallery_cameras=gallery_cameras,
  )
  return rows[chosen]


def _check_modalities(modalities, num_rows):
  modalities = np.asarray(modalities).reshape(-1)
  if len(modalities) != num_rows:
    raise ValueError(f"{num_rows} person ids but {len(modalities)} modalities.")
  unknown = set(np.unique(modalities).tolist()) - {VISIBLE, INFRARED}
  if unknown:
    raise ValueError(f"Unknown modalities {sorted(unknown)}: expected 0 (visible) or 1 (infrared).")
  return modalities


def _check_num_trials(num_trials):
  if operator.index(num_trials) < 1:
    raise ValueError(f"num_trials must be >= 1, got {num_trials}.")


def load_rand_perm_cam(path: str | os.PathLike) -> dict[tuple[int, int], np.ndarray]:
  """Reads the official SYSU-MM01 kit's `rand_perm_cam.mat`.

  The file holds a MATLAB cell `rand_perm_cam{camera}{person id}` (1-based):
  for every (camera, id) with n images a [num_trials, n] matrix whose row t is
  the permutation of the 1-based image numbers used by trial t.

  Args:
    path: the .mat file (`config.eval.rand_perm_cam`).

  Returns:
    {(camera, person id): int64 [num_trials, n]} for every non-empty cell.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a MATLAB file of that structure.
  """
  import scipy.io  # Only this scheme needs SciPy.

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"config.eval.rand_perm_cam={path!r} is not a file. Point it at rand_perm_cam.mat of"
        " the official SYSU-MM01 evaluation kit, or set config.eval.gallery_scheme='agw'."
    )
  try:
    contents = scipy.io.loadmat(path)
  except (scipy.io.matlab.MatReadError, ValueError, TypeError, OSError,
          NotImplementedError) as error:
    raise ValueError(f"{path} is not a readable MATLAB v5 file: {error}") from error
  if "rand_perm_cam" not in contents:
    variables = sorted(key for key in contents if not key.startswith("__"))
    raise ValueError(f"{path} has no variable 'rand_perm_cam' (it holds {variables}).")
  table = {}
  try:
    cameras = np.asarray(contents["rand_perm_cam"], dtype=object).reshape(-1)
    for camera_index, per_id in enumerate(cameras):
      for id_index, permutations in enumerate(np.asarray(per_id, dtype=object).reshape(-1)):
        permutations = np.asarray(permutations)
        if permutations.size:
          if permutations.ndim != 2:
            raise ValueError(f"cell {{{camera_index + 1}}}{{{id_index + 1}}} has shape"
                             f" {permutations.shape}, not [trials, images]")
          table[(camera_index + 1, id_index + 1)] = permutations.astype(np.int64)
  except (ValueError, TypeError) as error:
    raise ValueError(
        f"{path}: 'rand_perm_cam' is not the official cell-of-cells structure ({error})."
    ) from error
  return table


def sysu_official_gallery_indices(
    person_ids: Any,
    cameras: Any,
    relative_paths: Sequence[str],
    *,
    trial: int,
    mode: str = "all",
    shots: int = 1,
    rand_perm_cam: Mapping[tuple[int, int], np.ndarray],
    source: str = "rand_perm_cam.mat",
) -> np.ndarray:
  """SYSU-MM01 gallery of one trial from the official fixed permutations.

  For every person id with RGB images in the mode's cameras (ascending) and
  each camera (1, 2, 4, 5 or 1, 2), the first `shots` entries of row `trial`
  of `rand_perm_cam[(camera, id)]`, image number k naming the file
  "cam{camera}/{id:04d}/{k:04d}.*" (spec §7.4; MCJA `get_gallery_names_sysu`).

  Args:
    person_ids: [N] person ids of the test split.
    cameras: [N] cameras.
    relative_paths: [N] relative paths "cam{c}/{id:04d}/{k:04d}.jpg".
    trial: 0-based trial (row of each permutation).
    mode: "all" or "indoor".
    shots: 1 (single-shot) or 10 (multi-shot).
    rand_perm_cam: `load_rand_perm_cam` output.
    source: the file name for error messages.

  Returns:
    int64 [num_gallery] indices into the metadata arrays.

  Raises:
    ValueError: the permutations name an image the split lacks, miss an
      (id, camera) the split has, or hold fewer trials than asked for: the file
      does not describe this dataset.
  """
  _check_sysu_mode(mode)
  person_ids, cameras, relative_paths = _check_metadata(person_ids, cameras, relative_paths)
  row_of_name = {os.path.splitext(path)[0]: row for row, path in enumerate(relative_paths)}
  gallery_cameras = SYSU_GALLERY_CAMERAS[mode]
  present = set(zip(person_ids.tolist(), cameras.tolist()))
  chosen = []
  for person_id in sorted({p for p, c in present if c in gallery_cameras}):
    for camera in gallery_cameras:
      if (person_id, camera) not in present:
        continue
      permutations = rand_perm_cam.get((camera, int(person_id)))
      if permutations is None:
        raise ValueError(
            f"{source} has no permutation for camera {camera}, person {person_id}, but the test"
            " split has images of them: the file does not describe this dataset (use"
            " config.eval.gallery_scheme='agw')."
        )
      if trial >= permutations.shape[0]:
        raise ValueError(
            f"{source} holds {permutations.shape[0]} trials; trial {trial} was asked for"
            " (lower config.eval.num_trials)."
        )
      for number in permutations[trial, :shots]:
        name = f"cam{camera}/{int(person_id):04d}/{int(number):04d}"
        if name not in row_of_name:
          raise ValueError(
              f"{source} names image {name} for trial {trial}, which is not in the test split:"
              " the file does not describe this dataset (use config.eval.gallery_scheme='agw')."
          )
        chosen.append(row_of_name[name])
  return np.asarray(chosen, dtype=np.int64)


def sysu_trials(
    person_ids: Any,
    cameras: Any,
    relative_paths: Sequence[str],
    *,
    mode: str = "all",
    num_trials: int = SYSU_NUM_TRIALS,
    gallery_shots: int = 1,
    gallery_scheme: str = "agw",
    rand_perm_cam: Mapping[tuple[int, int], np.ndarray] | None = None,
    rand_perm_cam_source: str = "rand_perm_cam.mat",
) -> Trials:
  """The SYSU-MM01 protocol variant selected by mode, shots and gallery scheme.

  Args:
    person_ids, cameras, relative_paths: [N] metadata of the test split.
    mode: "all" or "indoor".
    num_trials: galleries 0..num_trials-1.
    gallery_shots: 1, or 10 with the official scheme.
    gallery_scheme: "agw" (seeded Python `random`, `sysu_gallery_indices`) or
      "official" (`sysu_official_gallery_indices`).
    rand_perm_cam: `load_rand_perm_cam` output; required by "official".
    rand_perm_cam_source: the file's name for error messages.

  Returns:
    The `Trials`, named "sysu_{mode}[_{shots}shot][_official]".
  """
  _check_sysu_mode(mode)
  _check_num_trials(num_trials)
  if gallery_scheme not in SYSU_GALLERY_SCHEMES:
    raise ValueError(f"config.eval.gallery_scheme must be one of {SYSU_GALLERY_SCHEMES}, got"
                     f" {gallery_scheme!r}.")
  if gallery_shots not in SYSU_GALLERY_SHOTS:
    raise ValueError(f"config.eval.gallery_shots must be one of {SYSU_GALLERY_SHOTS}, got"
                     f" {gallery_shots!r}.")
  if gallery_scheme == "agw" and gallery_shots != 1:
    raise ValueError(
        "The AGW gallery draw is single-shot only (its code has no multi-shot mode); a"
        f" {gallery_shots}-shot gallery needs config.eval.gallery_scheme='official' and"
        " config.eval.rand_perm_cam."
    )
  if gallery_scheme == "official" and rand_perm_cam is None:
    raise ValueError("config.eval.gallery_scheme='official' needs config.eval.rand_perm_cam,"
                     " the official kit's rand_perm_cam.mat.")
  person_ids, cameras, relative_paths = _check_metadata(person_ids, cameras, relative_paths)
  queries = sysu_query_indices(person_ids, cameras, relative_paths, mode=mode)
  galleries = []
  for trial in range(num_trials):
    if gallery_scheme == "agw":
      galleries.append(sysu_gallery_indices(person_ids, cameras, relative_paths, trial=trial,
                                            mode=mode))
    else:
      galleries.append(sysu_official_gallery_indices(
          person_ids, cameras, relative_paths, trial=trial, mode=mode, shots=gallery_shots,
          rand_perm_cam=rand_perm_cam, source=rand_perm_cam_source))
  name = f"sysu_{mode}"
  if gallery_shots != 1:
    name += f"_{gallery_shots}shot"
  if gallery_scheme != "agw":
    name += f"_{gallery_scheme}"
  return Trials(
      name=name,
      metric_protocol=METRIC_PROTOCOL["sysu"],
      cmc=None,
      query_indices=(queries,),
      gallery_indices=tuple(galleries),
      num_trials=num_trials,
      query_modality=INFRARED,
      gallery_modality=VISIBLE,
      settings={"dataset": "sysu", "mode": mode, "gallery_shots": gallery_shots,
                "gallery_scheme": gallery_scheme},
  )


def regdb_trials(
    modalities: Any,
    *,
    direction: str = "visible_to_thermal",
    cmc: str = "standard",
) -> Trials:
  """RegDB: one trial's whole test split, visible vs thermal (spec §7.5).

  The split holds one RegDB trial (its own train/test identities), so there is
  exactly one query/gallery pair; the ten-trial mean averages ten runs
  (`vireid_jax.evaluation.aggregate`). Queries and gallery keep split order.

  Args:
    modalities: [N] 0 (visible) / 1 (thermal) of the test split.
    direction: "visible_to_thermal" (queries visible) or "thermal_to_visible".
    cmc: "standard" (AGW) or "deduplicated" (MCJA).

  Returns:
    The `Trials`, named "regdb_{direction}[_dedup_cmc]".
  """
  if direction not in REGDB_DIRECTIONS:
    raise ValueError(f"RegDB direction must be one of {REGDB_DIRECTIONS}, got {direction!r}"
                     " (config.eval.regdb_directions).")
  if cmc not in metrics.CMC_KINDS:
    raise ValueError(f"config.eval.regdb_cmc must be one of {metrics.CMC_KINDS}, got {cmc!r}.")
  modalities = np.asarray(modalities).reshape(-1)
  modalities = _check_modalities(modalities, len(modalities))
  visible = np.flatnonzero(modalities == VISIBLE)
  thermal = np.flatnonzero(modalities == INFRARED)
  if direction == "visible_to_thermal":
    queries, gallery, query_modality = visible, thermal, VISIBLE
  else:
    queries, gallery, query_modality = thermal, visible, INFRARED
  name = f"regdb_{direction}" + ("_dedup_cmc" if cmc == "deduplicated" else "")
  return Trials(
      name=name,
      metric_protocol=METRIC_PROTOCOL["regdb"],
      cmc=cmc,
      query_indices=(queries,),
      gallery_indices=(gallery,),
      num_trials=1,
      query_modality=query_modality,
      gallery_modality=1 - query_modality,
      settings={"dataset": "regdb", "direction": direction, "cmc": cmc},
  )


def llcm_trials(
    person_ids: Any,
    cameras: Any,
    modalities: Any,
    relative_paths: Sequence[str],
    *,
    direction: str = "ir_to_vis",
    num_trials: int = LLCM_NUM_TRIALS,
) -> Trials:
  """LLCM: one of the three role assignments of the module docstring (spec §7.6).

  The random draw is the SYSU one (`single_shot_gallery_indices`, seed = trial)
  over the sampled modality's images, cameras 1..9 (VIS) or 1, 2, 4..9 (NIR).
  Fixed sets are ordered like the reference's loaders (id, camera, path).

  Args:
    person_ids, cameras, modalities, relative_paths: [N] metadata of the test
      split (both modalities).
    direction: "ir_to_vis", "vis_to_ir" or "vis_to_ir_swapped".
    num_trials: random draws 0..num_trials-1.

  Returns:
    The `Trials`, named "llcm_{direction}".
  """
  if direction not in LLCM_DIRECTIONS:
    raise ValueError(f"LLCM direction must be one of {LLCM_DIRECTIONS}, got {direction!r}"
                     " (config.eval.llcm_directions).")
  _check_num_trials(num_trials)
  person_ids, cameras, relative_paths = _check_metadata(person_ids, cameras, relative_paths)
  modalities = _check_modalities(modalities, len(person_ids))
  visible = np.flatnonzero(modalities == VISIBLE)
  infrared = np.flatnonzero(modalities == INFRARED)
  if direction == "ir_to_vis":
    fixed, sampled, cameras_of_sampled = infrared, visible, LLCM_VISIBLE_CAMERAS
    fixed_cameras = LLCM_INFRARED_CAMERAS
  else:
    fixed, sampled, cameras_of_sampled = visible, infrared, LLCM_INFRARED_CAMERAS
    fixed_cameras = LLCM_VISIBLE_CAMERAS
  unexpected = set(cameras[fixed].tolist()) - set(fixed_cameras)
  if unexpected:
    raise ValueError(f"LLCM {MODALITY_NAMES[int(modalities[fixed[0]])]} images from cameras"
                     f" {sorted(unexpected)}; the protocol knows cameras {fixed_cameras}.")
  fixed = _rows_in_order(fixed, person_ids, cameras, relative_paths, fixed_cameras)
  draws = tuple(
      _draw_from_rows(sampled, person_ids, cameras, relative_paths, trial=trial,
                      gallery_cameras=cameras_of_sampled)
      for trial in range(num_trials)
  )
  if direction == "vis_to_ir_swapped":
    query_indices, gallery_indices, query_modality = draws, (fixed,), INFRARED
  else:
    query_indices, gallery_indices = (fixed,), draws
    query_modality = INFRARED if direction == "ir_to_vis" else VISIBLE
  return Trials(
      name=f"llcm_{direction}",
      metric_protocol=METRIC_PROTOCOL["llcm"],
      cmc=None,
      query_indices=query_indices,
      gallery_indices=gallery_indices,
      num_trials=num_trials,
      query_modality=query_modality,
      gallery_modality=1 - query_modality,
      settings={"dataset": "llcm", "direction": direction},
  )
