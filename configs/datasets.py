"""The data fields of each dataset, shared by the method configs' `get_config(dataset)`.

`use(config, dataset)` points `config.data` at "sysu", "regdb" or "llcm" in its usual folder
under data/ (data/README.md), or at "synthetic": the AGW demo's generated SYSU-MM01-layout data
(configs/synthetic.py), so every method's demo shares one generated dataset.
"""

import ml_collections

DATASETS = ("sysu", "regdb", "llcm", "synthetic")


def use(config: ml_collections.ConfigDict, dataset: str, *, method_config: str) -> None:
  """Sets the dataset fields of `config.data`.

  Args:
    config: the experiment config (from configs/default.py).
    dataset: one of `DATASETS`.
    method_config: the calling file, for the error message ("configs/mcja.py").

  Raises:
    ValueError: an unknown dataset, naming the choices.
  """
  if dataset not in DATASETS:
    raise ValueError(f"{method_config}:{dataset}: unknown dataset; choose one of "
                     f"{', '.join(DATASETS)} (e.g. --config {method_config}:sysu).")
  data = config.data
  if dataset == "sysu":
    data.dataset, data.root = "sysu", "data/SYSU-MM01"
  elif dataset == "regdb":
    data.dataset, data.root, data.trial = "regdb", "data/RegDB", 1
  elif dataset == "llcm":
    data.dataset, data.root = "llcm", "data/LLCM"
  else:
    data.dataset = "sysu"
    data.root = "data/synthetic_sysu"
    data.tfds_dir = "data/synthetic_sysu_tfds"
    # 80 % of each garment's NIR reflectance follows its visible brightness (configs/synthetic.py).
    # ir_to_visible="colour_transfer" (in a folder of its own) is the stand-in of DJANet's
    # IR→VIS translated SYSU-MM01 (vireid_jax.data.synthetic).
    data.synthetic = dict(seed=0, nir_luminance_mix=0.8, ir_to_visible="")
