"""Train and evaluate a visible-infrared re-ID method from a config file.

  python -m vireid_jax.main --config configs/sysu.py --workdir runs/sysu \
      [--config.train.num_epochs=40] [--mode train|eval|train_and_eval]

The workdir holds checkpoints (a run resumes from the newest one), TensorBoard summaries and,
after evaluation, results.json.
"""

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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # Imported here so that --help answers without loading JAX and TensorFlow.
  import jax

  from vireid_jax import methods
  from vireid_jax.data import layouts
  from vireid_jax.training import orbax_checkpoints
  from vireid_jax.training import loop
  from vireid_jax.training import workdir_config

  if FLAGS.config.train.distributed:
    # Multi-host: coordinator address, process count and index come from the cluster
    # environment (SLURM, Cloud TPU, or JAX_COORDINATOR_ADDRESS & co.).
    jax.distributed.initialize()
  try:
    # The method is resolved here and handed to the loop, which never imports methods/.
    method = methods.resolve(FLAGS.config)
    loop.run(FLAGS.config, FLAGS.workdir, method, mode=FLAGS.mode,
             allow_config_change=FLAGS.override_config)
  except (layouts.DatasetError, workdir_config.ConfigMismatchError,
          orbax_checkpoints.CheckpointMismatchError, methods.base.MethodError,
          FloatingPointError) as error:
    logging.error("%s", error)
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
