"""The main job end to end: CLI, config locking, results, and resuming after a kill."""

import json
import os
import time

import numpy as np
import pytest

from tests.training.main_runs import (  # noqa: F401  (compilation_cache: autouse fixture)
    DAN_ON_TINY_DATA,
    REPO_ROOT,
    TINY_AGW,
    assert_same_run,
    compilation_cache,
    console_lines,
    final_arrays,
    kill_mid_epoch_and_resume,
    method_config,
    run_main,
    tensorboard_scalars,
    write_config,
)

# The same experiment with the loop-testing method of `toy_method.py`.
TOY_EXTRA = """
  config.method = "tests.training.toy_method"
  config.toy = ml_collections.ConfigDict(dict(nan_at_step=0))
  config.eval.before_training = False
"""

# Two networks with two optimisers, updated in one step (`toy_gan.py`).
TOY_GAN_EXTRA = """
  config.method = "tests.training.toy_gan"
  config.eval.before_training = False
"""

# An unlabelled target stream with pseudo-labels that change every epoch
# (`toy_domain_adaptation.py`): the target is the same synthetic dataset moved into DAN's
# "lighting" domain.
TOY_DA_EXTRA = """
  config.method = "tests.training.toy_domain_adaptation"
  config.toy = ml_collections.ConfigDict(dict(num_clusters=3))
  config.data.sampler = "domain_adaptation"
  config.data.target.dataset = "sysu"
  config.data.target.root = config.data.root
  config.data.target.tfds_dir = config.data.tfds_dir
  config.data.target.synthetic = config.data.synthetic
  config.data.target.domain = "lighting"
  config.eval.before_training = False
"""


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
  folder = tmp_path_factory.mktemp("experiment")
  # The views computed inside the train step (augment_on="device"; "auto" would be the host on
  # a CPU): the kill-and-resume test below then covers the device mode, the other end-to-end
  # runs (toy methods, DAN, fault injection) the host mode.
  config_path = write_config(folder, "tiny.py", '\nconfig.data.augment_on = "device"\n')
  uninterrupted = folder / "uninterrupted"
  # A new interpreter: its console (test_the_console_shows_...) includes what imports print.
  completed = run_main(config_path, uninterrupted, fresh_interpreter=True)
  assert completed.returncode == 0, completed.stdout + completed.stderr
  return folder, config_path, uninterrupted, completed


def test_main_job_prints_tables_and_writes_results(tiny_experiment):
  _, _, workdir, completed = tiny_experiment
  assert "Before training (step 0):" in completed.stdout
  assert "Trained (step 9):" in completed.stdout
  assert "| sysu_all | bn" in completed.stdout
  results = json.loads((workdir / "results.json").read_text())
  assert results["step"] == 9
  assert json.loads((workdir / "config.json").read_text())["data"]["augment_on"] == "device"
  # No target: the training dataset's own test split, in no synthetic domain.
  assert (results["test_dataset"], results["test_domain"]) == ("sysu", "")
  trained = {summary["feature"]: summary for summary in results["trained"]}
  assert set(trained) == {"pool", "bn"}
  assert trained["bn"]["num_trials"] == 2 and len(trained["bn"]["per_trial"]["mAP"]) == 2
  assert 0.0 <= trained["bn"]["mean"]["mAP"] <= 1.0
  assert os.listdir(workdir / "tensorboard")
  figures = sorted(os.listdir(workdir / "figures" / "trained"))
  assert figures == ["cmc.png", "index.html", "ranking_sysu_all_bn.png",
                     "ranking_sysu_all_pool.png", "thumbnails"]
  assert "cmc.png" in os.listdir(workdir / "figures" / "before_training")
  # One checkpoint per epoch; the newest ones are kept.
  assert sorted(int(name) for name in os.listdir(workdir / "checkpoints")
                if name.isdigit()) == [3, 6, 9]


def test_run_killed_mid_epoch_resumes_bit_identically(tiny_experiment):
  folder, config_path, uninterrupted, _ = tiny_experiment
  workdir = folder / "killed"
  kill_mid_epoch_and_resume(config_path, workdir)
  assert_same_run(uninterrupted, workdir, min_arrays=100)


