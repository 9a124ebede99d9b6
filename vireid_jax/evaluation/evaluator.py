"""The evaluation entry point: a model's features of a test split, every configured protocol.

`evaluate` is what the training loop (and `--mode eval`) calls: it computes the features
of every test image once (`features.extract_features`: through the stem of its modality,
optionally averaged with the mirrored image, optionally with MSER's spectral views),
scores each protocol variant the dataset and `config.eval` select (`protocols`), with
the configured distance or re-ranking, and returns one summary per (protocol variant,
feature) in the `report.summarize_trials` format; with an output folder it also draws the
ranked-retrieval grids and the CMC curves (`plots`) and writes the results browser
(`html_page`, `write_results_page`).

Test-time options (`config.eval`):
  * features: which outputs of the method's `features` to evaluate ("pool", "bn").
  * flip: average each image's features with those of its horizontal mirror and
    re-L2-normalise ([CAJ] `testa.py`, spec §7.1); AGW evaluates without.
  * distance: "cosine" (every reference's ranking) or "euclidean" (the official
    SYSU-MM01 MATLAB code); identical rankings on L2-normalised features.
  * rerank: "none", "k_reciprocal" (Zhong et al., CVPR 2017, `config.eval.k_reciprocal`)
    or "mser" (MCJA, `config.eval.mser.<dataset>`). Re-ranking computes its own
    distances (squared Euclidean), so `distance` then does not apply.
The options are part of the protocol name in the results ("sysu_all+flip+mser").
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vireid_jax import failpoints
from vireid_jax.data.splits import INFRARED
from vireid_jax.data.splits import MODALITY_NAMES
from vireid_jax.data.splits import VISIBLE
from vireid_jax.evaluation import distances
from vireid_jax.evaluation import html_page
from vireid_jax.evaluation import metrics
from vireid_jax.evaluation import plots
from vireid_jax.evaluation import protocols
from vireid_jax.evaluation import report
from vireid_jax.evaluation import rerank
from vireid_jax.evaluation.features import FeaturesFn
from vireid_jax.evaluation.features import extract_features

DATASETS = ("sysu", "regdb", "llcm")
RERANKING = ("none", "k_reciprocal", "mser")
# MSER's views of a visible image: itself, then channel R, G or B repeated into three
# channels (MCJA's test modes None, 'r', 'g', 'b'; spec mcja.md §1.3).
SPECTRAL_VIEWS = {"original": None, "red": 0, "green": 1, "blue": 2}

@dataclasses.dataclass(frozen=True)
class EvalOptions:
  """`config.eval`, validated. See configs/default.py for each field."""

  mode: str
  gallery_shots: int
  gallery_scheme: str
  rand_perm_cam: str
  regdb_directions: tuple[str, ...]
  regdb_cmc: str
  llcm_directions: tuple[str, ...]
  num_trials: int
  max_rank: int
  features: tuple[str, ...]
  main_feature: str
  flip: bool
  distance: str
  rerank: str
  k_reciprocal: Mapping[str, Any]
  mser: Mapping[str, Mapping[str, Any]]
  query_block_size: int
  ranking_queries: int
  ranking_top_k: int


def _setting(config: Any, key: str, prefix: str = "config.eval") -> Any:
  try:
    return config[key]
  except (KeyError, AttributeError):
    raise KeyError(
        f"{prefix}.{key} is missing; configs/default.py lists every evaluation setting."
    ) from None


def _as_tuple(value: Any) -> tuple:
  return (value,) if isinstance(value, str) else tuple(value)


def options_from_config(eval_config: Any) -> EvalOptions:
  """Reads and checks `config.eval` (a ConfigDict or a mapping)."""
  fields = {field.name: _setting(eval_config, field.name)
            for field in dataclasses.fields(EvalOptions)}
  for key in ("regdb_directions", "llcm_directions", "features"):
    fields[key] = _as_tuple(fields[key])
  fields["k_reciprocal"] = {
      key: _setting(fields["k_reciprocal"], key, "config.eval.k_reciprocal")
      for key in ("k1", "k2", "lambda_value")
  }
  fields["mser"] = {
      dataset: {
          key: _setting(_setting(fields["mser"], dataset, "config.eval.mser"), key,
                        f"config.eval.mser.{dataset}")
          for key in ("k1", "k2", "lambda_value", "probe_neighbours_only")
      }
      for dataset in DATASETS
  }
  options = EvalOptions(**fields)
  if options.distance not in distances.DISTANCES:
    raise ValueError(f"config.eval.distance must be one of {distances.DISTANCES}, got"
                     f" {options.distance!r}.")
  if options.rerank not in RERANKING:
    raise ValueError(f"config.eval.rerank must be one of {RERANKING}, got {options.rerank!r}.")
  if not options.features:
    raise ValueError("config.eval.features is empty; name at least one feature, e.g. ('bn',).")
  for key in ("num_trials", "max_rank", "query_block_size", "ranking_top_k"):
    if getattr(options, key) < 1:
      raise ValueError(f"config.eval.{key} must be >= 1, got {getattr(options, key)}.")
  if options.ranking_queries < 0:
    raise ValueError(f"config.eval.ranking_queries must be >= 0, got {options.ranking_queries}.")
  return options


def protocol_trials(test: Any, dataset: str, options: EvalOptions) -> list[protocols.Trials]:
  """The protocol variants `dataset` and the options select, on the split `test`."""
  if dataset == "sysu":
    rand_perm_cam = None
    if options.gallery_scheme == "official":
      if not options.rand_perm_cam:
        raise ValueError("config.eval.gallery_scheme='official' needs config.eval.rand_perm_cam,"
                         " the path of the official kit's rand_perm_cam.mat.")
      rand_perm_cam = protocols.load_rand_perm_cam(options.rand_perm_cam)
    return [protocols.sysu_trials(
        test.person_ids, test.cameras, test.relative_paths, mode=options.mode,
        num_trials=options.num_trials, gallery_shots=options.gallery_shots,
        gallery_scheme=options.gallery_scheme, rand_perm_cam=rand_perm_cam,
        rand_perm_cam_source=options.rand_perm_cam)]
  if dataset == "regdb":
    if not options.regdb_directions:
      raise ValueError("config.eval.regdb_directions is empty.")
    return [protocols.regdb_trials(test.modalities, direction=direction, cmc=options.regdb_cmc)
            for direction in options.regdb_directions]
  if dataset == "llcm":
    if not options.llcm_directions:
      raise ValueError("config.eval.llcm_directions is empty.")
    return [protocols.llcm_trials(test.person_ids, test.cameras, test.modalities,
                                  test.relative_paths, direction=direction,
                                  num_trials=options.num_trials)
            for direction in options.llcm_directions]
  raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")


def _check_split(test: Any) -> None:
  for name in ("images", "person_ids", "cameras", "modalities", "relative_paths"):
    if not hasattr(test, name):
      raise TypeError(f"The test split has no attribute {name!r}; pass the decoded split"
                      " (vireid_jax.data.splits.SplitArrays).")
  images = test.images
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise ValueError(f"Test images must be uint8 [N, H, W, 3], got {images.dtype}"
                     f" {images.shape}.")
  lengths = {name: len(getattr(test, name))
             for name in ("images", "person_ids", "cameras", "modalities", "relative_paths")}
  if len(set(lengths.values())) != 1:
    raise ValueError(f"The test split's arrays differ in length: {lengths}.")


def split_features(
    features_fn: FeaturesFn,
    test: Any,
    *,
    batch_size: int,
    flip: bool = False,
    views: Sequence[str] = ("original",),
) -> dict[str, dict[str, jax.Array]]:
  """Features of every image of the split, in split order: {view: {name: [N, D]}}.

  Visible images go through the "visible" stem, infrared ones through the
  "infrared" stem. Spectral views other than "original" change visible images
  only: an infrared image's views are its original features (as in MCJA).

  Args:
    features_fn: the method's jitted features function.
    test: the split (`images`, `modalities`).
    batch_size: rows per `features_fn` call.
    flip: average with the mirrored images' features.
    views: names of `SPECTRAL_VIEWS`, "original" first.
  """
  views = tuple(views)
  if not views or views[0] != "original":
    raise ValueError(f"views must start with 'original', got {views}.")
  modalities = np.asarray(test.modalities)
  rows_per_modality = {modality: np.flatnonzero(modalities == modality)
                       for modality in (VISIBLE, INFRARED)}
  inverse = jnp.asarray(np.argsort(np.concatenate(list(rows_per_modality.values()))))
  result: dict[str, dict[str, jax.Array]] = {}
  for view in views:
    parts = []
    for modality, rows in rows_per_modality.items():
      if not len(rows):
        continue
      if modality == INFRARED and view != "original":
        parts.append({name: value[rows] for name, value in result["original"].items()})
      else:
        parts.append(extract_features(
            features_fn, test.images[rows], MODALITY_NAMES[modality],
            batch_size=batch_size, flip=flip, channel=SPECTRAL_VIEWS[view]))
    result[view] = {name: jnp.concatenate([part[name] for part in parts])[inverse]
                    for name in parts[0]}
  return result


def evaluate(
    features_fn: FeaturesFn,
    test: Any,
    eval_config: Any,
    *,
    dataset: str,
    batch_size: int,
    output_dir: str | os.PathLike | None = None,
    data_trial: int | None = None,
) -> list[dict[str, Any]]:
  """Evaluates a model on a test split under every configured protocol variant.

  Args:
    features_fn: `features_fn(images, modality)` with images [batch_size, H, W,
      3] float32 ImageNet-normalised and modality "visible" or "infrared";
      returns {name: [batch_size, D]} (at least the names in
      `config.eval.features`). Jitted by the caller.
    test: the decoded test split (duck-typed `SplitArrays`): `images` [N, H, W,
      3] uint8, `person_ids`, `cameras` (1-based), `modalities` (0 visible, 1
      infrared), `relative_paths`, all [N]. RegDB: one trial's test split.
    eval_config: `config.eval`.
    dataset: "sysu", "regdb" or "llcm".
    batch_size: rows per `features_fn` call.
    output_dir: if given, the ranked-retrieval grids
      "ranking_<protocol>_<feature>.png", "cmc.png" and the results browser
      "index.html" (with its "thumbnails/", `write_results_page`) are written
      there (created if missing; each file atomically).
    data_trial: the data split's trial (RegDB 1..10), recorded in the
      settings so that `aggregate` can check it averages distinct trials.

  Returns:
    One `report.summarize_trials` summary per (protocol variant, feature), in
    that order, each with a "settings" dict describing the variant and the
    test-time options.
  """
  if dataset not in DATASETS:
    raise ValueError(f"Unknown dataset {dataset!r}; expected one of {DATASETS}.")
  options = options_from_config(eval_config)
  _check_split(test)
  variants = protocol_trials(test, dataset, options)
  views = tuple(SPECTRAL_VIEWS) if options.rerank == "mser" else ("original",)
  features = split_features(features_fn, test, batch_size=batch_size, flip=options.flip,
                            views=views)
  missing = [name for name in options.features if name not in features["original"]]
  if missing:
    raise KeyError(f"config.eval.features names {missing}, but the method's features are"
                   f" {sorted(features['original'])}.")

  summaries, pictures = [], []
  for variant in variants:
    name = _variant_name(variant, options)
    for feature in options.features:
      trials, first_trial_distances = _score_trials(variant, features, feature, test, options,
                                                   dataset)
      summary = report.summarize_trials(
          {"trials": trials, "num_queries": len(variant.queries(0))},
          feature=feature, protocol=name)
      summary["settings"] = {
          **variant.settings,
          "num_trials": variant.num_trials,
          "flip": options.flip,
          "distance": options.distance if options.rerank == "none" else "squared_euclidean",
          "rerank": options.rerank,
          **({"rerank_parameters": _rerank_parameters(options, dataset)}
             if options.rerank != "none" else {}),
          **({"data_trial": data_trial} if data_trial is not None else {}),
      }
      summaries.append(summary)
      pictures.append((summary, variant, first_trial_distances))
      failpoints.hit("evaluation")

  if output_dir is not None:
    os.makedirs(output_dir, exist_ok=True)
    for summary, variant, first_trial_distances in pictures:
      if options.ranking_queries:
        write_ranking_picture(
            os.path.join(output_dir, _file_name("ranking", summary["protocol"],
                                                summary["feature"])),
            test, variant, first_trial_distances, title=f"{summary['protocol']} ·"
            f" {summary['feature']} · trial 0", num_queries=options.ranking_queries,
            top_k=options.ranking_top_k)
    plots.write_cmc_curves(
        os.path.join(output_dir, "cmc.png"),
        [(f"{summary['protocol']} {summary['feature']}", summary["mean"]["cmc"],
          np.std(np.asarray(summary["per_trial"]["cmc"]), axis=0))
         for summary in summaries],
        title=f"CMC ({dataset}): mean over trials, band = ±1 standard deviation")
    # The results browser: the first variant's main feature (the feature evaluated first
    # when the main one is not among the evaluated ones).
    page_feature = (options.main_feature if options.main_feature in options.features
                    else options.features[0])
    summary, variant, first_trial_distances = next(
        picture for picture in pictures if picture[0]["feature"] == page_feature)
    write_results_page(output_dir, test, variant, first_trial_distances, summaries,
                       title=f"{dataset} · {summary['protocol']} · {summary['feature']}",
                       top_k=options.ranking_top_k, query_block_size=options.query_block_size)
  return summaries


def _variant_name(variant: protocols.Trials, options: EvalOptions) -> str:
  name = variant.name
  if options.flip:
    name += "+flip"
  if options.rerank == "none" and options.distance != "cosine":
    name += f"+{options.distance}"
  if options.rerank != "none":
    name += f"+{options.rerank}"
  return name


def _file_name(kind: str, protocol: str, feature: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.+-]", "_", f"{kind}_{protocol}_{feature}") + ".png"


def _rerank_parameters(options: EvalOptions, dataset: str) -> dict[str, Any]:
  if options.rerank == "k_reciprocal":
    return dict(options.k_reciprocal)
  return dict(options.mser[dataset])


def _score_trials(variant, features, feature, test, options, dataset):
  """Per-trial `rank_metrics` results (+ "gallery_size") and a function giving the
  first trial's distances of chosen query positions ([n, G] NumPy)."""
  person_ids = np.asarray(test.person_ids)
  cameras = np.asarray(test.cameras)
  original = features["original"][feature]
  metric_options = dict(protocol=variant.metric_protocol, cmc=variant.cmc,
                        max_rank=options.max_rank, query_block_size=options.query_block_size)

  if options.rerank == "none":
    query_sizes = {len(rows) for rows in variant.query_indices}
    gallery_sizes = {len(rows) for rows in variant.gallery_indices}
    if len(query_sizes) == 1 and len(gallery_sizes) == 1:
      # Every trial in one call: [T, Q] / [T, G] index arrays (T = 1 where shared).
      groups = [(np.stack(variant.query_indices), np.stack(variant.gallery_indices))]
    else:
      groups = [(variant.queries(t)[None], variant.gallery(t)[None])
                for t in range(variant.num_trials)]
    trials = []
    for query_rows, gallery_rows in groups:
      trials += metrics.rank_metrics_from_features(
          jnp.take(original, jnp.asarray(query_rows), axis=0),
          jnp.take(original, jnp.asarray(gallery_rows), axis=0),
          person_ids[query_rows], person_ids[gallery_rows],
          cameras[query_rows], cameras[gallery_rows],
          distance=options.distance, **metric_options)

    def first_trial_distances(positions):
      query_rows = variant.queries(0)[positions]
      return np.asarray(distances.pairwise_distance(
          original[query_rows], original[variant.gallery(0)], options.distance))
  else:
    trials, first_distmat = [], None
    for trial in range(variant.num_trials):
      query_rows, gallery_rows = variant.queries(trial), variant.gallery(trial)
      distmat = _reranked_distances(variant, features, feature, query_rows, gallery_rows,
                                    options, dataset)
      if trial == 0:
        first_distmat = distmat
      trials.append(metrics.rank_metrics(
          distmat, person_ids[query_rows], person_ids[gallery_rows], cameras[query_rows],
          cameras[gallery_rows], **metric_options))

    def first_trial_distances(positions):
      return np.asarray(first_distmat[jnp.asarray(positions)])

  for trial, result in enumerate(trials):
    result["gallery_size"] = len(variant.gallery(trial))
  return trials, first_trial_distances


