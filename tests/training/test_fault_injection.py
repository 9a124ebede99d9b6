"""Kill -9 anywhere (issue 21): a tiny run SIGKILLed ten times — mid-step, mid-checkpoint-write,
between a checkpoint's commit and its manifest, mid-evaluation, mid-TFRecord-build, between
results.json's temporary file and its rename, and at seeded random moments — and restarted
after each kill, ends with the same checkpoint arrays and the same results.json bytes as an
uninterrupted run, and no restart ever reads a partial file.

The named kills use `vireid_jax.failpoints`; a timed kill also arms a failpoint further on as a
backstop, so that each of the ten runs is killed somewhere even when the timer comes late.
The figures (kills by place, resumes, restarts from scratch, byte-identical finals) are printed
and shown in the suite's summary (tests/conftest.py: `figures` properties).
"""

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.training.main_runs import (  # noqa: F401  (compilation_cache: autouse fixture)
    REPO_ROOT,
    compilation_cache,
    final_arrays,
    run_main,
    write_config,
)
from vireid_jax import failpoints
from vireid_jax.training import orbax_checkpoints

SEED = int(os.environ.get("VIREID_FAULT_SEED", "21"))
FINAL_STEP = 4   # 2 epochs x 2 steps, a checkpoint after each
# The smallest run that still has every phase: two epochs, a checkpoint every step, one
# evaluation trial, no pictures of ranked lists.
SMALL_RUN = """
config.train.num_epochs = 2
config.train.steps_per_epoch = 2
config.train.checkpoint_every_steps = 1
config.optim.milestones = (1,)
config.eval.num_trials = 1
config.eval.ranking_queries = 0
config.eval.before_training = False
"""
TFRECORD_EXAMPLES = 101   # the tiny data's train and test images (main_runs.TINY_DATA)
# A restart of the small run takes 7-15 s of CPU time, most of it before the first step.
MAX_TIMER = 10.0


