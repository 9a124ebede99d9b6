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
  config.data.dataset = "sysu"              # "sysu", "regdb" or "llcm"
  config.data.root = "data/SYSU-MM01"       # unpacked raw folder (data/README.md)
  config.data.trial = 1                     # RegDB only: which train/test split, 1..10
  # Compare the raw images with the dataset's known counts before building (and the decoded
  # splits after); False only for a complete download whose published counts are wrong.
  config.data.check_counts = True
  config.data.tfds_dir = "data/tfds"        # TFRecords written by the builder
  # Options for the synthetic generator; empty for a real dataset.
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.image_height = 288
  config.data.image_width = 144
  # Filter of the builders' pre-resize: "lanczos" (the AGW family) or "bicubic" (PIL BICUBIC,
  # torchvision Resize(interpolation=3): AlignGAN). A bicubic build has a folder of its own.
  config.data.resize_filter = "lanczos"
  config.data.pad = 10                      # zero padding before the random crop
  config.data.ids_per_batch = 8             # P
  config.data.images_per_id = 4             # K, per modality
  config.data.eval_batch_size = 128
  # Training input: names in the registries vireid_jax.data.sampling.SAMPLERS and
  # vireid_jax.data.views.AUGMENTATIONS; defaults are AGW's. A method's config sets its own
  # (and adds the options only its recipe reads, e.g. MCJA's vimc_cutmix_hw_swap).
  config.data.sampler = "agw"               # "agw", "djanet" (AGW's), "mcja", "domain_adaptation",
                                            # "aligngan"
  # Sampler "aligngan" only: its GAN batches' P x K (the IDE batches use ids_per_batch x
  # images_per_id), and the epoch length in iterations (its streams run on across epochs).
  config.data.gan_ids_per_batch = 4
  config.data.gan_images_per_id = 4
  config.data.batches_per_epoch = 100
  config.data.augmentation = "agw"          # views: "agw", "caj" (3), "djanet" (4), "mcja"
  config.data.random_erasing = "none"       # "agw" views: "none", "llcm" (LLCM fork, MMN), "caj"
  # Where the views are computed: "host" (tf.data, on the CPU cores), "device" (jnp inside the
  # jitted step: vireid_jax.data.device_augment; same distributions, other draws) or "auto"
  # (device on GPUs, host on CPUs and TPUs). A workdir records the resolved value.
  config.data.augment_on = "auto"
  # The target dataset of a cross-domain run (vireid_jax.data.datasets.load): empty dataset =
  # none. With one, every method is evaluated on the target's test split with the target
  # dataset's protocols (a method without a target stream, e.g. AGW: direct transfer), and a
  # domain-adaptation method (uses_target) also trains on its unlabelled training split.
  config.data.target = ml_collections.ConfigDict()
  config.data.target.dataset = ""           # "", "sysu", "regdb" or "llcm"
  config.data.target.root = ""              # its raw folder; "": the source's (same dataset only)
  config.data.target.tfds_dir = ""          # its TFRecords; "": config.data.tfds_dir
  config.data.target.trial = 1              # RegDB target: which split
  config.data.target.check_counts = True
  config.data.target.synthetic = ml_collections.ConfigDict()  # generator options, or empty
  config.data.target.domain = ""            # DAN's synthetic domain: "", "noise", "lighting",
                                            # "background" (dan.md §8), on its train and test
  # Which images the unlabelled target stream trains on (dan.md §1.3): "train" (inductive: the
  # target's training split; dan.md's proposed default [P]) or "test" (the released code's
  # transductive mode: the target's test images, which evaluation then scores).
  config.data.target.train_split = "train"
  # "none" or "parity": for a same-dataset task (e.g. SYSU → SYSU-noise), the training
  # identities split by parity of their rank among the sorted original person ids: the source
  # keeps the even ones (relabelled 0..C-1, so the class count halves), the target's training
  # split the odd ones; dan.md §1.3's stricter variant (no identity seen under both domains).
  config.data.target.identity_split = "none"
  # Sampler "domain_adaptation" only: the target batches' identities (pseudo-labels). "aligned"
  # (dan.md's resolution [P]): P labels present in both modalities at aligned slots;
  # "independent" (the released code): P per modality, drawn independently.
  config.data.target_sampler = "aligned"
  # Sampler "domain_adaptation" only: False (the released code) draws the source's AGW plan once
  # and reuses it every epoch; True draws a new one per epoch.
  config.data.redraw_source_plan = False

  config.model = ml_collections.ConfigDict()
  config.model.depth = 50
  config.model.width = 64                   # base channels (64 = torchvision ResNets)
  config.model.last_stride = 1
  config.model.non_local = True
  config.model.non_local_inner = "reference"  # "reference": width 1 (the code); "half": C/2
  config.model.pooling = "gem"              # "gem" (p = 3), "avg" or "max" (DAN)
  config.model.gem_learnable = False        # False: GeM p fixed at 3 (the reference); True: trained
  # torchvision's ImageNet ResNet-50 (.pth, or .npz from `python -m vireid_jax.checkpoints
  # convert`): both stems and the shared stages start from it, as in every reference. Never
  # downloaded: data/README.md says where it goes. "none": random init, on purpose (a warning
  # says the numbers will not be the paper's).
  config.model.pretrained = "data/pretrained/resnet50-19c8e357.pth"
  config.model.dtype = "float32"            # compute dtype; parameters stay float32

  config.loss = ml_collections.ConfigDict()
  config.loss.identity_weight = 1.0
  config.loss.triplet_weight = 1.0
  # "wrt": AGW's weighted regularised triplet; "hard": batch-hard with a margin (the reference's
  # --method base, with model.non_local=False and model.pooling="avg"; configs/sysu.py).
  config.loss.triplet = "wrt"
  config.loss.triplet_margin = 0.3          # "hard" only

  config.optim = ml_collections.ConfigDict()
  # The update rule (vireid_jax.training.optim.OPTIMIZERS): "sgd" (AGW) or "adam" (MCJA:
  # PyTorch's Adam, weight decay added to the gradient). Both take the per-epoch schedule below.
  config.optim.name = "sgd"
  config.optim.base_lr = 0.1                # head (BNNeck + classifier) learning rate
  config.optim.backbone_lr_scale = 0.1      # everything else runs at 0.1 x base
  config.optim.momentum = 0.9
  config.optim.nesterov = True
  config.optim.beta1 = 0.9                  # "adam" only, PyTorch's defaults
  config.optim.beta2 = 0.999
  config.optim.eps = 1e-8
  config.optim.weight_decay = 5e-4
  config.optim.warmup_epochs = 10
  # Warm-up multiplier at epoch e < warmup_epochs (vireid_jax.training.optim.WARMUP_STYLES):
  # "linear" (AGW: (e + 1) / W) or "linear_from_factor" (DJANet: factor + (1 − factor) · e / W).
  config.optim.warmup_style = "linear"
  config.optim.warmup_factor = 0.1          # "linear_from_factor" only
  config.optim.milestones = (20, 50)        # x decay at each
  config.optim.decay = 0.1

  config.train = ml_collections.ConfigDict()
  config.train.num_epochs = 81              # AGW trains epochs 0..80
  config.train.steps_per_epoch = -1         # -1: the reference's floor(max(Nv, Ni)/(P*K)) + 1
  config.train.log_every_steps = 50
  config.train.checkpoints_to_keep = 3
  config.train.checkpoint_every_steps = 0   # 0: at the end of every epoch only
  config.train.distributed = False          # multi-host: call jax.distributed.initialize()
  # Precision of convolutions and matrix products in training and feature extraction:
  # "default" (TF32 on recent NVIDIA GPUs, as PyTorch's cuDNN convolutions by default; one
  # bfloat16 pass on TPU; float32 on CPU), "high", or "highest" (float32 everywhere).
  config.train.matmul_precision = "default"

  config.eval = ml_collections.ConfigDict()
  # Where the evaluated test split (queries and gallery) comes from: "" = config.data.root /
  # config.data.tfds_dir. Another raw folder of the same dataset and its own TFRecords folder,
  # e.g. to score a run trained on the IR→VIS translated SYSU-MM01 (DJANet) on the original
  # test images: test_root="data/SYSU-MM01", test_tfds_dir="data/tfds". Training never reads
  # them (vireid_jax.data.datasets.load).
  config.eval.test_root = ""
  config.eval.test_tfds_dir = ""
  # Protocols (vireid_jax.evaluation.protocols names each variant in the results).
  config.eval.mode = "all"                  # SYSU-MM01: "all" or "indoor" search
  config.eval.gallery_shots = 1             # SYSU-MM01: images per (id, camera); 10 = official only
  config.eval.gallery_scheme = "agw"        # SYSU-MM01 draws: "agw" (random, seed = trial) or
                                            # "official" (rand_perm_cam.mat, as MCJA/MPANet)
  config.eval.rand_perm_cam = ""            # official kit's rand_perm_cam.mat, for "official"
  # RegDB: AGW's default direction is visible_to_thermal; the papers report both.
  config.eval.regdb_directions = ("visible_to_thermal", "thermal_to_visible")
  config.eval.regdb_cmc = "standard"        # "standard" (AGW) or "deduplicated" (MCJA)
  # LLCM: "ir_to_vis" (the reference's default); "vis_to_ir_swapped" is what its test.py
  # reports as VIS→IR (sampled NIR queries vs all VIS); "vis_to_ir" = VIS queries.
  config.eval.llcm_directions = ("ir_to_vis", "vis_to_ir_swapped")
  config.eval.num_trials = 10               # SYSU/LLCM gallery draws; RegDB: one per run
  config.eval.max_rank = 20
  # Test-time options.
  config.eval.features = ("pool", "bn")     # "bn" (after the BNNeck) is the main number
  config.eval.main_feature = "bn"
  config.eval.flip = False                  # average with the mirrored image (CAJ); AGW: off
  config.eval.distance = "cosine"           # "cosine" (the references) or "euclidean" (SYSU MATLAB)
  config.eval.rerank = "none"               # "none", "k_reciprocal" (Zhong et al.) or "mser" (MCJA)
  # Zhong et al. CVPR 2017's defaults.
  config.eval.k_reciprocal = ml_collections.ConfigDict(dict(k1=20, k2=6, lambda_value=0.3))
  # MCJA's MSER settings per dataset (utils/eval_data.py); MCJA has no LLCM setting, so LLCM
  # (sampled single-shot galleries, like SYSU) uses SYSU's.
  config.eval.mser = ml_collections.ConfigDict(dict(
      sysu=dict(k1=40, k2=20, lambda_value=0.3, probe_neighbours_only=True),
      regdb=dict(k1=50, k2=10, lambda_value=0.2, probe_neighbours_only=False),
      llcm=dict(k1=40, k2=20, lambda_value=0.3, probe_neighbours_only=True),
  ))
  # Rows per block of the metric and re-ranking loops. 4096 holds SYSU-MM01's 3,803 queries in
  # one block: its ten trials' metrics from features take half the time they take in blocks of
  # 256 (benchmarks/RESULTS.md); intermediates are [block, gallery or N] (about 60 MB at 4,096
  # x 4,104 in re-ranking).
  config.eval.query_block_size = 4096
  # Pictures (written next to results.json).
  config.eval.ranking_queries = 8           # queries in the ranked-retrieval grid (0 = none)
  config.eval.ranking_top_k = 10            # gallery images shown per query (grid, index.html)
  config.eval.before_training = False       # also evaluate the initial model
  # Evaluation during training on the test split (main protocol, main feature, gallery trial
  # 0): after every 0-based epoch e > 0 with e % every_epochs == 0; 0 = only at the end. The
  # references use 2. Written to TensorBoard (eval/*), eval_curve.json and results.json.
  config.eval.every_epochs = 0
  # "last": report the final model. "best": keep and report the checkpoint with the best R1 of
  # those evaluations, as the references do (chosen on the test split: inflated).
  config.eval.select = "last"
  # --mode=eval restores this (a workdir, its checkpoints folder or one step's folder);
  # empty: the newest checkpoint of --workdir.
  config.eval.checkpoint = ""
  return config
