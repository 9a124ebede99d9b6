"""Tests of `vireid_jax.evaluation.evaluate`, the entry point the loop calls: image
preparation, batched feature extraction, every dataset's protocol variants against a
direct computation, re-ranking and test-time options, and the pictures."""

import json
import os
import types

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from configs import default
from vireid_jax.data import splits
from vireid_jax.data.normalization import IMAGENET_MEAN
from vireid_jax.data.normalization import IMAGENET_STD
from vireid_jax.evaluation import evaluate
from vireid_jax.evaluation import extract_features
from vireid_jax.evaluation import metrics
from vireid_jax.evaluation import plots
from vireid_jax.evaluation import protocols
from vireid_jax.evaluation import rank_metrics
from vireid_jax.evaluation import rerank
from vireid_jax.evaluation.features import prepare_images

IMAGE_SHAPE = (12, 6, 3)
FEATURE_DIM = 10
_PROJECTION = np.random.default_rng(0).normal(size=[int(np.prod(IMAGE_SHAPE)), FEATURE_DIM])


@jax.jit
def _features(images, infrared_offset):
  pooled = images.reshape(images.shape[0], -1) @ jnp.asarray(_PROJECTION, jnp.float32)
  pooled = pooled + infrared_offset
  return {"pool": pooled, "bn": pooled / jnp.linalg.norm(pooled, axis=1, keepdims=True)}


def features_fn(images, modality):
  """A stand-in model: a fixed random projection, shifted for the infrared stem."""
  assert images.dtype == jnp.float32 and images.shape[1:] == IMAGE_SHAPE
  return _features(images, {"visible": 0.0, "infrared": 0.7}[modality])


def _images(person_ids, seed):
  """Each identity has a colour; images are that colour plus noise (so rankings are
  informative but imperfect)."""
  rng = np.random.default_rng(seed)
  colours = {p: rng.integers(0, 256, 3) for p in np.unique(person_ids)}
  noise = rng.normal(0, 70, (len(person_ids), *IMAGE_SHAPE))
  return np.clip(np.stack([colours[p] for p in person_ids])[:, None, None] + noise, 0,
                 255).astype(np.uint8)


def _split(person_ids, cameras, modalities, paths, seed=1):
  return types.SimpleNamespace(
      images=_images(person_ids, seed), person_ids=np.asarray(person_ids),
      cameras=np.asarray(cameras), modalities=np.asarray(modalities),
      relative_paths=np.asarray(paths))


@pytest.fixture(scope="module")
def sysu_split():
  counts = {(1, 6): 5, (2, 6): 3, (3, 6): 4, (4, 6): 7, (5, 6): 2, (6, 6): 3,
            (1, 10): 9, (3, 10): 2, (4, 10): 1, (6, 10): 5,
            (2, 17): 6, (3, 17): 3, (6, 17): 2, (3, 21): 2, (6, 21): 4,
            (4, 24): 11, (5, 24): 4, (3, 24): 1, (6, 24): 3}  # fmt: skip
  rows = [(camera, person_id, f"cam{camera}/{person_id:04d}/{k:04d}.jpg")
          for (camera, person_id), n in counts.items() for k in range(1, n + 1)]
  order = np.random.default_rng(2).permutation(len(rows))  # split order is arbitrary
  cameras, person_ids, paths = zip(*[rows[i] for i in order])
  modalities = np.isin(cameras, protocols.SYSU_QUERY_CAMERAS).astype(np.int32)
  return _split(person_ids, cameras, modalities, paths)


@pytest.fixture(scope="module")
def regdb_split():
  person_ids = np.repeat(np.arange(20, 28), 4)  # 8 ids, 2 visible + 2 thermal each
  modalities = np.tile([0, 0, 1, 1], 8)
  cameras = 1 + modalities  # AGW: visible = 1, thermal = 2
  paths = [f"{'Thermal' if m else 'Visible'}/{p}/{i}.bmp"
           for i, (p, m) in enumerate(zip(person_ids, modalities))]
  return _split(person_ids, cameras, modalities, paths)


@pytest.fixture(scope="module")
def llcm_split():
  rng = np.random.default_rng(3)
  rows = []
  for person_id in (1, 5, 9, 13):
    for modality, folder, camera_list in ((0, "test_vis", protocols.LLCM_VISIBLE_CAMERAS),
                                          (1, "test_nir", protocols.LLCM_INFRARED_CAMERAS)):
      for camera in rng.choice(camera_list, size=3, replace=False):
        for k in range(int(rng.integers(1, 4))):
          rows.append((person_id, int(camera), modality,
                       f"{folder}/cam{camera}/{person_id:04d}/{k}.jpg"))
  person_ids, cameras, modalities, paths = zip(*rows)
  return _split(person_ids, cameras, modalities, paths)


