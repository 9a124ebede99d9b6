"""The notebooks' experiment (notebooks/): the demo (configs/synthetic.py) at three lengths.

    --config configs/notebook.py          # "short"
    --config configs/notebook.py:full     # the demo as `make demo` runs it

* "full": configs/synthetic.py unchanged (12 epochs; about 4 minutes on two CPU cores, well
  under one on a Colab GPU).
* "short" (the notebooks' default): the same data and network, 4 epochs with the schedule
  compressed again (1 warm-up epoch, x0.1 after epoch 3). It learns: the trained R1 is far
  above the untrained one, below the full run's.
* "tiny": what the test suite executes the notebooks with on CPU: an 8-identity dataset at
  48 x 24 in a folder of its own, a width-8 network, two epochs of three steps and two gallery
  trials. It checks that every cell runs, not that anything is learnt.
"""

from configs import synthetic

SETTINGS = ("tiny", "short", "full")


def get_config(setting: str = "short"):
  if setting not in SETTINGS:
    raise ValueError(f"configs/notebook.py:{setting}: unknown setting; choose one of "
                     f"{', '.join(SETTINGS)}.")
  config = synthetic.get_config()
  if setting == "short":
    config.train.num_epochs = 4
    config.optim.warmup_epochs = 1
    config.optim.milestones = (3,)
  elif setting == "tiny":
    # Its own folders: the demo's data (data/synthetic_sysu) has other generator options.
    config.data.root = "data/synthetic_sysu_tiny"
    config.data.tfds_dir = "data/synthetic_sysu_tiny_tfds"
    config.data.synthetic = dict(seed=1, num_train_ids=8, num_val_ids=2, num_test_ids=4,
                                 images_per_camera=(1, 2), image_height=48, image_width=24,
                                 nir_luminance_mix=0.8)
    config.data.image_height = 48
    config.data.image_width = 24
    config.data.eval_batch_size = 16
    config.data.ids_per_batch = 4
    config.data.images_per_id = 2
    config.model.width = 8
    config.train.num_epochs = 2
    config.train.steps_per_epoch = 3
    config.train.log_every_steps = 1
    config.optim.warmup_epochs = 1
    config.optim.milestones = (1,)
    config.eval.num_trials = 2
    config.eval.ranking_queries = 2
    config.eval.ranking_top_k = 5
  return config
