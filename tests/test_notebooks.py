"""The Colab notebooks (notebooks/): committed without outputs, and executed top to bottom.

Each notebook runs in a real Jupyter kernel (nbclient, the executor behind nbconvert and
papermill) with the "tiny" setting its first cell reads from `VIREID_NOTEBOOK_SETTING`
(configs/notebook.py), on CPU. The three share the generated data and the quickstart's workdir,
which restore_and_evaluate restores, and a persistent compilation cache.
"""

import json
import os
import re
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS_DIR = os.path.join(REPO_ROOT, "notebooks")
NOTEBOOKS = ("quickstart.ipynb", "restore_and_evaluate.ipynb", "import_pytorch_weights.ipynb")


def read(name):
  with open(os.path.join(NOTEBOOKS_DIR, name), encoding="utf-8") as file:
    return nbformat.read(file, as_version=4)


def test_the_three_notebooks_are_committed_without_outputs():
  assert sorted(name for name in os.listdir(NOTEBOOKS_DIR) if name.endswith(".ipynb")) == sorted(
      NOTEBOOKS)
  for name in NOTEBOOKS:
    notebook = read(name)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
      if cell.cell_type == "code":
        assert cell.outputs == [], f"{name}: cell {index} holds outputs; clear them"
        assert cell.execution_count is None, f"{name}: cell {index} has an execution count"


def test_each_notebook_opens_with_its_colab_badge_and_the_setup_cell():
  with open(os.path.join(REPO_ROOT, "pyproject.toml"), encoding="utf-8") as file:
    repository = re.search(r'Repository = "https://github.com/([^"]+)"', file.read()).group(1)
  for name in NOTEBOOKS:
    cells = read(name).cells
    badge = (f"(https://colab.research.google.com/github/{repository}/blob/main/notebooks/"
             f"{name})")
    assert cells[0].cell_type == "markdown" and badge in cells[0].source, name
    setup = cells[1].source
    assert cells[1].cell_type == "code" and f'REPOSITORY = "https://github.com/{repository}"' in (
        setup), name
    # One setup cell for the three: the runtime's extra, the tiny setting, the devices.
    assert setup == read(NOTEBOOKS[0]).cells[1].source, name
    for expected in ('"gpu": "[data,cuda]"', '"tpu": "[data,tpu]"', "VIREID_NOTEBOOK_SETTING",
                     "jax.devices()"):
      assert expected in setup, (name, expected)


@pytest.fixture(scope="module")
def notebook_environment(tmp_path_factory):
  folder = tmp_path_factory.mktemp("notebooks")
  return dict(os.environ, VIREID_NOTEBOOK_SETTING="tiny",
              VIREID_NOTEBOOK_DATA=str(folder / "data"),
              VIREID_NOTEBOOK_WORKDIR=str(folder / "quickstart"),
              VIREID_NOTEBOOK_OUTPUT=str(folder / "outputs"),
              CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
              JAX_DISABLE_MOST_OPTIMIZATIONS="true",
              JAX_COMPILATION_CACHE_DIR=str(folder / "xla_cache"),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
              PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]))


def execute(name, environment):
  """Runs the notebook top to bottom in a fresh kernel of this interpreter (raises
  `nbclient.exceptions.CellExecutionError` naming the cell on any failure); returns it with
  its outputs."""
  notebook = read(name)
  client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                   resources={"metadata": {"path": NOTEBOOKS_DIR}})
  client.execute(env=environment)
  return notebook


def outputs(notebook, kind):
  """Every output of `kind` ("image/png", "text/markdown", "stream") in order."""
  found = []
  for cell in notebook.cells:
    for output in cell.get("outputs", []):
      if kind == "stream" and output.output_type == "stream":
        found.append(output.text)
      elif kind in output.get("data", {}):
        found.append(output.data[kind])
  return found


def tables(notebook):
  """The results tables shown (`report.format_results_table`, whose columns pad to width)."""
  return [text for text in outputs(notebook, "text/markdown")
          if re.search(r"\| protocol +\| feature +\|", text)]


def test_quickstart_trains_and_shows_tables_and_pictures(notebook_environment):
  notebook = execute("quickstart.ipynb", notebook_environment)
  workdir = notebook_environment["VIREID_NOTEBOOK_WORKDIR"]
  with open(os.path.join(workdir, "results.json"), encoding="utf-8") as file:
    results = json.load(file)
  assert results["step"] == 6   # two epochs of three steps: the tiny setting was used
  # Training records its data sizes beside config.json: restore_and_evaluate rebuilds the model
  # from them without the dataset.
  with open(os.path.join(workdir, "data_info.json"), encoding="utf-8") as file:
    data_info = json.load(file)
  # 8 training and 2 validation identities (configs/notebook.py:tiny), 3 steps per epoch.
  assert (data_info["num_classes"], data_info["steps_per_epoch"]) == (10, 3)
  shown = tables(notebook)
  assert len(shown) == 2 and "Before training" in shown[0] and "Trained" in shown[1]
  # The table shown is the run's: its R1 is results.json's mean.
  trained_r1 = results["trained"][0]["mean"]["cmc"][0] * 100
  assert f"{trained_r1:.2f}" in shown[1]
  # The CMC curve and one ranking grid per feature.
  assert len(outputs(notebook, "image/png")) == 1 + len(results["trained"])
  stream = "".join(outputs(notebook, "stream"))
  assert "devices: [CpuDevice(id=0)]" in stream and "tensorboard --logdir" in stream


def test_restore_and_evaluate_shows_every_variant_and_a_search(notebook_environment):
  # Uses the quickstart's workdir when the quickstart ran before (this file's order); trains
  # the tiny run there itself otherwise.
  notebook = execute("restore_and_evaluate.ipynb", notebook_environment)
  shown = tables(notebook)
  # SYSU-MM01's all- and indoor-search, two features each, in one table.
  assert len(shown) == 1
  for protocol in ("sysu_all", "sysu_indoor"):
    assert shown[0].count(f"| {protocol} ") == 2, shown[0]
  output = os.path.join(notebook_environment["VIREID_NOTEBOOK_OUTPUT"], "notebook_restore")
  with open(os.path.join(output, "search", "rankings.json"), encoding="utf-8") as file:
    ranked = json.load(file)["queries"][0]
  # The ranked list shown is the search's.
  search_table = next(text for text in outputs(notebook, "text/markdown") if "| rank |" in text)
  assert len(ranked["gallery"]) == 5
  for path in ranked["gallery"]:
    assert os.path.basename(path) in search_table
  assert len(outputs(notebook, "image/png")) == 3   # CMC, ranking grid, search picture


def test_import_pytorch_weights_matches_pytorch_and_evaluates(notebook_environment):
  notebook = execute("import_pytorch_weights.ipynb", notebook_environment)
  errors = next(text for text in outputs(notebook, "text/markdown")
                if "max relative error" in text)
  # Four rows (two modalities x two features), each below the cell's own 1e-4 bound.
  values = [float(line.split("|")[3]) for line in errors.splitlines()[2:]]
  assert len(values) == 4 and max(values) < 1e-4
  assert len(tables(notebook)) == 1
  assert len(outputs(notebook, "image/png")) == 2
  output = os.path.join(notebook_environment["VIREID_NOTEBOOK_OUTPUT"], "notebook_import")
  assert os.path.isfile(os.path.join(output, "sysu_agw_random_weights.t"))
