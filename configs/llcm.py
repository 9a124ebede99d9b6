"""AGW on LLCM as the LLCM authors' fork of AGW trains it (81 epochs, 288 x 144).

The fork is AGW plus random erasing (p = 0.5, fill 0 after normalisation) on every training
image (spec baseline_data_eval.md §3.2); every other setting is SYSU-MM01's (§6).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.dataset = "llcm"
  config.data.root = "data/LLCM"
  config.data.random_erasing = "llcm"
  return config
