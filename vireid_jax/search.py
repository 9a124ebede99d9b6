"""Search a gallery of images with a trained model: the command line and the library under it.

  python -m vireid_jax.search --checkpoint runs/demo \
      --gallery photos/day --gallery_modality visible \
      --query photos/night --query_modality infrared --top_k 10 --output runs/demo/search

`--checkpoint` is a workdir (its newest checkpoint and the config it recorded), one step's
folder, or a method's PyTorch file with `--config` (`vireid_jax.inference`). Images of any size
are read as the TFRecord builders store them (`files.load_resized_image`: RGB, resized to the
config's size with its filter) and go through the model exactly as in evaluation
(`inference.evaluation_feature_fn`: normalisation, mirror averaging with `config.eval.flip`, the
main feature), in fixed-size batches split over every device. A file that cannot be decoded is
listed and skipped.

The gallery's features are kept in an index file (`--index`, default `<output>/gallery_index.npz`),
re-used while the gallery's file list (paths, sizes, modification times) and the checkpoint are
unchanged and rebuilt otherwise. Search is exact by default: distances (`config.eval.distance`,
as evaluation ranks) block by block on the device with a running top k, so the gallery never
has to fit on the device at once; `--approximate` uses a faiss inverted-file index instead
(`pip install faiss-cpu`; `benchmarks/search.py` reports its recall@10 against exact search).

Output: `<output>/rankings.json` (per query: the query's path, the top-k gallery paths and their
distances; plus the unreadable files) and, per query, a ranked-retrieval picture in
`<output>/pictures/` (`--pictures N` draws the first N queries only). TensorFlow is not needed.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from vireid_jax.data import files
from vireid_jax.evaluation import distances
from vireid_jax.evaluation import plots
from vireid_jax.evaluation import report

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
INDEX_FILE_NAME = "gallery_index.npz"
RANKINGS_FILE_NAME = "rankings.json"


def list_images(path: str) -> list[str]:
  """The image files `path` names: the file itself, or every image under the folder
  (recursively, sorted by path), as absolute paths.

  Raises:
    FileNotFoundError: `path` does not exist, or a folder holds no image file.
  """
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path} does not exist: give an image file or a folder of images.")
  found = sorted(
      os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names
      if name.lower().endswith(IMAGE_SUFFIXES))
  if not found:
    raise FileNotFoundError(f"{path} holds no image file ({', '.join(IMAGE_SUFFIXES)}).")
  return found


@dataclasses.dataclass(frozen=True)
class Features:
  """Features of the readable files of a list, and the files that could not be read.

  Attributes:
    paths: [N] absolute paths of the images with a feature, in list order.
    features: [N, D] float32.
    unreadable: (path, reason) of every file skipped.
  """

  paths: list[str]
  features: np.ndarray
  unreadable: list[tuple[str, str]]


class FeatureExtractor:
  """Evaluation features of image files for one modality, batch by batch on every device.

  Args:
    model: a `vireid_jax.inference.InferenceModel`.
    modality: "visible" or "infrared": the stem the images go through.
    batch_size: images per forward pass, rounded up to a multiple of the device count.
    feature: the feature to rank by; default `config.eval.main_feature`.
  """

  def __init__(self, model: Any, modality: str, *, batch_size: int = 128,
               feature: str | None = None):
    from vireid_jax import inference
    from vireid_jax.training import parallel
    self.model = model
    self.modality = modality
    self.mesh = parallel.make_mesh()
    self.batch_size = -(-max(1, batch_size) // self.mesh.size) * self.mesh.size
    self.height, self.width = model.image_size
    self.resize_filter = model.config.data.get("resize_filter", files.DEFAULT_RESIZE_FILTER)
    self.feature = feature or model.config.eval.main_feature
    self._fn = jax.jit(inference.evaluation_feature_fn(model, modality, self.feature),
                       in_shardings=parallel.batch_sharded(self.mesh),
                       out_shardings=parallel.replicated(self.mesh))

  def read(self, path: str) -> np.ndarray:
    """[H, W, 3] uint8 pixels of one file, as the builders store images."""
    return files.load_resized_image(path, self.height, self.width, self.resize_filter)

  def __call__(self, paths: Sequence[str], *, description: str = "features") -> Features:
    """Features of `paths`; undecodable files are skipped and listed, never fatal."""
    kept, unreadable, parts = [], [], []
    batches = range(0, len(paths), self.batch_size)
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
      # PIL decodes and resizes outside the GIL: the threads overlap the next batch's reading
      # with this batch's forward pass.
      def read_batch(start):
        return list(pool.map(self._try_read, paths[start:start + self.batch_size]))

      pending = pool.submit(read_batch, 0) if len(paths) else None
      for start in tqdm.tqdm(batches, desc=description, unit="batch", leave=False,
                             disable=len(batches) < 2):
        results = pending.result()
        next_start = start + self.batch_size
        pending = pool.submit(read_batch, next_start) if next_start < len(paths) else None
        images = []
        for path, (pixels, reason) in zip(paths[start:start + self.batch_size], results):
          if pixels is None:
            unreadable.append((path, reason))
          else:
            kept.append(path)
            images.append(pixels)
        if images:
          parts.append(self._features(np.stack(images)))
    dimension = parts[0].shape[1] if parts else 0
    features = np.concatenate(parts) if parts else np.zeros((0, dimension), np.float32)
    return Features(paths=kept, features=features, unreadable=unreadable)

  def _try_read(self, path):
    try:
      return self.read(path), ""
    except (ValueError, OSError) as error:
      return None, str(error)

  def _features(self, images: np.ndarray) -> np.ndarray:
    count = len(images)
    # Padded to the batch size: one compiled program serves every batch.
    padded = np.zeros((self.batch_size, *images.shape[1:]), np.uint8)
    padded[:count] = images
    return np.asarray(self._fn(padded))[:count]

  def fingerprint(self) -> dict:
    """What the features depend on, besides the images: checkpoint, modality, feature, input."""
    source = self.model.source
    stat = os.stat(source)
    return {"checkpoint": source, "step": self.model.step, "checkpoint_size": stat.st_size,
            "checkpoint_mtime_ns": stat.st_mtime_ns, "modality": self.modality,
            "feature": self.feature, "image_size": [self.height, self.width],
            "resize_filter": self.resize_filter,
            "flip": bool(self.model.config.eval.get("flip", False))}


def files_fingerprint(paths: Sequence[str]) -> list:
  """(path, size, modification time) of each file: what makes a stored index stale."""
  result = []
  for path in paths:
    stat = os.stat(path)
    result.append([path, stat.st_size, stat.st_mtime_ns])
  return result


def _digest(value: Any) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def gallery_index(index_path: str, gallery_paths: Sequence[str], extractor: FeatureExtractor,
                  *, log: Callable[[str], None] = print) -> tuple[Features, bool]:
  """The gallery's features: read from `index_path` when it was built from the same files and
  checkpoint, else extracted and written there (atomically).

  Returns:
    (the features, whether the stored index was re-used).
  """
  key = _digest({"files": files_fingerprint(gallery_paths), **extractor.fingerprint()})
  if os.path.isfile(index_path):
    try:
      with np.load(index_path, allow_pickle=False) as stored:
        if str(stored["key"]) == key:
          unreadable = json.loads(str(stored["unreadable"]))
          return Features(paths=[str(path) for path in stored["paths"]],
                          features=np.asarray(stored["features"]),
                          unreadable=[tuple(item) for item in unreadable]), True
      log(f"Index {index_path} was built from other files or another checkpoint: rebuilding it.")
    except (OSError, ValueError, KeyError) as error:
      log(f"Index {index_path} is unreadable ({error}): rebuilding it.")
  gallery = extractor(gallery_paths, description="gallery")
  buffer = io.BytesIO()
  np.savez(buffer, key=np.asarray(key), paths=np.asarray(gallery.paths, dtype=str),
           features=gallery.features, unreadable=np.asarray(json.dumps(gallery.unreadable)))
  os.makedirs(os.path.dirname(os.path.abspath(index_path)), exist_ok=True)
  report.write_file_atomically(index_path, buffer.getvalue())
  return gallery, False


@functools.partial(jax.jit, static_argnames=("top_k", "distance"))
def _merge_block(best_distances, best_indices, query_features, gallery_block, block_start,
                 block_count, *, top_k, distance):
  """The running top k merged with one gallery block's (padding rows never win)."""
  block = distances.pairwise_distance(query_features, gallery_block, distance)
  columns = jnp.arange(gallery_block.shape[0])
  block = jnp.where(columns[None, :] < block_count, block, jnp.inf)
  # Earlier blocks first: among equal distances the lower gallery index wins, as in a stable
  # argsort of the whole row.
  candidates = jnp.concatenate([best_distances, block], axis=1)
  candidate_indices = jnp.concatenate(
      [best_indices, jnp.broadcast_to(block_start + columns, block.shape)], axis=1)
  negated, positions = jax.lax.top_k(-candidates, top_k)
  return -negated, jnp.take_along_axis(candidate_indices, positions, axis=1)