def _reranked_distances(variant, features, feature, query_rows, gallery_rows, options, dataset):
  """[Q, G] re-ranked distances of one trial."""
  if options.rerank == "k_reciprocal":
    original = features["original"][feature]
    return rerank.k_reciprocal_rerank(
        original[query_rows], original[gallery_rows], block_size=options.query_block_size,
        **options.k_reciprocal)

  # MSER: the visible side contributes its four spectral views.
  def views_of(rows, modality):
    names = SPECTRAL_VIEWS if modality == VISIBLE else ("original",)
    return [features[view][feature][rows] for view in names]

  return rerank.mser_rerank(
      views_of(query_rows, variant.query_modality),
      views_of(gallery_rows, variant.gallery_modality),
      block_size=options.query_block_size, **options.mser[dataset])


def write_ranking_picture(
    path: str | os.PathLike,
    test: Any,
    variant: protocols.Trials,
    first_trial_distances: Callable[[np.ndarray], np.ndarray],
    *,
    title: str,
    num_queries: int = 8,
    top_k: int = 10,
) -> None:
  """The ranked-retrieval grid of the first trial (`plots.write_ranking_grid`).

  The queries are `num_queries` valid queries (with a true match left after the
  protocol's removal rule) evenly spaced over the query list, so the picture
  covers several identities and cameras deterministically. Each row is the
  ranking the metrics see: the gallery sorted by distance, removed items left
  out.
  """
  person_ids = np.asarray(test.person_ids)
  cameras = np.asarray(test.cameras)
  query_rows, gallery_rows = variant.queries(0), variant.gallery(0)
  keep, is_match = _first_trial_keep_and_match(test, variant)
  valid = np.flatnonzero(np.any(keep & is_match, axis=1))
  if not len(valid):
    return
  positions = valid[np.unique(np.linspace(0, len(valid) - 1, min(num_queries, len(valid)))
                              .round().astype(int))]
  distance_rows = first_trial_distances(positions)
  ranked = [_ranked_after_removal(row_distances, keep[position], top_k)
            for position, row_distances in zip(positions, distance_rows)]
  top_k = min(len(order) for order in ranked)
  ranked = np.stack([order[:top_k] for order in ranked])  # [n, top_k] gallery positions
  ranked_rows = gallery_rows[ranked]
  plots.write_ranking_grid(
      path,
      query_images=test.images[query_rows[positions]],
      query_captions=[f"query id {person_ids[row]}\ncam {cameras[row]}"
                      for row in query_rows[positions]],
      ranked_images=test.images[ranked_rows],
      ranked_captions=[[f"{rank + 1}: id {person_ids[row]}\ncam {cameras[row]}"
                        for rank, row in enumerate(rows)] for rows in ranked_rows],
      ranked_is_match=person_ids[ranked_rows] == person_ids[query_rows[positions]][:, None],
      title=(f"{title}\nquery (blue frame) and its top {top_k}: green = same identity,"
             " red = another"),
  )


