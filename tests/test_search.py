"""`python -m vireid_jax.search`: a gallery folder searched with a workdir's checkpoint.

The workdir holds a checkpoint of the tiny notebook experiment (configs/notebook.py:tiny) and
the config.json it recorded, written here without training (a step-0 state ranks as well as
a trained one for what is checked: that search ranks as evaluation does). The gallery and
query folders are the synthetic test split's raw files.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import notebook
from vireid_jax import inference
from vireid_jax import methods
from vireid_jax import search
from vireid_jax.data import datasets
from vireid_jax.evaluation import distances
from vireid_jax.evaluation import evaluator
from vireid_jax.training import orbax_checkpoints
from vireid_jax.training import context
from vireid_jax.training import workdir_config
from vireid_jax.training.context import DataInfo

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """(workdir with a checkpoint and config.json, the decoded test split, the raw root)."""
  folder = tmp_path_factory.mktemp("search")
  config = notebook.get_config("tiny")
  config.data.root = str(folder / "raw")
  config.data.tfds_dir = str(folder / "tfds")
  splits = datasets.load(config.data)
  method = methods.resolve(config)
  state = method.create_state(DataInfo.from_splits(splits, steps_per_epoch=3))
  workdir = str(folder / "workdir")
  workdir_config.check_or_record(config, workdir)
  checkpointer = orbax_checkpoints.Checkpointer.for_workdir(workdir)
  checkpointer.save(state, force=True)
  checkpointer.wait()
  checkpointer.close()
  return workdir, splits.test, config.data.root


def split_folders(test, raw_root, destination):
  """The test split's visible images (gallery) and infrared images (queries) copied into two
  folders, keeping their relative paths; returns (gallery dir, query dir, {path: row})."""
  rows = {}
  for modality, name in ((0, "gallery"), (1, "query")):
    for row in np.flatnonzero(test.modalities == modality):
      relative = str(test.relative_paths[row], "utf-8") if isinstance(
          test.relative_paths[row], bytes) else str(test.relative_paths[row])
      target = destination / name / relative
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.copyfile(os.path.join(raw_root, relative), target)
      rows[str(target)] = row
  return destination / "gallery", destination / "query", rows


def test_search_ranks_like_evaluation_skips_corrupt_files_and_reuses_its_index(
    trained, tmp_path, capsys):
  workdir, test, raw_root = trained
  gallery_dir, query_dir, rows = split_folders(test, raw_root, tmp_path)
  corrupt = gallery_dir / "cam1" / "corrupt.jpg"
  corrupt.parent.mkdir(parents=True, exist_ok=True)
  corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
  output = tmp_path / "out"
  arguments = ["search", f"--checkpoint={workdir}", f"--gallery={gallery_dir}",
               "--gallery_modality=visible", f"--query={query_dir}",
               "--query_modality=infrared", "--top_k=3", f"--output={output}", "--pictures=2",
               "--batch_size=16"]
  assert search.main(arguments) == 0
  console = capsys.readouterr().out
  assert f"Skipped unreadable image {corrupt}" in console and "index written" in console
  rankings = json.loads((output / "rankings.json").read_text())
  assert [item["path"] for item in rankings["unreadable"]] == [str(corrupt)]

  # The evaluation's distance matrix over the same images (the decoded TFRecords).
  model = inference.load_model_for_inference(workdir)
  features = evaluator.split_features(model.features, test, batch_size=16)["original"]["bn"]
  query_rows = [rows[item["query"]] for item in rankings["queries"]]
  gallery_rows = np.flatnonzero(test.modalities == 0)
  matrix = np.asarray(distances.pairwise_distance(
      features[np.asarray(query_rows)], features[gallery_rows], model.config.eval.distance))
  expected_first = gallery_rows[np.argsort(matrix, axis=1, kind="stable")[:, 0]]
  assert len(rankings["queries"]) == int(np.sum(test.modalities == 1))
  assert [rows[item["gallery"][0]] for item in rankings["queries"]] == list(expected_first)
  for item, row in zip(rankings["queries"], matrix):
    assert item["distances"] == sorted(item["distances"])
    np.testing.assert_allclose(item["distances"][0], row.min(), rtol=1e-5, atol=1e-6)
  assert len(os.listdir(output / "pictures")) == 2

  # Same files and checkpoint: the index is re-used, and the rankings are the same.
  assert search.main(arguments) == 0
  assert "index re-used" in capsys.readouterr().out
  assert json.loads((output / "rankings.json").read_text())["queries"] == rankings["queries"]
  # One gallery file fewer: rebuilt.
  os.remove(rankings["queries"][0]["gallery"][0])
  assert search.main(arguments) == 0
  assert "index written" in capsys.readouterr().out
  again = json.loads((output / "rankings.json").read_text())
  assert again["queries"][0]["gallery"][0] != rankings["queries"][0]["gallery"][0]


def test_search_reports_a_missing_folder_by_name(trained, tmp_path, capsys):
  workdir, _, _ = trained
  missing = tmp_path / "no_such_folder"
  assert search.main(["search", f"--checkpoint={workdir}", f"--gallery={missing}",
                      "--gallery_modality=visible", f"--query={missing}",
                      "--query_modality=infrared", f"--output={tmp_path}"]) == 1
  assert f"{missing} does not exist" in capsys.readouterr().err


def test_exact_top_k_in_blocks_equals_a_stable_sort_of_the_whole_matrix():
  rng = np.random.default_rng(0)
  gallery = rng.normal(size=(30, 8)).astype(np.float32)
  gallery[17] = gallery[3]                      # a tie: the lower index ranks first
  gallery[25] = gallery[3]
  queries = np.concatenate([rng.normal(size=(4, 8)), gallery[3:4]]).astype(np.float32)
  for distance in ("cosine", "euclidean"):
    matrix = np.asarray(distances.pairwise_distance(queries, gallery, distance))
    expected = np.argsort(matrix, axis=1, kind="stable")[:, :6]
    for gallery_block, query_block in ((7, 2), (30, 5), (64, 64)):
      indices, values = search.exact_top_k(queries, gallery, 6, distance=distance,
                                           gallery_block=gallery_block, query_block=query_block)
      np.testing.assert_array_equal(indices, expected)
      np.testing.assert_allclose(values, np.take_along_axis(matrix, expected, axis=1),
                                 rtol=1e-5, atol=1e-6)
  # top_k beyond the gallery: the whole gallery, ranked.
  indices, _ = search.exact_top_k(queries, gallery[:4], 10)
  assert indices.shape == (5, 4)


def test_approximate_search_finds_most_exact_neighbours():
  pytest.importorskip("faiss", reason="faiss-cpu is in the test extra; install it for this test")
  rng = np.random.default_rng(1)
  gallery = rng.normal(size=(2000, 32)).astype(np.float32)
  queries = (gallery[:50] + 0.1 * rng.normal(size=(50, 32))).astype(np.float32)
  exact, exact_values = search.exact_top_k(queries, gallery, 10)
  approximate, approximate_values = search.approximate_top_k(queries, gallery, 10)
  recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approximate, exact)])
  assert recall >= 0.9
  # Its distances are evaluation's (negative cosine) where it agrees.
  np.testing.assert_allclose(approximate_values[:, 0], exact_values[:, 0], rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(approximate[:, 0], np.arange(50))


# The search command where `import tensorflow` (and TFDS) fails, as in a JAX-only install.
SEARCH_WITHOUT_TENSORFLOW = """
import runpy, sys
for name in ("tensorflow", "tensorflow_datasets"):
  sys.modules[name] = None   # any import of them raises ImportError