def _config(**overrides):
  config = default.get_config().eval
  config.num_trials = 3
  config.k_reciprocal.update(k1=6, k2=3)
  for dataset in ("sysu", "regdb", "llcm"):
    config.mser[dataset].update(k1=5, k2=3)
  config.update(overrides)
  return config


def _reference_features(split, view=None, flip=False):
  """Every row's features from whole-modality calls (no batching), NumPy float64."""
  features = {}
  for modality, name in enumerate(splits.MODALITY_NAMES):
    rows = np.flatnonzero(split.modalities == modality)
    if not len(rows):
      continue
    images = split.images[rows].astype(np.float32) / 255
    if view is not None and modality == splits.VISIBLE:
      images = np.repeat(images[..., view:view + 1], 3, axis=-1)
    if flip:
      images = images[:, :, ::-1]
    images = (images - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    for key, value in features_fn(jnp.asarray(images, jnp.float32), name).items():
      features.setdefault(key, np.zeros([len(split.images), FEATURE_DIM]))[rows] = value
  return features


def _expected_trials(split, variant, feature, distance_fn):
  """rank_metrics of each trial on float64 distances computed here."""
  results = []
  for trial in range(variant.num_trials):
    queries, gallery = variant.queries(trial), variant.gallery(trial)
    results.append(rank_metrics(
        distance_fn(queries, gallery), split.person_ids[queries], split.person_ids[gallery],
        split.cameras[queries], split.cameras[gallery], protocol=variant.metric_protocol,
        cmc=variant.cmc))
  return results


def _cosine(features):
  normalised = features / np.linalg.norm(features, axis=1, keepdims=True)
  return lambda queries, gallery: -normalised[queries] @ normalised[gallery].T


def _assert_summary_matches(summary, expected_trials):
  assert summary["num_trials"] == len(expected_trials)
  for key in ("mAP", "mINP"):
    np.testing.assert_allclose(summary["per_trial"][key], [t[key] for t in expected_trials],
                               rtol=0, atol=1e-6)
  np.testing.assert_allclose(summary["per_trial"]["cmc"], [t["cmc"] for t in expected_trials],
                             rtol=0, atol=1e-6)
  assert summary["per_trial"]["num_valid_queries"] == [
      t["num_valid_queries"] for t in expected_trials]


def test_prepare_images_normalises_like_the_training_pipeline():
  images = np.random.default_rng(4).integers(0, 256, (2, 4, 3, 3), dtype=np.uint8)
  expected = (images / 255.0 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
  np.testing.assert_allclose(prepare_images(images), expected, atol=1e-6)
  mirrored = prepare_images(images, flip=True)
  np.testing.assert_allclose(mirrored, expected[:, :, ::-1], atol=1e-6)
  # MSER's green view: channel 1 in all three channels, then per-channel normalisation.
  green = np.repeat(images[..., 1:2] / 255.0, 3, axis=-1)
  np.testing.assert_allclose(prepare_images(images, channel=1),
                             (green - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD),
                             atol=1e-6)


def test_extract_features_uses_full_batches_and_drops_the_padding():
  images = _images(np.arange(11), seed=5)
  calls = []

  def recording_features_fn(batch, modality):
    calls.append((batch.shape[0], modality))
    return features_fn(batch, modality)

  features = extract_features(recording_features_fn, images, "infrared", batch_size=4)
  assert calls == [(4, "infrared")] * 3
  split = types.SimpleNamespace(images=images, modalities=np.ones(11, int))
  expected = _reference_features(split)
  for name in ("pool", "bn"):
    assert features[name].shape == (11, FEATURE_DIM)
    np.testing.assert_allclose(features[name], expected[name], rtol=1e-5, atol=1e-5)
  # Flip averaging: normalise(f(x) + f(mirror x)) for every feature.
  flipped = extract_features(features_fn, images, "infrared", batch_size=4, flip=True)
  mirror = _reference_features(split, flip=True)
  for name in ("pool", "bn"):
    total = expected[name] + mirror[name]
    np.testing.assert_allclose(flipped[name], total / np.linalg.norm(total, axis=1,
                                                                     keepdims=True), atol=1e-5)


def test_extract_features_takes_float_images_as_already_normalised():
  images = _images(np.arange(7), seed=6)
  from_pixels = extract_features(features_fn, images, "visible", batch_size=4)
  normalised = np.asarray(prepare_images(images), np.float32)
  from_normalised = extract_features(features_fn, normalised, "visible", batch_size=4)
  for name in ("pool", "bn"):
    np.testing.assert_array_equal(from_normalised[name], from_pixels[name])
  mirrored = extract_features(features_fn, normalised, "visible", batch_size=4, flip=True)
  np.testing.assert_allclose(
      mirrored["bn"], extract_features(features_fn, images, "visible", batch_size=4,
                                       flip=True)["bn"], atol=1e-6)
  with pytest.raises(ValueError, match="uint8"):
    extract_features(features_fn, normalised, "visible", batch_size=4, channel=0)
  with pytest.raises(ValueError, match="int32"):
    extract_features(features_fn, images.astype(np.int32), "visible", batch_size=4)
  with pytest.raises(ValueError, match="'visible', 'infrared'"):
    extract_features(features_fn, images, "thermal", batch_size=4)


def test_evaluate_on_sysu_equals_the_protocol_computed_directly(sysu_split):
  summaries = evaluate(features_fn, sysu_split, _config(), dataset="sysu", batch_size=8)
  assert [(s["protocol"], s["feature"]) for s in summaries] == [("sysu_all", "pool"),
                                                               ("sysu_all", "bn")]
  variant = protocols.sysu_trials(sysu_split.person_ids, sysu_split.cameras,
                                  sysu_split.relative_paths, num_trials=3)
  reference = _reference_features(sysu_split)
  for summary in summaries:
    _assert_summary_matches(summary, _expected_trials(sysu_split, variant, summary["feature"],
                                                      _cosine(reference[summary["feature"]])))
    assert summary["num_queries"] == len(variant.queries(0)) == 29
    assert summary["per_trial"]["gallery_size"] == [9, 9, 9]
    assert summary["settings"] == {
        "dataset": "sysu", "mode": "all", "gallery_shots": 1, "gallery_scheme": "agw",
        "num_trials": 3, "flip": False, "distance": "cosine", "rerank": "none"}
  # Sanity of the stand-in model: informative, not perfect.
  assert 0.3 < summaries[1]["mean"]["mAP"] < 1.0
  json.dumps(summaries, allow_nan=False)


@pytest.mark.parametrize("dataset", ["regdb", "llcm"])
def test_evaluate_regdb_and_llcm_equal_their_protocols(dataset, regdb_split, llcm_split):
  split = regdb_split if dataset == "regdb" else llcm_split
  config = _config(features=("bn",), llcm_directions=protocols.LLCM_DIRECTIONS, num_trials=2)
  summaries = evaluate(features_fn, split, config, dataset=dataset, batch_size=8, data_trial=4)
  if dataset == "regdb":
    variants = [protocols.regdb_trials(split.modalities, direction=direction)
                for direction in protocols.REGDB_DIRECTIONS]
  else:
    variants = [protocols.llcm_trials(split.person_ids, split.cameras, split.modalities,
                                      split.relative_paths, direction=direction, num_trials=2)
                for direction in protocols.LLCM_DIRECTIONS]
  assert [s["protocol"] for s in summaries] == [v.name for v in variants]
  reference = _reference_features(split)
  for summary, variant in zip(summaries, variants):
    _assert_summary_matches(summary, _expected_trials(split, variant, "bn",
                                                      _cosine(reference["bn"])))
    assert summary["settings"]["data_trial"] == 4
  if dataset == "regdb":
    assert summaries[0]["num_trials"] == 1 and summaries[0]["num_queries"] == 16


@pytest.mark.parametrize("method", ["k_reciprocal", "mser"])
def test_evaluate_with_reranking_equals_the_rerank_functions(sysu_split, method):
  config = _config(rerank=method, features=("pool",), num_trials=2)
  (summary,) = evaluate(features_fn, sysu_split, config, dataset="sysu", batch_size=8)
  assert summary["protocol"] == f"sysu_all+{method}"
  variant = protocols.sysu_trials(sysu_split.person_ids, sysu_split.cameras,
                                  sysu_split.relative_paths, num_trials=2)
  # The visible gallery contributes four views (original, R, G, B), the infrared
  # queries one.
  views = [_reference_features(sysu_split, view=channel)["pool"] for channel in (None, 0, 1, 2)]

  def reranked(queries, gallery):
    if method == "k_reciprocal":
      return np.asarray(rerank.k_reciprocal_rerank(views[0][queries], views[0][gallery], k1=6,
                                                   k2=3))
    return np.asarray(rerank.mser_rerank(
        [views[0][queries]], [view[gallery] for view in views], k1=5, k2=3, lambda_value=0.3,
        probe_neighbours_only=True))

  _assert_summary_matches(summary, _expected_trials(sysu_split, variant, "pool", reranked))
  assert summary["settings"]["rerank_parameters"]["k1"] == (6 if method == "k_reciprocal" else 5)


def test_test_time_options_are_named_and_applied(sysu_split):
  config = _config(flip=True, distance="euclidean", features=("pool",), num_trials=2)
  (summary,) = evaluate(features_fn, sysu_split, config, dataset="sysu", batch_size=8)
  assert summary["protocol"] == "sysu_all+flip+euclidean"
  assert summary["settings"]["flip"] and summary["settings"]["distance"] == "euclidean"
  plain, mirror = _reference_features(sysu_split), _reference_features(sysu_split, flip=True)
  total = plain["pool"] + mirror["pool"]
  averaged = total / np.linalg.norm(total, axis=1, keepdims=True)
  variant = protocols.sysu_trials(sysu_split.person_ids, sysu_split.cameras,
                                  sysu_split.relative_paths, num_trials=2)

  def euclidean(queries, gallery):
    return np.linalg.norm(averaged[queries][:, None] - averaged[gallery][None], axis=-1)

  _assert_summary_matches(summary, _expected_trials(sysu_split, variant, "pool", euclidean))


def test_pictures_show_the_protocol_ranking(sysu_split, tmp_path, monkeypatch):
  grids = []
  original_grid_writer = plots.write_ranking_grid

  def capturing_grid_writer(path, **kwargs):
    grids.append((os.path.basename(path), kwargs))
    original_grid_writer(path, **kwargs)

  monkeypatch.setattr(plots, "write_ranking_grid", capturing_grid_writer)
  config = _config(ranking_queries=5, ranking_top_k=4)
  output_dir = tmp_path / "pictures"
  summaries = evaluate(features_fn, sysu_split, config, dataset="sysu", batch_size=8,
                       output_dir=str(output_dir))
  assert sorted(os.listdir(output_dir)) == [
      "cmc.png", "index.html", "ranking_sysu_all_bn.png", "ranking_sysu_all_pool.png",
      "thumbnails"]
  for name in os.listdir(output_dir):
    if not name.endswith(".png"):
      continue  # the results page (tests/evaluation/test_results_page.py)
    picture = matplotlib.image.imread(output_dir / name)
    assert picture.ndim == 3 and min(picture.shape[:2]) > 200

  # The bn grid: 5 rows of the query and its top 4, exactly the first trial's
  # ranking after the protocol's removal (camera-3 queries never see camera 2).
  name, grid = grids[1]
  assert name == "ranking_sysu_all_bn.png"
  variant = protocols.sysu_trials(sysu_split.person_ids, sysu_split.cameras,
                                  sysu_split.relative_paths, num_trials=1)
  features = _reference_features(sysu_split)["bn"]
  queries, gallery = variant.queries(0), variant.gallery(0)
  images = {row: sysu_split.images[row].tobytes() for row in range(len(sysu_split.images))}
  row_of_image = {image: row for row, image in images.items()}
  assert grid["ranked_images"].shape == (5, 4, *IMAGE_SHAPE)
  seen_camera3_query = False
  for query_image, ranked_images, is_match in zip(grid["query_images"], grid["ranked_images"],
                                                  grid["ranked_is_match"]):
    query = row_of_image[query_image.tobytes()]
    distances_row = -features[gallery] @ features[query]
    kept = [g for g in gallery[np.argsort(distances_row, kind="stable")]
            if not (sysu_split.cameras[query] == 3 and sysu_split.cameras[g] == 2)]
    ranked = [row_of_image[image.tobytes()] for image in ranked_images]
    assert ranked == kept[:4]
    np.testing.assert_array_equal(
        is_match, sysu_split.person_ids[ranked] == sysu_split.person_ids[query])
    seen_camera3_query |= sysu_split.cameras[query] == 3
  assert seen_camera3_query
  assert grid["ranked_is_match"].any() and not grid["ranked_is_match"].all()
  assert len(summaries) == 2


def test_framed_draws_a_solid_border():
  image = np.full((4, 3, 3), 7, np.uint8)
  result = plots.framed(image, plots.MATCH_COLOUR, 2)
  assert result.shape == (8, 7, 3)
  np.testing.assert_array_equal(result[2:6, 2:5], image)
  border = np.ones((8, 7), bool)
  border[2:6, 2:5] = False
  assert (result[border] == plots.MATCH_COLOUR).all()


def test_bad_settings_give_clear_errors(sysu_split):
  config = _config()
  del config["mser"]
  with pytest.raises(KeyError, match="config.eval.mser"):
    evaluate(features_fn, sysu_split, config, dataset="sysu", batch_size=8)
  with pytest.raises(ValueError, match="dataset"):
    evaluate(features_fn, sysu_split, _config(), dataset="market", batch_size=8)
  with pytest.raises(ValueError, match="config.eval.distance"):
    evaluate(features_fn, sysu_split, _config(distance="cityblock"), dataset="sysu",
             batch_size=8)
  with pytest.raises(ValueError, match="rand_perm_cam"):
    evaluate(features_fn, sysu_split, _config(gallery_scheme="official"), dataset="sysu",
             batch_size=8)
  with pytest.raises(KeyError, match="fc"):
    evaluate(features_fn, sysu_split, _config(features=("fc",)), dataset="sysu", batch_size=8)
