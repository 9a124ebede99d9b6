"""Train and evaluate a visible-infrared re-ID method from a config file.

  python -m vireid_jax.main --config configs/sysu.py --workdir runs/sysu \
      [--config.train.num_epochs=40] [--mode train|eval|train_and_eval]

The workdir holds checkpoints (a run resumes from the newest one), TensorBoard summaries,
log.txt and, after evaluation, results.json.

The console shows what a person reads: the device line, the progress bar, one line per
evaluation, the tables and where the results went. Library log lines (absl, JAX, orbax,
TensorFlow, Python warnings) go to `<workdir>/log.txt`; `--alsologtostderr` brings them back
to the console, and errors reach it in full either way.
"""

import logging as python_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py); fields can be overridden with "
    "--config.<field>=<value>.", lock_config=True)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, summaries and results.")
flags.DEFINE_enum("mode", "train_and_eval", ["train", "eval", "train_and_eval"],
                  "train: train only; eval: evaluate the newest checkpoint in the workdir; "
                  "train_and_eval: train (resuming if possible), then evaluate.")
flags.DEFINE_bool("override_config", False,
                  "Continue the run in --workdir although its recorded config.json differs in "
                  "keys that change training (the old file is kept beside it).")
flags.mark_flags_as_required(["config", "workdir"])


LOG_FILE = "log.txt"


def log_to_workdir(workdir: str) -> str:
  """Sends absl (and so JAX, orbax, TensorFlow) log lines and Python warnings to a file in the
  workdir; only errors (`--stderrthreshold`) or, with `--alsologtostderr`, everything else
  reach the console too."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOG_FILE)
  handler = logging.get_absl_handler()
  handler.python_handler.stream = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with
  if not FLAGS["stderrthreshold"].present:
    FLAGS.stderrthreshold = "error"
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.INFO)
  python_logging.captureWarnings(True)
  return path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # TensorFlow's C++ INFO and WARNING lines would bypass the log file.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if not FLAGS.logtostderr:
    log_to_workdir(FLAGS.workdir)
  # Imported here so that --help answers without loading JAX and TensorFlow.
  import jax

  from vireid_jax import checkpoints
  from vireid_jax import disk
  from vireid_jax import methods
  from vireid_jax.data import layouts
  from vireid_jax.training import config_checks
  from vireid_jax.training import orbax_checkpoints
  from vireid_jax.training import loop
  from vireid_jax.training import workdir_config
  from vireid_jax.training import workdir_lock

  if FLAGS.config.train.distributed:
    # Multi-host: coordinator address, process count and index come from the cluster
    # environment (SLURM, Cloud TPU, or JAX_COORDINATOR_ADDRESS & co.).
    jax.distributed.initialize()
  try:
    # Before any work: a missing ImageNet file stops the run here, not after the data build.
    checkpoints.check_pretrained(FLAGS.config)
    # The method is resolved here and handed to the loop, which never imports methods/.
    method = methods.resolve(FLAGS.config)
    loop.run(FLAGS.config, FLAGS.workdir, method, mode=FLAGS.mode,
             allow_config_change=FLAGS.override_config)
  except (layouts.DatasetError, workdir_config.ConfigMismatchError,
          orbax_checkpoints.CheckpointMismatchError, methods.base.MethodError,
          checkpoints.PretrainedWeightsError, FloatingPointError,
          workdir_lock.WorkdirLockedError, orbax_checkpoints.CheckpointCorruptError,
          disk.DiskFullError, config_checks.ConfigValueError) as error:
    logging.info("Stopped: %s", error)
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