def test_interrupted_checkpoint_write_is_never_restored(tiny_experiment, tmp_path):
  import shutil
  from vireid_jax.training import orbax_checkpoints
  _, _, uninterrupted, _ = tiny_experiment
  directory = tmp_path / "checkpoints"
  shutil.copytree(uninterrupted / "checkpoints" / "6", directory / "6")
  # What orbax leaves when a process dies while writing step 9: the temporary folder,
  # never renamed.
  shutil.copytree(uninterrupted / "checkpoints" / "9",
                  directory / "9.orbax-checkpoint-tmp-1700000000")
  checkpointer = orbax_checkpoints.Checkpointer(str(directory))
  assert checkpointer.latest_step() == 6 and checkpointer.all_steps() == [6]
  checkpointer.close()


def test_eval_mode_reproduces_the_results(tiny_experiment):
  _, config_path, uninterrupted, _ = tiny_experiment
  before = (uninterrupted / "results.json").read_text()
  completed = run_main(config_path, uninterrupted, "--mode=eval")
  assert completed.returncode == 0, completed.stderr
  assert (uninterrupted / "results.json").read_text() == before


def test_unknown_config_key_is_an_error(tiny_experiment, tmp_path):
  _, config_path, _, _ = tiny_experiment
  completed = run_main(config_path, tmp_path / "w", "--config.train.num_epoch=2")
  assert completed.returncode != 0
  assert "num_epoch" in completed.stderr


def test_sysu_config_without_the_dataset_names_the_folder(tmp_path):
  completed = run_main(os.path.join(REPO_ROOT, "configs", "sysu.py"), tmp_path / "w",
                       f"--config.data.root={tmp_path / 'SYSU-MM01'}",
                       "--config.model.pretrained=none")
  assert completed.returncode == 1
  assert str(tmp_path / "SYSU-MM01") in completed.stderr
  assert "data/README.md" in completed.stderr and "configs/synthetic.py" in completed.stderr


def test_eval_restores_the_checkpoint_the_config_names_and_scores_a_target_directly(
    tiny_experiment, tmp_path):
  _, config_path, uninterrupted, _ = tiny_experiment
  # AGW has no target stream: a target dataset (here the source's own folder in the noise
  # domain; empty root and tfds_dir are the source's) is direct transfer, evaluated only.
  completed = run_main(config_path, tmp_path / "evaluation", "--mode=eval",
                       f"--config.eval.checkpoint={uninterrupted / 'checkpoints' / '6'}",
                       "--config.eval.before_training=False", "--config.eval.num_trials=1",
                       "--config.data.target.dataset=sysu", "--config.data.target.domain=noise")
  assert completed.returncode == 0, completed.stderr
  assert ("The method trains on no target stream: this run evaluates direct transfer to "
          "sysu/noise") in completed.stdout
  assert "Trained (step 6), on the target's test split (sysu/noise):" in completed.stdout
  results = json.loads((tmp_path / "evaluation" / "results.json").read_text())
  assert results["step"] == 6
  assert (results["test_dataset"], results["test_domain"]) == ("sysu", "noise")


def test_checkpoint_of_another_model_names_each_parameter_and_both_shapes(tiny_experiment,
                                                                          tmp_path):
  _, config_path, uninterrupted, _ = tiny_experiment
  completed = run_main(config_path, tmp_path / "wider", "--mode=eval",
                       "--config.model.width=16", f"--config.eval.checkpoint={uninterrupted}")
  assert completed.returncode == 1
  # ResNet-18 width 8 vs 16: the visible stem's first convolution, 7x7x3x8 vs 7x7x3x16.
  assert ("net.params.visible_stem.conv1.kernel: checkpoint (7, 7, 3, 8), config (7, 7, 3, 16)"
          in completed.stderr)
  assert "does not match the model the config builds" in completed.stderr