def exact_top_k(query_features: np.ndarray, gallery_features: np.ndarray, top_k: int, *,
                distance: str = "cosine", gallery_block: int = 65536,
                query_block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
  """The `top_k` nearest gallery rows of every query, exactly, never holding more than one
  [query_block, gallery_block] block of distances.

  Args:
    query_features: [Q, D]. gallery_features: [G, D] (host memory is enough).
    top_k: neighbours per query (at most G).
    distance: a `distances.DISTANCES` name (`config.eval.distance`).

  Returns:
    (indices [Q, top_k] int, distances [Q, top_k] float32), nearest first; ties go to the
    lower gallery index.
  """
  num_gallery = len(gallery_features)
  top_k = min(top_k, num_gallery)
  gallery_block = min(gallery_block, num_gallery)
  all_indices, all_distances = [], []
  for query_start in range(0, len(query_features), query_block):
    queries = jnp.asarray(query_features[query_start:query_start + query_block])
    best = jnp.full((len(queries), top_k), jnp.inf, jnp.float32)
    best_indices = jnp.full((len(queries), top_k), -1, jnp.int32)
    for start in range(0, num_gallery, gallery_block):
      block = np.asarray(gallery_features[start:start + gallery_block])
      count = len(block)
      if count < gallery_block:
        block = np.concatenate([block, np.zeros((gallery_block - count, block.shape[1]),
                                                block.dtype)])
      best, best_indices = _merge_block(best, best_indices, queries, jnp.asarray(block), start,
                                        count, top_k=top_k, distance=distance)
    all_indices.append(np.asarray(best_indices))
    all_distances.append(np.asarray(best))
  return np.concatenate(all_indices), np.concatenate(all_distances)


def approximate_top_k(query_features: np.ndarray, gallery_features: np.ndarray, top_k: int, *,
                      distance: str = "cosine", lists: int | None = None,
                      probes: int = 64) -> tuple[np.ndarray, np.ndarray]:
  """`exact_top_k` through a faiss inverted-file index (`pip install faiss-cpu`): the gallery
  is split into `lists` k-means cells and each query searches its `probes` nearest cells, at a
  recall `benchmarks/search.py` measures. (faiss's HNSW graph recalls about as well but took
  14 minutes to build for 200,000 512-d features on two cores, against seconds here.)

  "cosine" searches inner products of L2-normalised features (distances returned as their
  negatives, as evaluation's); "euclidean" searches L2 distances (returned as distances).

  Args:
    lists: k-means cells; default 4 sqrt(G), at most G / 39 (faiss's least training points
      per cell).
    probes: cells searched per query.
  """
  try:
    import faiss  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise ImportError("--approximate needs faiss: pip install faiss-cpu.") from error
  gallery = np.ascontiguousarray(gallery_features, np.float32)
  queries = np.ascontiguousarray(query_features, np.float32)
  if distance == "cosine":
    gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    metric = faiss.METRIC_INNER_PRODUCT
  elif distance == "euclidean":
    metric = faiss.METRIC_L2
  else:
    raise ValueError(f"Unknown distance {distance!r}; expected one of {distances.DISTANCES}.")
  count, dimension = gallery.shape
  if lists is None:
    lists = max(1, min(int(4 * np.sqrt(count)), count // 39))
  quantizer = (faiss.IndexFlatIP if metric == faiss.METRIC_INNER_PRODUCT else
               faiss.IndexFlatL2)(dimension)
  index = faiss.IndexIVFFlat(quantizer, dimension, lists, metric)
  # k-means on a fixed sample (faiss's own cap of 256 points per cell; 64 cost a tenth of the
  # recall in benchmarks/search.py): the same gallery always gives the same cells.
  sample = np.random.default_rng(0).choice(count, min(count, 256 * lists), replace=False)
  index.train(gallery[np.sort(sample)])
  index.add(gallery)
  index.nprobe = min(probes, lists)
  found, indices = index.search(queries, min(top_k, count))
  values = -found if distance == "cosine" else np.sqrt(np.maximum(found, 0.0))
  return indices.astype(np.int64), values.astype(np.float32)


def write_pictures(folder: str, extractor: FeatureExtractor, query: Features,
                   gallery: Features, indices: np.ndarray, values: np.ndarray,
                   count: int) -> list[str]:
  """One ranked-retrieval picture per query (the first `count`; negative: all): the query
  and its top k, captioned with file names and distances. Returns the files written."""
  os.makedirs(folder, exist_ok=True)
  written = []
  total = len(query.paths) if count < 0 else min(count, len(query.paths))
  for row in tqdm.tqdm(range(total), desc="pictures", leave=False, disable=total < 2):
    ranked = [gallery.paths[index] for index in indices[row]]
    path = os.path.join(folder, f"{row:05d}_{os.path.splitext(os.path.basename(query.paths[row]))[0]}.png")
    plots.write_ranking_grid(
        path, query_images=extractor.read(query.paths[row])[None],
        query_captions=[os.path.basename(query.paths[row])],
        ranked_images=np.stack([extractor.read(item) for item in ranked])[None],
        ranked_captions=[[f"{os.path.basename(item)}\n{value:.3f}"
                          for item, value in zip(ranked, values[row])]],
        ranked_is_match=None, title=f"{query.paths[row]}: top {len(ranked)}")
    written.append(path)
  return written


def search(model: Any, *, gallery: str, gallery_modality: str, query: str, query_modality: str,
           output: str, top_k: int = 10, index: str | None = None, batch_size: int = 128,
           feature: str | None = None, approximate: bool = False, pictures: int = -1,
           log: Callable[[str], None] = print) -> dict:
  """Ranks the gallery for every query image and writes rankings.json and the pictures.

  Args:
    model: a `vireid_jax.inference.InferenceModel`.
    gallery, query: an image file or a folder of images (searched recursively).
    gallery_modality, query_modality: "visible" or "infrared".
    output: the folder for rankings.json, pictures/ and (by default) the index.
    top_k: gallery images per query.
    index: the gallery index file; default `<output>/gallery_index.npz`.
    batch_size: images per forward pass.
    feature: the feature ranked by; default `config.eval.main_feature`.
    approximate: a faiss inverted-file index instead of exact search.
    pictures: queries drawn (negative: every query; 0: none).
    log: where the one-line reports go.

  Returns:
    What rankings.json holds, plus "index_reused".
  """
  if top_k < 1:
    raise ValueError(f"--top_k must be >= 1, got {top_k}.")
  gallery_paths, query_paths = list_images(gallery), list_images(query)
  index = index or os.path.join(output, INDEX_FILE_NAME)
  gallery_extractor = FeatureExtractor(model, gallery_modality, batch_size=batch_size,
                                       feature=feature)
  gallery_features, reused = gallery_index(index, gallery_paths, gallery_extractor, log=log)
  log(f"Gallery: {len(gallery_features.paths)} images from {gallery} "
      f"({'index re-used' if reused else 'index written'}: {index})")
  query_extractor = (gallery_extractor if query_modality == gallery_modality else
                     FeatureExtractor(model, query_modality, batch_size=batch_size,
                                      feature=feature))
  query_features = query_extractor(query_paths, description="queries")
  unreadable = gallery_features.unreadable + query_features.unreadable
  for path, reason in unreadable:
    log(f"Skipped unreadable image {path}: {reason}")
  if not gallery_features.paths or not query_features.paths:
    raise ValueError(f"No readable {'gallery' if not gallery_features.paths else 'query'} "
                     "image: nothing to search.")
  distance = model.config.eval.distance
  rank = approximate_top_k if approximate else exact_top_k
  indices, values = rank(query_features.features, gallery_features.features, top_k,
                         distance=distance)
  rankings = {
      "checkpoint": model.source, "step": model.step, "feature": gallery_extractor.feature,
      "distance": distance, "search": "approximate (faiss IVF)" if approximate else "exact",
      "gallery": os.path.abspath(gallery), "gallery_modality": gallery_modality,
      "query_modality": query_modality,
      "unreadable": [{"path": path, "reason": reason} for path, reason in unreadable],
      "queries": [{"query": path,
                   "gallery": [gallery_features.paths[index] for index in indices[row]],
                   "distances": [float(value) for value in values[row]]}
                  for row, path in enumerate(query_features.paths)],
  }
  os.makedirs(output, exist_ok=True)
  report.write_file_atomically(os.path.join(output, RANKINGS_FILE_NAME),
                               json.dumps(rankings, indent=1).encode())
  drawn = write_pictures(os.path.join(output, "pictures"), query_extractor, query_features,
                         gallery_features, indices, values, pictures) if pictures else []
  log(f"Ranked {len(query_features.paths)} queries: {os.path.join(output, RANKINGS_FILE_NAME)}"
      + (f"; {len(drawn)} pictures in {os.path.join(output, 'pictures')}" if drawn else ""))
  return dict(rankings, index_reused=reused)


def main(argv: Sequence[str] | None = None) -> int:
  """The command line (absl flags; `--help` lists them)."""
  from absl import app
  from absl import flags
  from ml_collections import config_flags

  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file(
      "config", None, "The experiment config (needed for a PyTorch file; a workdir's "
      "config.json is read otherwise).", flag_values=flag_values, lock_config=False)
  flags.DEFINE_string("checkpoint", None, "A workdir, one step's folder, or a PyTorch file.",
                      flag_values=flag_values, required=True)
  flags.DEFINE_string("gallery", None, "Gallery image folder (or file).",
                      flag_values=flag_values, required=True)
  flags.DEFINE_enum("gallery_modality", None, ["visible", "infrared"], "Gallery modality.",
                    flag_values=flag_values, required=True)
  flags.DEFINE_string("query", None, "Query image or folder.", flag_values=flag_values,
                      required=True)
  flags.DEFINE_enum("query_modality", None, ["visible", "infrared"], "Query modality.",
                    flag_values=flag_values, required=True)
  flags.DEFINE_string("output", "search", "Folder for rankings.json, pictures/ and the index.",
                      flag_values=flag_values)
  flags.DEFINE_string("index", None, "Gallery index file (default <output>/gallery_index.npz).",
                      flag_values=flag_values)
  flags.DEFINE_integer("top_k", 10, "Gallery images per query.", flag_values=flag_values)
  flags.DEFINE_integer("batch_size", 128, "Images per forward pass.", flag_values=flag_values)
  flags.DEFINE_string("feature", None, "Feature to rank by (default config.eval.main_feature).",
                      flag_values=flag_values)
  flags.DEFINE_bool("approximate", False, "A faiss inverted-file index instead of exact search.",
                    flag_values=flag_values)
  flags.DEFINE_integer("pictures", -1, "Queries drawn (-1: all, 0: none).",
                       flag_values=flag_values)
  try:
    flag_values(list(sys.argv if argv is None else argv))
  except flags.Error as error:
    print(f"error: {error}\n\nUsage: python -m vireid_jax.search --checkpoint=... --gallery=DIR "
          "--gallery_modality=visible --query=DIR_OR_IMAGE --query_modality=infrared",
          file=sys.stderr)
    return 2
  from vireid_jax import inference
  try:
    # Folders first: a mistyped path stops the run before the model is loaded.
    list_images(flag_values.gallery)
    list_images(flag_values.query)
    model = inference.load_model_for_inference(flag_values.checkpoint, flag_values.config)
    search(model, gallery=flag_values.gallery, gallery_modality=flag_values.gallery_modality,
           query=flag_values.query, query_modality=flag_values.query_modality,
           output=flag_values.output, top_k=flag_values.top_k, index=flag_values.index,
           batch_size=flag_values.batch_size, feature=flag_values.feature,
           approximate=flag_values.approximate, pictures=flag_values.pictures)
  except (FileNotFoundError, ValueError, ImportError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
