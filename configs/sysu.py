"""AGW on SYSU-MM01, all-search single-shot, as in the reference (81 epochs, 288 x 144)."""

from configs import default


def get_config():
  config = default.get_config()
  config.data.root = "data/SYSU-MM01"
  return config