def test_workdir_with_another_training_config_is_refused_unless_overridden(tiny_experiment):
  _, config_path, uninterrupted, _ = tiny_experiment
  recorded = (uninterrupted / "config.json").read_text()
  refused = run_main(config_path, uninterrupted, "--mode=train", "--config.optim.base_lr=0.5")
  assert refused.returncode == 1
  assert "optim.base_lr: workdir 0.1, now 0.5" in refused.stderr
  assert "--override_config" in refused.stderr
  assert (uninterrupted / "config.json").read_text() == recorded


@pytest.fixture(scope="module")
def toy_config(tiny_experiment):
  folder = tiny_experiment[0]
  return write_config(folder, "toy.py", TOY_EXTRA)


def test_non_finite_loss_stops_naming_step_and_terms_and_keeps_last_checkpoint(toy_config,
                                                                               tmp_path):
  workdir = tmp_path / "nan"
  completed = run_main(toy_config, workdir, "--config.toy.nan_at_step=5",
                       "--config.train.checkpoint_every_steps=1",
                       "--config.train.checkpoints_to_keep=9")
  assert completed.returncode == 1
  assert "Non-finite loss at step 5: cross_entropy=nan, loss=nan" in completed.stderr
  steps = sorted(int(name) for name in os.listdir(workdir / "checkpoints") if name.isdigit())
  assert steps == [1, 2, 3, 4]
  assert not (workdir / "results.json").exists()


def uninterrupted_toy_run(tiny_experiment, name, extra):
  """The tiny experiment with one of the toy methods, run once to the end."""
  folder = tiny_experiment[0]
  config_path = write_config(folder, f"{name}.py", extra)
  completed = run_main(config_path, folder / name)
  assert completed.returncode == 0, completed.stderr[-3000:]
  return config_path, folder / name, completed


@pytest.fixture(scope="module")
def toy_gan_run(tiny_experiment):
  return uninterrupted_toy_run(tiny_experiment, "toy_gan", TOY_GAN_EXTRA)


def test_toy_gan_trains_both_networks_and_logs_its_own_metric_names(toy_gan_run):
  _, workdir, completed = toy_gan_run
  # The progress bar shows the method's progress_metric; there is no "loss" metric at all.
  assert "generator_loss=" in completed.stderr
  arrays = final_arrays(workdir)
  assert any(name.startswith("['generator']['params']") for name in arrays)
  assert any(name.startswith("['discriminator']['opt_state']") for name in arrays)
  # The single step counter: 9 steps, although every step made two updates.
  assert int(arrays["['step']"]) == 9
  # Adam (the discriminator's optimiser) counted 9 updates too.
  adam_counts = [int(value) for name, value in arrays.items()
                 if name.startswith("['discriminator']['opt_state']") and "count" in name]
  assert adam_counts == [9]
  scalars = tensorboard_scalars(workdir / "tensorboard")
  assert {"train/generator_loss", "train/discriminator_loss", "train/identity_loss"} <= set(
      scalars)
  assert [step for step, _ in scalars["train/generator_loss"]] == list(range(1, 10))
  results = json.loads((workdir / "results.json").read_text())
  assert results["step"] == 9 and {s["feature"] for s in results["trained"]} == {"pool", "bn"}


def test_toy_gan_killed_mid_epoch_resumes_bit_identically_and_restores_for_eval(
    toy_gan_run, tmp_path):
  config_path, uninterrupted, _ = toy_gan_run
  workdir = tmp_path / "gan_killed"
  kill_mid_epoch_and_resume(config_path, workdir)
  assert_same_run(uninterrupted, workdir, min_arrays=10)
  before = (uninterrupted / "results.json").read_text()
  evaluated = run_main(config_path, uninterrupted, "--mode=eval")
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  assert (uninterrupted / "results.json").read_text() == before


def test_toy_gan_trains_on_eight_devices_like_on_one(toy_gan_run, tmp_path):
  config_path, one_device, _ = toy_gan_run
  completed = run_main(config_path, tmp_path / "gan8", devices=8)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert "Devices: 8 x cpu in 1 process(es)" in completed.stdout
  one, eight = final_arrays(one_device), final_arrays(tmp_path / "gan8")
  assert one.keys() == eight.keys()
  for name, value in one.items():
    np.testing.assert_allclose(eight[name], value, rtol=2e-4, atol=2e-6, err_msg=name)


