"""AGW on the synthetic RGB-IR dataset in RegDB's layout: configs/regdb.py's CPU counterpart.

The dataset is generated under data/ on first use in RegDB's exact raw layout (visible and
thermal images of 96 ids in co-registered pairs, ten trials of index files) and goes through
the same builder, pipeline and protocol as the real one. Model, image size and schedule are
the SYSU-MM01 demo's (configs/synthetic.py): a narrow ResNet-18 on 96 x 48 images that trains
in minutes on two CPU cores (48 training ids x 10 images: 16 batches an epoch).
"""

from configs import synthetic


def get_config():
  config = synthetic.get_config()
  config.data.dataset = "regdb"
  config.data.trial = 1                     # 1..10, as on the real data
  config.data.root = "data/synthetic_regdb"
  config.data.tfds_dir = "data/synthetic_regdb_tfds"
  # As the SYSU-MM01 demo: 80 % of each NIR reflectance follows the visible brightness.
  config.data.synthetic = dict(seed=0, nir_luminance_mix=0.8)
  return config
