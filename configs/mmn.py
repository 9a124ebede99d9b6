"""MMN (Zhang et al., ACM MM 2021) at the reference's settings (spec mmn.md).

  python -m vireid_jax.main --config configs/mmn.py:sysu --workdir runs/mmn_sysu

`get_config(dataset)` takes "sysu", "regdb", "llcm" or "synthetic" (the CPU demo). AGW's
optimiser and schedule (configs/default.py: SGD, the head at 10x the rest, warm-up, steps at
20 / 50, 81 epochs) and ImageNet start, with MMN's own:

* input: 384 x 192, pad 10, P x K = 4 x 4 pairs per batch (1,392 steps per SYSU-MM01 epoch),
  LLCM-style random erasing (fill 0 after normalisation) on every image;
* model: two stems and a shared ResNet-50 with last stride 1 and **no non-local blocks and no
  GeM** (`model.non_local`, `model.pooling`: the reference's "on" arguments are never used,
  and asking for either is an error), the middle-modality generator (1x1 convolutions starting
  at `model.mmg_init`), `model.num_stripes` stripes with a BNNeck and classifier each;
* objective: CE + the four-pair batch-hard triplet (`loss.triplet_margin`) + `loss.dcl_weight`
  x the distribution consistency loss (projection to `loss.dcl_dim`, `loss.dcl_groups` blocks);
* evaluation: no flip; "bn" of the original images is the main number, "pool" and "bn_sum"
  (the reference `test.py`'s sum of four similarity matrices) beside it, each with the
  dataset's own protocol (not `train.py`'s RegDB-style metric); on RegDB both directions
  (`test.py` reports thermal to visible, `train.py` the reverse).
"""

import ml_collections

from configs import datasets
from configs import default
from configs import synthetic


def get_config(dataset: str = "sysu") -> ml_collections.ConfigDict:
  config = default.get_config()
  datasets.use(config, dataset, method_config="configs/mmn.py")
  config.method = "mmn"

  data = config.data
  data.image_height, data.image_width = 384, 192
  data.pad = 10
  data.ids_per_batch, data.images_per_id = 4, 4
  data.random_erasing = "llcm"

  model = config.model
  model.non_local = False
  model.pooling = "avg"
  model.num_stripes = 4
  model.mmg_init = 0.333                    # every MMG convolution weight (biases 0)
  for unused in ("non_local_inner", "gem_learnable"):
    del model[unused]

  loss = ml_collections.ConfigDict()
  loss.triplet_margin = 0.3
  loss.dcl_weight = 0.2                     # the reference's --delta
  loss.dcl_dim = 256
  loss.dcl_groups = 2
  config.loss = loss

  config.train.num_epochs = 81
  config.eval.flip = False
  config.eval.features = ("pool", "bn", "bn_sum")
  config.eval.main_feature = "bn"

  if dataset == "synthetic":
    # The AGW demo's network (configs/synthetic.py) at 128 x 64: 96 x 48 leaves a 6-row layer4
    # map, which torch.chunk cuts into 3 stripes, not 4. 10 epochs of 84 steps, the schedule
    # compressed (warm-up 1 epoch, x0.1 after epochs 6 and 8).
    synthetic.use_demo_network(config)
    data.image_height, data.image_width = 128, 64
    data.pad = 3
    config.train.num_epochs = 10
    config.optim.warmup_epochs = 1
    config.optim.milestones = (6, 8)
  return config
