"""AGW (LLCM fork) on the synthetic RGB-IR dataset in LLCM's layout: configs/llcm.py on a CPU.

The dataset is generated under data/ on first use in LLCM's exact raw layout (nine cameras
filming in both modalities, low-light visible images; 80 training and 24 test ids) and goes
through the same builder, pipeline and protocol as the real one. Model, image size and schedule
are the SYSU-MM01 demo's (configs/synthetic.py); training adds the LLCM fork's random erasing,
as configs/llcm.py does.
"""

from configs import synthetic


def get_config():
  config = synthetic.get_config()
  config.data.dataset = "llcm"
  config.data.root = "data/synthetic_llcm"
  config.data.tfds_dir = "data/synthetic_llcm_tfds"
  # As the SYSU-MM01 demo: 80 % of each NIR reflectance follows the visible brightness.
  config.data.synthetic = dict(seed=0, nir_luminance_mix=0.8)
  config.data.random_erasing = "llcm"
  return config