sys.argv = ["vireid_jax.search"] + sys.argv[1:]
runpy.run_module("vireid_jax.search", run_name="__main__", alter_sys=True)
"""


def test_search_runs_without_tensorflow(trained, tmp_path):
  workdir, test, raw_root = trained
  gallery_dir, query_dir, _ = split_folders(test, raw_root, tmp_path)
  completed = subprocess.run(
      [sys.executable, "-c", SEARCH_WITHOUT_TENSORFLOW, f"--checkpoint={workdir}",
       f"--gallery={gallery_dir}", "--gallery_modality=visible", f"--query={query_dir}",
       "--query_modality=infrared", "--top_k=2", f"--output={tmp_path / 'out'}",
       "--pictures=0"],
      cwd=REPO_ROOT, capture_output=True, text=True,
      env=dict(os.environ, CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu",
               JAX_DISABLE_MOST_OPTIMIZATIONS="true"))
  assert completed.returncode == 0, completed.stderr[-3000:]
  rankings = json.loads((tmp_path / "out" / "rankings.json").read_text())
  assert len(rankings["queries"]) == int(np.sum(test.modalities == 1))
  assert all(len(item["gallery"]) == 2 for item in rankings["queries"])


def test_a_recorded_data_info_rebuilds_the_model_without_probing_its_shapes(
    trained, tmp_path, monkeypatch):
  workdir, test, _ = trained
  probed = inference.load_model_for_inference(workdir)   # no data_info.json: shapes probed
  recorded = str(shutil.copytree(workdir, tmp_path / "workdir"))

  def no_probing(*arguments):
    raise AssertionError("the shapes were probed although data_info.json records the sizes")

  monkeypatch.setattr(inference, "_data_info_of_checkpoint", no_probing)
  # The tiny data's training split: 8 training and 2 validation identities, as training
  # records them (DataInfo.from_splits).
  context.write_data_info(recorded, DataInfo(num_classes=10, num_visible=1, num_infrared=1,
                                             steps_per_epoch=3))
  model = inference.load_model_for_inference(recorded)
  images = test.images[:4]
  for modality in ("visible", "infrared"):
    np.testing.assert_array_equal(inference.evaluation_feature_fn(model, modality)(images),
                                  inference.evaluation_feature_fn(probed, modality)(images))
  # A recorded size that does not fit the arrays is refused by the restore, naming them.
  context.write_data_info(recorded, DataInfo(num_classes=11, num_visible=1, num_infrared=1,
                                             steps_per_epoch=3))
  with pytest.raises(orbax_checkpoints.CheckpointMismatchError, match="classifier"):
    inference.load_model_for_inference(recorded)
