"""AlignGAN (joint pixel and feature alignment) at the reference's settings (spec aligngan.md).

  python -m vireid_jax.main --config configs/aligngan.py:sysu --workdir runs/aligngan_sysu

`get_config(dataset)` takes "sysu", "regdb", "llcm" or "synthetic" (the CPU demo).

* Data (§1): images stored at 128 × 128 (aspect not kept) with bicubic resizing, in [−1, 1]
  for the pixel module; flip-only augmentation; the "aligngan" sampler: IDE batches 18 × 4
  and GAN batches 4 × 4 per modality, slot k of RGB and IR of one identity, streams indexed by
  the global iteration.
* Networks (§2): generators of width 64 with 4 residual blocks, PatchGAN discriminators of
  width 64 with 4 hidden layers, the joint D_ir; an ImageNet ResNet-50 encoder (last stride 1)
  at 384 × 192 behind the adapter, the head (bottleneck 256, embedding 256, dropout 0.5).
* Objectives (§3): weights and the triplet margin in `config.aligngan`.
* Optimisation (§4): Adam 2e-4 (β 0.5 / 0.999) per pixel player; SGD-Nesterov 0.2 for the
  head and 0.02 for the encoder, momentum 0.9, decay 5e-4; 50 / 100 / 101 epochs of 100
  iterations (feature warm-up / pixel warm-up / joint); every rate ×0.1 from epoch 200.
* Evaluation (§5): the official SYSU-MM01 protocol (rand_perm_cam.mat galleries, 10 trials),
  cosine, all-search single-shot (`--config.eval.mode=indoor`, `--config.eval.gallery_shots=10`
  for the others), on the final model; the feature is "pool" (flip after the translation).
  RegDB and LLCM have no reference loaders: same model and schedule, their standard protocols.
"""

import ml_collections

from configs import datasets
from configs import default


def get_config(dataset: str = "sysu") -> ml_collections.ConfigDict:
  config = default.get_config()
  datasets.use(config, dataset, method_config="configs/aligngan.py")
  config.method = "aligngan"

  data = config.data
  data.sampler = "aligngan"
  data.augmentation = "agw"                 # with pad 0: a random horizontal flip only
  data.pad = 0
  data.image_height, data.image_width = 128, 128
  data.resize_filter = "bicubic"            # torchvision Resize(interpolation=3)
  data.ids_per_batch, data.images_per_id = 18, 4          # IDE batches (p_ide, k_ide)
  data.gan_ids_per_batch, data.gan_images_per_id = 4, 4   # GAN batches (p_gan, k_gan)
  data.batches_per_epoch = 100              # one reference "step" of 100 iterations

  model = config.model                      # the encoder
  model.depth, model.width = 50, 64
  for unused in ("last_stride", "non_local", "non_local_inner", "pooling", "gem_learnable"):
    del model[unused]                       # always last stride 1, plain ResNet, average pool

  gan = ml_collections.ConfigDict()
  # Networks (§2).
  gan.generator_dim = 64
  gan.residual_blocks = 4
  gan.discriminator_dim = 64
  gan.discriminator_layers = 4              # 128 → 4 x 4 patch scores
  gan.encoder_input_size = (384, 192)       # the adapter's bilinear resize
  gan.bottle_dim = 256
  gan.embedding_dim = 256
  gan.dropout = 0.5                         # before the classification path's bottleneck
  gan.remat_encoder = False                 # True: recompute encoder activations (memory)
  # Objectives (§3).
  gan.margin = 1.0                          # cosine triplet
  gan.cycle_weight = 10.0
  gan.identity_mapping_weight = 5.0
  gan.pixel_triplet_weight = 0.1            # lambda_pixel_tri
  gan.pixel_identity_weight = 0.1           # lambda_pixel_cls
  gan.feature_identity_weight = 1.0         # lambda_feature_cls
  gan.feature_triplet_weight = 1.0          # lambda_feature_triplet
  gan.feature_adversarial_weight = 0.1      # lambda_feature_gan
  # Optimisers (§4.1).
  gan.pixel_lr = 2e-4
  gan.pixel_beta1, gan.pixel_beta2, gan.pixel_eps = 0.5, 0.999, 1e-8
  gan.feature_lr = 0.2                      # the head's; the encoder runs at encoder_lr_scale x
  gan.encoder_lr_scale = 0.1
  gan.feature_momentum = 0.9
  gan.feature_weight_decay = 5e-4
  # Schedule (§4.2), in epochs of data.batches_per_epoch iterations.
  gan.feature_warmup_epochs = 50
  gan.pixel_warmup_epochs = 100
  gan.decay_epoch = 200                     # every rate x decay from here on
  gan.decay = 0.1
  # Test time (§5.1): the generator's instance norms with their running statistics (the
  # reference's eval mode) or per image ("instance").
  gan.test_instance_norm = "running"
  # Which saved step of a release folder checkpoints.load_pytorch reads (-1: the latest).
  gan.import_index = -1
  config.aligngan = gan
  config.train.num_epochs = 251             # 50 + 100 + 101 joint

  # The loss / optim blocks describe AGW's single network; AlignGAN's are in config.aligngan.
  del config["loss"]
  del config["optim"]

  evaluation = config.eval
  evaluation.features = ("pool",)
  evaluation.main_feature = "pool"
  evaluation.flip = False                   # the feature flips after the translation itself
  evaluation.distance = "cosine"
  evaluation.regdb_directions = ("visible_to_thermal", "thermal_to_visible")
  if dataset == "sysu":
    evaluation.gallery_scheme = "official"
    evaluation.rand_perm_cam = "data/SYSU-MM01/exp/rand_perm_cam.mat"
  elif dataset == "synthetic":
    _synthetic(config)
  return config


def _synthetic(config: ml_collections.ConfigDict) -> None:
  """The CPU demo on the AGW demo's generated SYSU-MM01 data (configs/datasets.py)."""
  data, gan = config.data, config.aligngan
  data.image_height, data.image_width = 64, 32
  data.ids_per_batch, data.images_per_id = 8, 4
  data.gan_ids_per_batch, data.gan_images_per_id = 2, 4
  data.batches_per_epoch = 20
  data.eval_batch_size = 128
  gan.generator_dim = 8
  gan.residual_blocks = 2
  gan.discriminator_dim = 8
  gan.encoder_input_size = (96, 48)
  config.model.depth, config.model.width = 18, 16
  config.model.pretrained = "none"          # no ImageNet weights exist for this network
  # From scratch the encoder learns at the head's rate (it has no ImageNet start to keep).
  gan.encoder_lr_scale = 1.0
  gan.feature_lr = 0.1
  gan.feature_warmup_epochs = 5
  gan.pixel_warmup_epochs = 3
  gan.decay_epoch = 18                      # joint epoch 10
  config.train.num_epochs = 23              # 5 + 3 + 15
  config.train.log_every_steps = 10
  config.eval.gallery_scheme = "agw"        # the synthetic data has no rand_perm_cam.mat
  config.eval.before_training = True
