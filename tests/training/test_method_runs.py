"""Each method's and dataset's config end to end through the CLI, on tiny synthetic data: what
`python -m vireid_jax.main --config configs/<x>.py:synthetic` does, shrunk to seconds. The
method runs use 8 devices; AGW's configs run on 8 devices in tests/training/test_main.py (the
toy methods) and step for step against 1 device in tests/training/test_parallel.py."""

import json
import os
import textwrap

import pytest

from tests.training.main_runs import (  # noqa: F401  (compilation_cache: autouse fixture)
    DAN_ON_TINY_DATA,
    compilation_cache,
    method_config,
    run_main,
    tensorboard_scalars,
)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
  """Where the tiny synthetic data of this module is generated (by its first run)."""
  return tmp_path_factory.mktemp("tiny")


DATASET_CONFIGS = {
    "regdb": ("synthetic_regdb.py", "dict(seed=1, num_ids=12, images_per_id=4, "
              "image_height=48, image_width=24)",
              {"regdb_visible_to_thermal", "regdb_thermal_to_visible"}),
    "llcm": ("synthetic_llcm.py", "dict(seed=1, num_train_ids=8, num_test_ids=4, "
             "images_per_camera=(1, 2), image_height=48, image_width=24)",
             {"llcm_ir_to_vis", "llcm_vis_to_ir_swapped"}),
}


@pytest.mark.parametrize("dataset", sorted(DATASET_CONFIGS))
def test_every_dataset_config_runs_end_to_end_on_its_synthetic_counterpart(dataset, tmp_path):
  config_file, synthetic_options, protocols = DATASET_CONFIGS[dataset]
  config_path = tmp_path / f"tiny_{dataset}.py"
  config_path.write_text(textwrap.dedent(f"""
      from configs import {config_file[:-3]} as experiment

      def get_config():
        config = experiment.get_config()
        config.data.root = {str(tmp_path / 'raw')!r}
        config.data.tfds_dir = {str(tmp_path / 'tfds')!r}
        config.data.synthetic = {synthetic_options}
        config.data.image_height = 48
        config.data.image_width = 24
        config.data.ids_per_batch = 4
        config.data.images_per_id = 2
        config.data.eval_batch_size = 16
        config.model.width = 8
        config.train.num_epochs = 1
        config.train.steps_per_epoch = 2
        config.optim.warmup_epochs = 1
        config.eval.num_trials = 2
        config.eval.ranking_queries = 1
        config.eval.ranking_top_k = 2
        config.eval.before_training = False
        return config
      """))
  completed = run_main(config_path, tmp_path / "run")
  assert completed.returncode == 0, completed.stderr[-3000:]
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert {summary["protocol"] for summary in results["trained"]} == protocols
  assert all(0.0 <= summary["mean"]["mAP"] <= 1.0 for summary in results["trained"])
  figures = os.listdir(tmp_path / "run" / "figures" / "trained")
  assert "cmc.png" in figures
  assert any(name.startswith("ranking_") and name.endswith(".png") for name in figures)


# method -> (lines after its get_config("synthetic") on the module's tiny data, the protocols
# and features of the results, metrics of its own that must reach TensorBoard).
METHOD_RUNS = {
    # MSER's neighbourhoods shrunk to the handful of tiny test queries.
    "mcja": ("""
        config.data.images_per_id = 4
        config.eval.mser.sysu.k1 = 3
        config.eval.mser.sysu.k2 = 2
        """, {"sysu_all+mser"}, {"pool", "bn"}, {"identity_loss", "retrieval_loss"}),
    "caj": ("", {"sysu_all+flip"}, {"pool", "bn"}, {"triplet_loss", "kl_loss"}),
    # 64 x 32: a 4-row layer4 map, one row per stripe (48 x 24 would leave 3 rows).
    "mmn": ("""
        config.data.image_height = 64
        config.data.image_width = 32
        """, {"sysu_all"}, {"pool", "bn", "bn_sum"}, {"triplet_loss", "dcl_loss"}),
    # 96 x 48: the smallest 2:1 input of the layerATT chain (E = 6 x 3 = 18, two heads).
    "djanet": ("""
        config.data.image_height = 96
        config.data.image_width = 48
        config.model.width = 8
        config.model.mamba_d_state = 4
        """, {"sysu_all"}, {"pool", "bn"}, {"triplet_loss", "complementary_loss"}),
    # The tiny data as source, and as target in the "lighting" domain (evaluated there).
    "dan": (DAN_ON_TINY_DATA, {"sysu_all"}, {"pool", "bn"},
            {"adversarial_visible", "memory_infrared", "cma_mean", "pseudo_labels_shared"}),
}


@pytest.mark.parametrize("method", sorted(METHOD_RUNS))
def test_method_synthetic_config_trains_and_evaluates_on_eight_devices(method, tiny_folder,
                                                                      tmp_path):
  lines, protocols, features, metrics = METHOD_RUNS[method]
  config_path = method_config(tiny_folder, f"tiny_{method}.py", method, "synthetic",
                              textwrap.dedent("""
      config.data.ids_per_batch = 4
      config.data.images_per_id = 2
      config.train.num_epochs = 1
      config.train.steps_per_epoch = 2
      config.train.log_every_steps = 1
      config.eval.before_training = False
      """) + textwrap.dedent(lines))
  completed = run_main(config_path, tmp_path / method, devices=8)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert "Devices: 8 x cpu in 1 process(es)" in completed.stdout
  results = json.loads((tmp_path / method / "results.json").read_text())
  assert results["step"] == 2
  assert {summary["protocol"] for summary in results["trained"]} == protocols
  assert {summary["feature"] for summary in results["trained"]} == features
  assert all(0.0 <= summary["mean"]["mAP"] <= 1.0 for summary in results["trained"])
  scalars = tensorboard_scalars(tmp_path / method / "tensorboard")
  assert {f"train/{name}" for name in metrics} <= set(scalars), sorted(scalars)