@pytest.fixture(scope="module")
def toy_da_run(tiny_experiment):
  return uninterrupted_toy_run(tiny_experiment, "toy_da", TOY_DA_EXTRA)


def test_target_stream_carries_the_pseudo_labels_of_each_epoch(toy_da_run):
  _, workdir, completed = toy_da_run
  arrays = final_arrays(workdir)
  history = arrays["['label_history']"]
  # Three epochs, every target image labelled each epoch, and the labels changed.
  assert history.shape[0] == 3 and (history >= 0).all()
  assert len({row.tobytes() for row in history}) == 3
  np.testing.assert_array_equal(arrays["['pseudo_labels']"], history[-1])
  # Every target row of every batch carried the state's pseudo-label (from epoch_inputs).
  assert int(arrays["['label_mismatches']"]) == 0
  # begin_epoch ran exactly once per epoch.
  np.testing.assert_array_equal(arrays["['hook_calls']"], [1, 1, 1])
  # The memory is [num_target, 8] and the batches reached some of its rows.
  assert arrays["['memory']"].shape == (history.shape[1], 8)
  assert np.any(arrays["['memory']"] != 0)
  # Evaluation ran on the target's test split (its lighting domain), SYSU protocol.
  results = json.loads((workdir / "results.json").read_text())
  assert {summary["protocol"] for summary in results["trained"]} == {"sysu_all"}
  assert (results["test_dataset"], results["test_domain"]) == ("sysu", "lighting")
  assert "Trained (step 9), on the target's test split (sysu/lighting):" in completed.stdout
  assert "direct transfer" not in completed.stdout


def test_dan_killed_mid_epoch_resumes_with_the_same_pseudo_labels_memories_and_parameters(
    tiny_experiment, tmp_path):
  """DAN's epoch hook (pseudo-labels, the plan's memories) in the state: a run SIGKILLed in
  the middle of its second epoch and resumed equals the uninterrupted run, bit for bit. (This
  is also the contract's resume test for a target stream: had the resumed run labelled the
  target again, from mid-epoch parameters, its labels and memories would differ.)"""
  folder = tiny_experiment[0]
  config_path = method_config(folder, "tiny_dan.py", "dan", "synthetic",
                              TINY_AGW + DAN_ON_TINY_DATA + "config.eval.before_training = False")
  uninterrupted = tmp_path / "dan"
  completed = run_main(config_path, uninterrupted)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert "epoch 2: pseudo-labels over 10 source identities" in completed.stdout
  killed = tmp_path / "dan_killed"
  kill_mid_epoch_and_resume(config_path, killed)
  assert_same_run(uninterrupted, killed, min_arrays=20)
  arrays = final_arrays(killed)
  labels = arrays["['target_labels']"]
  assert labels.shape == (len(labels),) and (labels >= 0).all()
  assert arrays["['visible_memory']['features']"].shape == (3 * 8, 64)


def test_the_console_shows_what_a_person_reads_and_the_log_file_the_rest(tiny_experiment):
  _, _, workdir, completed = tiny_experiment
  lines = console_lines(completed)
  assert len(lines) < 40, "\n".join(lines)
  assert lines[0].startswith("Generating the synthetic sysu-layout dataset")
  assert any(line.startswith("Devices: 1 x cpu") for line in lines)
  assert lines[-1].startswith("Results: ")
  # The progress bar shows the epoch, the loss and the throughput.
  assert "epoch=2" in completed.stderr and "loss=" in completed.stderr
  assert "images/s=" in completed.stderr
  # The precision of the compiled computations is part of the recorded training config.
  recorded = json.loads((workdir / "config.json").read_text())
  assert recorded["train"]["matmul_precision"] == "default"
  log = (workdir / "log.txt").read_text()
  assert "Resumed" not in log and "checkpoint" in log.lower()
  assert not any(line[:1] in "IW" and line[1:5].isdigit() for line in lines)


