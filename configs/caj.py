"""CAJ (Ye et al., ICCV 2021) at the reference's settings (spec baseline_data_eval.md §3.3, §5.5–5.7).

  python -m vireid_jax.main --config configs/caj.py:sysu --workdir runs/caj_sysu

`get_config(dataset)` takes "sysu", "regdb", "llcm" or "synthetic" (the CPU demo). Everything
is AGW's (configs/default.py: ImageNet ResNet-50 with non-local blocks and GeM, 288 x 144, pad
10, P x K = 8 x 4 per modality, SGD with the head at 10x the backbone's rate, warm-up and steps
at 20 / 50) except:

* input: three views per sampled pair (`data.augmentation = "caj"`: visible, channel-exchanged
  visible, channel-adaptive-grey infrared, all with CAJ's erasing);
* objective: CE + the squared adaptive-weight triplet (α = `loss.adp_alpha`, γ =
  `loss.adp_gamma`, `loss.adp_square`) + `loss.kl_weight` · KL at `loss.kl_temperature`, the
  weight 0 as in the reference (its `--kl` default, which its README command keeps);
* 100 epochs (AGW: 81);
* evaluation: features averaged with the mirror image's and re-normalised (`eval.flip`, the
  reference's `testa.py`), "pool" and "bn", "bn" the main number.

The `--augc` / `--rande` flags of the reference change nothing (spec §3.3.4) and have no field.
"""

import ml_collections

from configs import datasets
from configs import default
from configs import synthetic


def get_config(dataset: str = "sysu") -> ml_collections.ConfigDict:
  config = default.get_config()
  datasets.use(config, dataset, method_config="configs/caj.py")
  config.method = "caj"
  config.data.augmentation = "caj"

  loss = ml_collections.ConfigDict()
  loss.identity_weight = 1.0
  loss.triplet_weight = 1.0
  loss.adp_alpha = 1.0
  loss.adp_gamma = 1.0
  loss.adp_square = True
  loss.kl_weight = 0.0                      # the reference's --kl default: no effect
  loss.kl_temperature = 3.0
  config.loss = loss

  config.train.num_epochs = 100             # epochs 0..99
  config.eval.flip = True

  if dataset == "synthetic":
    # The AGW demo's network (configs/synthetic.py), 20 epochs of 42 steps, the schedule
    # compressed as the AGW demo's.
    synthetic.use_demo_network(config)
    config.train.num_epochs = 20
    config.optim.warmup_epochs = 2
    config.optim.milestones = (14, 18)
  return config
