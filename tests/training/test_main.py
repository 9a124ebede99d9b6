"""The main job end to end: CLI, config locking, results, and resuming after a kill."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A tiny but complete experiment: the synthetic dataset in SYSU-MM01's layout, a narrow
# ResNet-18, three short epochs, two evaluation trials.
TINY_CONFIG = textwrap.dedent("""
    from configs import synthetic

    def get_config():
      config = synthetic.get_config()
      config.data.root = {root!r}
      config.data.tfds_dir = {tfds_dir!r}
      config.data.synthetic = dict(seed=1, num_train_ids=8, num_val_ids=2, num_test_ids=4,
                                   images_per_camera=(1, 2), image_height=48, image_width=24)
      config.data.image_height = 48
      config.data.image_width = 24
      config.data.ids_per_batch = 4
      config.data.images_per_id = 2
      config.data.eval_batch_size = 16
      config.model.width = 8
      config.train.num_epochs = 3
      config.train.steps_per_epoch = 3
      config.train.log_every_steps = 1
      config.optim.warmup_epochs = 1
      config.optim.milestones = (2,)
      config.eval.num_trials = 2
      return config
    """)


def run_main(config_path, workdir, *extra, background=False):
  command = [sys.executable, "-m", "vireid_jax.main", f"--config={config_path}",
             f"--workdir={workdir}", *extra]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  if background:
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
  return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                        timeout=600)


@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
  folder = tmp_path_factory.mktemp("experiment")
  config_path = folder / "tiny.py"
  config_path.write_text(TINY_CONFIG.format(root=str(folder / "raw"),
                                            tfds_dir=str(folder / "tfds")))
  uninterrupted = folder / "uninterrupted"
  completed = run_main(config_path, uninterrupted)
  assert completed.returncode == 0, completed.stdout + completed.stderr
  return folder, config_path, uninterrupted, completed


def test_main_job_prints_tables_and_writes_results(tiny_experiment):
  _, _, workdir, completed = tiny_experiment
  assert "Before training (step 0):" in completed.stdout
  assert "Trained (step 9):" in completed.stdout
  assert "| sysu_all | bn" in completed.stdout
  results = json.loads((workdir / "results.json").read_text())
  assert results["step"] == 9
  trained = {summary["feature"]: summary for summary in results["trained"]}
  assert set(trained) == {"pool", "bn"}
  assert trained["bn"]["num_trials"] == 2 and len(trained["bn"]["per_trial"]["mAP"]) == 2
  assert 0.0 <= trained["bn"]["mean"]["mAP"] <= 1.0
  assert os.listdir(workdir / "tensorboard")
  # One checkpoint per epoch; the newest ones are kept.
  assert sorted(int(name) for name in os.listdir(workdir / "checkpoints")
                if name.isdigit()) == [3, 6, 9]


def test_killed_run_resumes_to_the_same_results(tiny_experiment):
  folder, config_path, uninterrupted, _ = tiny_experiment
  workdir = folder / "killed"
  process = run_main(config_path, workdir, background=True)
  first_checkpoint = workdir / "checkpoints" / "3"
  deadline = time.time() + 300
  while not first_checkpoint.exists() and process.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  output, _ = process.communicate()
  assert process.returncode == -signal.SIGKILL, output
  assert not (workdir / "results.json").exists()

  resumed = run_main(config_path, workdir)
  assert resumed.returncode == 0, resumed.stdout + resumed.stderr
  assert json.loads((workdir / "results.json").read_text()) == json.loads(
      (uninterrupted / "results.json").read_text())


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
                       f"--config.data.root={tmp_path / 'SYSU-MM01'}")
  assert completed.returncode == 1
  assert str(tmp_path / "SYSU-MM01") in completed.stderr
  assert "data/README.md" in completed.stderr and "configs/synthetic.py" in completed.stderr