def test_sysu_config_without_the_imagenet_file_stops_before_any_work(tiny_experiment, tmp_path):
  folder = tiny_experiment[0]
  started = time.time()
  # Run from an empty folder: the config's relative data/pretrained/resnet50-19c8e357.pth is
  # missing there whatever a developer keeps in the repository's data/.
  completed = run_main(os.path.join(REPO_ROOT, "configs", "sysu.py"), tmp_path / "w",
                       f"--config.data.root={folder / 'raw'}",
                       f"--config.data.tfds_dir={tmp_path / 'tfds'}", cwd=tmp_path)
  assert completed.returncode == 1
  assert "config.model.pretrained=data/pretrained/resnet50-19c8e357.pth: no such file" in (
      completed.stderr)
  assert "--config.model.pretrained=none" in completed.stderr
  # Nothing was built, trained or recorded.
  assert not (tmp_path / "tfds").exists()
  assert not (tmp_path / "w" / "checkpoints").exists()
  assert not (tmp_path / "w" / "config.json").exists()
  assert time.time() - started < 120


EVAL_DURING_TRAINING = ("--config.eval.every_epochs=1", "--config.eval.select=best")


@pytest.fixture(scope="module")
def evaluated_during_training(toy_config, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("curve") / "run"
  completed = run_main(toy_config, workdir, *EVAL_DURING_TRAINING)
  assert completed.returncode == 0, completed.stderr[-3000:]
  return workdir, completed


def test_evaluation_during_training_writes_the_curve_and_reports_the_best(
    toy_config, evaluated_during_training):
  workdir, completed = evaluated_during_training
  results = json.loads((workdir / "results.json").read_text())
  curve = results["during_training"]
  # 0-based epochs 1 and 2 of three (epoch 0 is never evaluated, as in the references).
  assert [(entry["epoch"], entry["step"]) for entry in curve] == [(1, 6), (2, 9)]
  assert all(entry["protocol"] == "sysu_all" and entry["feature"] == "bn" for entry in curve)
  assert all(0 <= entry[key] <= 1 for entry in curve for key in ("R1", "mAP", "mINP"))
  best = max(curve, key=lambda entry: (entry["R1"], -entry["step"]))
  assert results["selected"] == {"select": "best", "step": best["step"],
                                 "epoch": best["epoch"]}
  assert results["step"] == best["step"]
  assert f"Best on the test split (step {best['step']}, epoch {best['epoch']};" in (
      completed.stdout)
  assert "eval epoch 1 (step 6): sysu_all bn  R1 " in completed.stdout + completed.stderr
  scalars = tensorboard_scalars(workdir / "tensorboard")
  assert [step for step, _ in scalars["eval/R1"]] == [6, 9]
  np.testing.assert_allclose([value for _, value in scalars["eval/mAP"]],
                             [entry["mAP"] for entry in curve], rtol=1e-6)
  assert sorted(os.listdir(workdir / "checkpoints_best")) == [str(best["step"])]
  # --mode eval evaluates the same (best) checkpoint.
  trained = results["trained"]
  evaluated = run_main(toy_config, workdir, "--mode=eval", *EVAL_DURING_TRAINING)
  assert evaluated.returncode == 0, evaluated.stderr[-3000:]
  again = json.loads((workdir / "results.json").read_text())
  assert again["trained"] == trained and again["selected"]["step"] == best["step"]


def test_a_resumed_run_keeps_the_curve_and_the_best_so_far(toy_config, evaluated_during_training,
                                                           tmp_path):
  uninterrupted, _ = evaluated_during_training
  workdir = tmp_path / "curve_killed"
  # Step 7: after the first evaluation (end of epoch 1), in the middle of the last epoch.
  kill_mid_epoch_and_resume(toy_config, workdir, *EVAL_DURING_TRAINING, kill_after_step=7)
  assert json.loads((workdir / "results.json").read_text()) == json.loads(
      (uninterrupted / "results.json").read_text())
  assert os.listdir(workdir / "checkpoints_best") == os.listdir(
      uninterrupted / "checkpoints_best")