def _first_trial_keep_and_match(test: Any, variant: protocols.Trials
                                ) -> tuple[np.ndarray, np.ndarray]:
  """[Q, G] bool masks of the first trial: gallery items kept by the protocol's removal
  rule (`metrics.keep_mask`), and items of the query's identity."""
  person_ids = np.asarray(test.person_ids)
  cameras = np.asarray(test.cameras)
  query_rows, gallery_rows = variant.queries(0), variant.gallery(0)
  # Id codes: the removal rule compares ids with jnp, which has no strings.
  _, id_codes = np.unique(person_ids, return_inverse=True)
  id_codes = id_codes.reshape(-1).astype(np.int32)
  keep = np.asarray(metrics.keep_mask(
      variant.metric_protocol, id_codes[query_rows][:, None], cameras[query_rows][:, None],
      id_codes[gallery_rows][None, :], cameras[gallery_rows][None, :]))
  keep = np.broadcast_to(keep, (len(query_rows), len(gallery_rows)))
  is_match = id_codes[query_rows][:, None] == id_codes[gallery_rows][None, :]
  return keep, is_match


def _ranked_after_removal(row_distances: np.ndarray, keep: np.ndarray, top_k: int) -> np.ndarray:
  """The first `top_k` gallery positions of one query's ranking as the metrics see it:
  sorted by distance (stable, as `metrics.rank_metrics`), removed items left out."""
  order = np.argsort(row_distances, kind="stable")
  return order[keep[order]][:top_k]


