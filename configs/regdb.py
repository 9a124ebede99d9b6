"""AGW on RegDB, one of its ten train/test splits, as in the reference (81 epochs, 288 x 144).

The reference trains and evaluates one model per trial and reports the mean over the ten:
run this config once per trial (`--config.data.trial=1` … `10`, a workdir each). Every other
setting is SYSU-MM01's (spec baseline_data_eval.md §6); an epoch is 65 batches on RegDB.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.dataset = "regdb"
  config.data.root = "data/RegDB"
  config.data.trial = 1                     # 1..10
  return config
