"""Fields shared by every experiment, at the AGW paper's settings (spec baseline §4–7).

Experiment files import this and override what they change; the config is locked, so a
mistyped `--config.some_key=...` is an error rather than a silently ignored setting.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.method = "agw"

  config.data = ml_collections.ConfigDict()
  config.data.dataset = "sysu"
  config.data.root = "data/SYSU-MM01"       # unpacked raw folder (data/README.md)
  config.data.tfds_dir = "data/tfds"        # TFRecords written by the builder
  # Options for the synthetic generator; empty for a real dataset.
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.image_height = 288
  config.data.image_width = 144
  config.data.pad = 10                      # zero padding before the random crop
  config.data.ids_per_batch = 8             # P
  config.data.images_per_id = 4             # K, per modality
  config.data.eval_batch_size = 128

  config.model = ml_collections.ConfigDict()
  config.model.depth = 50
  config.model.width = 64                   # base channels (64 = torchvision ResNets)
  config.model.last_stride = 1
  config.model.non_local = True
  config.model.non_local_inner = "reference"  # "reference": width 1 (the code); "half": C/2
  config.model.pooling = "gem"              # "gem" (p = 3) or "avg"
  config.model.dtype = "float32"            # compute dtype; parameters stay float32

  config.loss = ml_collections.ConfigDict()
  config.loss.identity_weight = 1.0
  config.loss.triplet_weight = 1.0

  config.optim = ml_collections.ConfigDict()
  config.optim.base_lr = 0.1                # head (BNNeck + classifier) learning rate
  config.optim.backbone_lr_scale = 0.1      # everything else runs at 0.1 x base
  config.optim.momentum = 0.9
  config.optim.nesterov = True
  config.optim.weight_decay = 5e-4
  config.optim.warmup_epochs = 10
  config.optim.milestones = (20, 50)        # x decay at each
  config.optim.decay = 0.1

  config.train = ml_collections.ConfigDict()
  config.train.num_epochs = 81              # AGW trains epochs 0..80
  config.train.steps_per_epoch = -1         # -1: the reference's floor(max(Nv, Ni)/(P*K)) + 1
  config.train.log_every_steps = 50
  config.train.checkpoints_to_keep = 3

  config.eval = ml_collections.ConfigDict()
  config.eval.protocol = "sysu"
  config.eval.mode = "all"                  # "all" or "indoor" search
  config.eval.num_trials = 10
  config.eval.max_rank = 20
  config.eval.features = ("pool", "bn")     # "bn" (after the BNNeck) is the main number
  config.eval.main_feature = "bn"
  config.eval.before_training = False       # also evaluate the initial model
  return config