def _first_trial_query_results(row_distances: np.ndarray, keep: np.ndarray, is_match: np.ndarray,
                               top_k: int) -> dict[str, Any]:
  """Each query's top `top_k`, AP, validity and rank-1 hit from its first-trial distances.

  The definitions of `metrics.rank_metrics`, vectorised over the rows: the gallery sorted
  by distance (stable), removed items left out; AP = mean over the true matches of the
  precision at their positions; valid = a true match is left; rank-1 hit = the first kept
  item is a true match (for the deduplicated CMC as well: its first identity is the first
  kept item's). Calling `rank_metrics` once per query would give the same values at ~10 ms
  a query (40 s for SYSU-MM01's 3,803).

  Args:
    row_distances: [n, G] distances of n queries (float32 as the metrics see them).
    keep: [n, G] bool, kept by the protocol's removal rule.
    is_match: [n, G] bool, same identity as the query.
    top_k: length of the ranked lists returned.

  Returns:
    dict with "ranked" ([n] int arrays of <= top_k gallery positions), "average_precision"
    [n], "valid" [n] bool, "rank1_hit" [n] bool.
  """
  order = np.argsort(row_distances, axis=1, kind="stable")
  kept = np.take_along_axis(keep, order, axis=1)
  matches = np.take_along_axis(is_match, order, axis=1) & kept
  position = np.cumsum(kept, axis=1) - 1  # in the ranked list after removal
  matches_so_far = np.cumsum(matches, axis=1)
  num_matches = matches_so_far[:, -1] if matches.shape[1] else np.zeros(len(matches), int)
  precision_sum = np.sum(np.where(matches, matches_so_far / np.maximum(position + 1, 1), 0.0),
                         axis=1)
  rank1_hit = np.zeros(len(matches), bool)
  if matches.shape[1]:
    rank1_hit = matches[np.arange(len(matches)), np.argmax(kept, axis=1)]
  return {
      "ranked": [row_order[row_kept][:top_k] for row_order, row_kept in zip(order, kept)],
      "average_precision": precision_sum / np.maximum(num_matches, 1),
      "valid": num_matches > 0,
      "rank1_hit": rank1_hit,
  }