def test_a_failpoint_kills_on_its_hit_and_bad_entries_are_named():
  script = ("from vireid_jax import failpoints\n"
            "for arrival in range(1, 4):\n"
            "  failpoints.hit('other')\n"
            "  print(arrival, flush=True)\n"
            "  failpoints.hit('point:x')\n")
  run = lambda armed: subprocess.run(
      [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
      env=dict(os.environ, PYTHONPATH=REPO_ROOT, **{failpoints.ENVIRONMENT_VARIABLE: armed}))
  killed = run("point:x:2")
  assert (killed.returncode, killed.stdout.split()) == (-signal.SIGKILL, ["1", "2"])
  unarmed = run("")
  assert (unarmed.returncode, unarmed.stdout.split()) == (0, ["1", "2", "3"])
  assert failpoints.parse("a:1, rename:results.json:3") == {"a": 1, "rename:results.json": 3}
  for bad in ("checkpoint_write", "checkpoint_write:0", ":2"):
    with pytest.raises(ValueError, match=f"VIREID_FAILPOINTS=.*'{bad}'"):
      failpoints.parse(bad)


def kill_schedule(rng):
  """The ten kills in the order of a run's phases: [(failpoint "name:hit", timer seconds or
  None)]; a timed kill's failpoint is its backstop. The timers (up to `MAX_TIMER` s of wall
  time) land anywhere from the start-up (reading the data, building the state) to the first
  steps, or leave the kill to the backstop on a fast machine.

  Each failpoint is reached whatever the kills before it left (a timer only leaves less
  done): before step 4 commits, runs 2-4 leave at most steps 1, 1 and 2 committed, run 5
  commits step 3 without its manifest before step 4 is saved, and run 6 dies before saving
  step 4; from run 7 on, each run reaches the evaluation.
  """
  timer = lambda: round(rng.uniform(0.5, MAX_TIMER), 2)
  return [
      (f"tfrecord_example:{rng.randint(1, TFRECORD_EXAMPLES)}", None),
      (f"train_step:{rng.randint(1, 2)}", None),
      ("checkpoint_write:1", timer()),
      ("checkpoint_write:2", None),
      ("checkpoint_manifest:1", None),
      ("train_step:1", None),
      ("evaluation:1", timer()),
      (f"evaluation:{rng.randint(1, 2)}", None),   # after scoring pool (1) or bn (2)
      ("rename:results.json:1", None),
      ("rename:results.json:1", timer()),
  ]


def committed_steps(workdir):
  """Steps orbax lists as finalised: the folders renamed from their temporary names."""
  folder = workdir / "checkpoints"
  if not folder.is_dir():
    return []
  return sorted(int(name) for name in os.listdir(folder) if name.isdigit())


def assert_nothing_partial_is_visible(workdir, tfds_dir, expected_results):
  """What a restart could read after a kill: every committed step matches its manifest (or
  has none: a kill between commit and manifest), results.json is absent or complete, and the
  TFRecords folder is absent or a complete build."""
  for step in committed_steps(workdir):
    problem = orbax_checkpoints.checksum_problem(str(workdir / "checkpoints" / str(step)))
    assert problem in (None, ""), (step, problem)
  results = workdir / "results.json"
  if results.exists():
    assert results.read_bytes() == expected_results
  build = tfds_dir / "sysu_mm01" / "48x24" / "1.0.0"
  if build.exists():
    assert (build / "dataset_info.json").exists() and sorted(
        name for name in os.listdir(build) if ".tfrecord-" in name) == [
            "sysu_mm01-test.tfrecord-00000-of-00001", "sysu_mm01-train.tfrecord-00000-of-00001"]


def run_until_killed(config_path, workdir, extra, failpoint, timer):
  """Runs with `failpoint` armed (and a SIGKILL after `timer` s); returns where it died: the
  failpoint's name or "timer"."""
  process = run_main(config_path, workdir, *extra, background=True,
                     extra_env={failpoints.ENVIRONMENT_VARIABLE: failpoint})
  place = failpoint.rsplit(":", 1)[0]
  if timer is not None:
    deadline = time.time() + timer
    while process.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    if process.poll() is None:
      process.send_signal(signal.SIGKILL)
      place = "timer"
  output, _ = process.communicate(timeout=600)
  assert process.returncode == -signal.SIGKILL, (failpoint, output[-3000:])
  return place


def test_killed_ten_times_anywhere_the_run_ends_byte_identical(tmp_path, record_property):
  config_path = write_config(tmp_path, "small.py", SMALL_RUN)
  reference = run_main(config_path, tmp_path / "uninterrupted")
  assert reference.returncode == 0, reference.stdout + reference.stderr
  expected_results = (tmp_path / "uninterrupted" / "results.json").read_bytes()
  # No timestamps or durations in results.json: the whole file can be compared.
  assert not re.search(rb'"[a-z_]*(time|seconds|date)[a-z_]*"', expected_results)

  # The killed run builds TFRecords of its own (from the same raw folder) to be killed there.
  workdir, tfds_dir = tmp_path / "killed", tmp_path / "tfds_killed"
  extra = [f"--config.data.tfds_dir={tfds_dir}"]
  log = workdir / "log.txt"
  places, resumes, from_scratch = [], 0, 0
  for failpoint, timer in kill_schedule(random.Random(SEED)):
    newest_before = (committed_steps(workdir) or [None])[-1]
    log_offset = log.stat().st_size if log.exists() else 0
    places.append(run_until_killed(config_path, workdir, extra, failpoint, timer))
    if len(places) > 1:   # this run restarted after a kill
      resumes += newest_before is not None
      from_scratch += newest_before is None
    # A restart resumes from the newest committed step, never from a partial one.
    resumed = re.findall(r"Resumed from step (\d+)", log.read_text()[log_offset:])
    assert resumed in ([], [str(newest_before)]), (failpoint, newest_before, resumed)
    assert_nothing_partial_is_visible(workdir, tfds_dir, expected_results)

  newest_before = committed_steps(workdir)[-1]
  log_offset = log.stat().st_size
  final = run_main(config_path, workdir, *extra)
  assert final.returncode == 0, final.stdout + final.stderr
  resumes += 1
  assert f"Resumed from step {newest_before}" in log.read_text()[log_offset:]

  results_identical = (workdir / "results.json").read_bytes() == expected_results
  expected, actual = (final_arrays(tmp_path / "uninterrupted", FINAL_STEP),
                      final_arrays(workdir, FINAL_STEP))
  identical_arrays = sum(name in actual and value.dtype == actual[name].dtype
                         and value.tobytes() == actual[name].tobytes()
                         for name, value in expected.items())
  where = ", ".join(f"{place} x{places.count(place)}" for place in dict.fromkeys(places))
  # What the kills left behind, never read: atomic writes' temporary files, orbax's
  # uncommitted step folders, TFDS's incomplete builds.
  leftovers = [path for folder in (workdir, tfds_dir) for path in folder.rglob("*")
               if re.search(r"\.tmp$|orbax-checkpoint-tmp|incomplete", path.name)]
  leftovers = [path for path in leftovers if not set(path.parents) & set(leftovers)]
  figures = (f"fault injection (seed {SEED}): {len(places)} kills ({where}); "
             f"{resumes} resumes, {from_scratch} restarts from scratch; final checkpoint arrays "
             f"byte-identical {identical_arrays}/{len(expected)}, results.json "
             f"{'byte-identical' if results_identical else 'DIFFERENT'}; {len(leftovers)} "
             "temporary files or folders of killed writes left, none read")
  record_property("figures", figures)
  print(figures)
  assert len(places) == 10 and from_scratch >= 1 and resumes >= 7
  assert expected.keys() == actual.keys() and identical_arrays == len(expected) > 0
  assert results_identical