def write_results_page(
    output_dir: str | os.PathLike,
    test: Any,
    variant: protocols.Trials,
    first_trial_distances: Callable[[np.ndarray], np.ndarray],
    summaries: Sequence[Mapping[str, Any]],
    *,
    title: str,
    top_k: int = 10,
    query_block_size: int = 4096,
) -> str:
  """The results browser of an evaluation (`html_page`): every query of `variant`'s
  first trial with its top `top_k`, its AP and rank-1 hit; returns the page's path.

  The rankings are those the metrics see, from the evaluation's first-trial distances
  and removal rule (`_first_trial_query_results`), so the page's mean AP over valid
  queries is the trial's mAP and its rank-1 hit rate the trial's R1.

  Args:
    output_dir: the figure folder (exists); "cmc.png" there is shown if present.
    test: the split (`images`, `person_ids`, `cameras`, `relative_paths`).
    variant: the protocol variant.
    first_trial_distances: query positions [n] -> their distances [n, G] (trial 0).
    summaries: the evaluation's summaries, shown as the results table.
    title: the page's title.
    top_k: gallery images shown per query.
    query_block_size: query rows of distances fetched at a time.
  """
  query_rows, gallery_rows = variant.queries(0), variant.gallery(0)
  keep, is_match = _first_trial_keep_and_match(test, variant)
  results = {"ranked": [], "ranked_distances": [], "ranked_is_match": [],
             "average_precision": [], "valid": [], "rank1_hit": []}
  for start in range(0, len(query_rows), query_block_size):
    positions = np.arange(start, min(start + query_block_size, len(query_rows)))
    row_distances = np.asarray(first_trial_distances(positions))
    block = _first_trial_query_results(row_distances, keep[positions], is_match[positions],
                                       top_k)
    for name in ("average_precision", "valid", "rank1_hit"):
      results[name].append(block[name])
    for position, row, top in zip(positions, row_distances, block["ranked"]):
      results["ranked"].append(top)
      results["ranked_distances"].append(row[top])
      results["ranked_is_match"].append(is_match[position][top])
  for name in ("average_precision", "valid", "rank1_hit"):
    results[name] = np.concatenate(results[name]) if results[name] else np.zeros(0)
  cmc_picture = "cmc.png" if os.path.exists(os.path.join(output_dir, "cmc.png")) else None
  return html_page.write_results_page(
      output_dir, images=test.images, title=title,
      description=(f"Every query of {variant.name} in gallery trial 0 of {variant.num_trials}"
                   f" ({len(query_rows)} queries, {int(np.sum(results['valid']))} with a true"
                   f" match; {len(gallery_rows)} gallery images), each with its top {top_k}"
                   " after the protocol's removal rule."),
      results_table=report.format_results_table(summaries), cmc_picture=cmc_picture,
      person_ids=np.asarray(test.person_ids), cameras=np.asarray(test.cameras),
      relative_paths=np.asarray(test.relative_paths), query_rows=query_rows,
      gallery_rows=gallery_rows, **results)
