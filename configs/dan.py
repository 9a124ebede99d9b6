"""DAN (Fu et al., TCSVT 2022): cross-modal cross-domain adaptation (spec dan.md).

  python -m vireid_jax.main --config configs/dan.py:sysu_to_regdb --workdir runs/dan_s2r
  python -m vireid_jax.main --config configs/dan.py:synthetic --workdir runs/dan_demo

`get_config(task)` takes `<source>_to_<target>[_<domain>]` with source and target among "sysu",
"regdb", "llcm" and domain among "noise", "lighting", "background" (a same-dataset task needs
one, e.g. "sysu_to_sysu_noise"); the short forms "sysu" (= "sysu_to_regdb"), "regdb"
(= "regdb_to_sysu") and "llcm" (= "llcm_to_regdb"); and "synthetic" (the CPU demo: the
synthetic RegDB layout to the synthetic SYSU-MM01 layout) or "synthetic_<domain>" (that
target in a synthetic domain).

The reference's settings (dan.md §2–§6): AGW's two-stream ResNet-50 from ImageNet without
non-local blocks and with max pooling; 288 x 144 images, pad 10, flip; 3 ids x 4 images per
modality and domain; 16 epochs of the source's AGW length, the source plan drawn once; SGD
(Nesterov, 0.9, 5e-4), backbone 0.01, D / BNNeck / classifier 0.1, constant (the release never
applies its schedule; `--config.optim.milestones='(10,)'` gives the [P] decay). [P] marks the
spec's proposed repairs, our defaults; each release behaviour is a field value:
`dan.daa_input="softmax"`, `dan.plg="release"`, `dan.memory_symmetric=False`,
`dan.cma="release"`, `data.target_sampler="independent"`, `data.target.train_split="test"`.

Evaluation (§7 [P]): the final model, "pool" (the main number) and "bn", on the target's test
split under its protocol: SYSU-MM01 all-search single-shot, 10 draws (`--config.eval.mode=indoor`
for indoor); RegDB both directions on `data.target.trial` (one run per trial 1–10, combined with
`vireid_jax.evaluation.aggregate`). A trained model on a synthetic domain:
`--mode eval --config configs/dan.py:sysu_to_regdb_noise --config.eval.checkpoint=<run>`.

Ablations (§9) are configs: source only (`loss.adversarial_weight=0`, `loss.memory_weight=0`,
`loss.cma_mean_weight=0`, `loss.cma_std_weight=0`), + DAA (adversarial weight 1), + DAA + PLG
(memory weight 0.1), full (the default).
"""

import ml_collections

from configs import datasets
from configs import default
from configs import synthetic

DATASETS = ("sysu", "regdb", "llcm")
DOMAINS = ("noise", "lighting", "background")
SHORT_TASKS = {"sysu": "sysu_to_regdb", "regdb": "regdb_to_sysu", "llcm": "llcm_to_regdb"}
# The usual raw folder of each dataset (configs/datasets.py, data/README.md).
ROOTS = {"sysu": "data/SYSU-MM01", "regdb": "data/RegDB", "llcm": "data/LLCM"}


def parse_task(task: str) -> tuple[str, str, str]:
  """(source, target, domain) of a task name (module doc); ValueError naming the choices."""
  name = SHORT_TASKS.get(task, task)
  source, _, rest = name.partition("_to_")
  target, _, domain = rest.partition("_")
  if source not in DATASETS or target not in DATASETS or (domain and domain not in DOMAINS):
    raise ValueError(
        f"configs/dan.py:{task}: unknown task; use <source>_to_<target>[_<domain>] with datasets "
        f"{', '.join(DATASETS)} and domains {', '.join(DOMAINS)} (e.g. sysu_to_regdb, "
        f"regdb_to_sysu_noise), one of {', '.join(SHORT_TASKS)}, synthetic or "
        f"synthetic_<domain>.")
  if source == target and not domain:
    raise ValueError(f"configs/dan.py:{task}: a same-dataset task needs a target domain, e.g. "
                     f"{source}_to_{target}_noise (the target would be the source itself).")
  return source, target, domain


def get_config(task: str = "sysu_to_regdb") -> ml_collections.ConfigDict:
  config = default.get_config()
  config.method = "dan"
  synthetic_task = task == "synthetic" or task.startswith("synthetic_")
  if synthetic_task:
    domain = task[len("synthetic_"):] if task != "synthetic" else ""
    if domain and domain not in DOMAINS:
      raise ValueError(f"configs/dan.py:{task}: unknown domain {domain!r}; choose one of "
                       f"{', '.join(DOMAINS)}.")
    source, target = "regdb", "sysu"
  else:
    source, target, domain = parse_task(task)
  datasets.use(config, source, method_config="configs/dan.py")
  config.data.target.dataset = target
  config.data.target.root = ROOTS[target] if target != source else ""
  config.data.target.domain = domain

  config.data.sampler = "domain_adaptation"
  config.data.ids_per_batch = 3
  config.data.images_per_id = 4
  config.data.target_sampler = "aligned"    # [P]; "independent": the release
  config.data.redraw_source_plan = False    # the release draws the source plan once

  config.model.non_local = False
  config.model.pooling = "max"

  config.optim.base_lr = 0.1
  config.optim.backbone_lr_scale = 0.1
  config.optim.warmup_epochs = 0
  config.optim.milestones = ()              # constant (the release); (10,): the [P] decay

  loss = ml_collections.ConfigDict()
  loss.identity_weight = 1.0
  loss.triplet_weight = 1.0
  loss.triplet_margin = 0.3
  loss.adversarial_weight = 1.0             # each of L_adv^v, L_adv^i
  loss.memory_weight = 0.1                  # each of L_mem^v, L_mem^i
  loss.cma_mean_weight = 1.0
  loss.cma_std_weight = 1.0
  config.loss = loss

  dan = ml_collections.ConfigDict()
  dan.daa_input = "bn"                      # [P]; "softmax": the classifier's softmax (release)
  dan.adversarial_reduction = "sum"         # the release's summed BCE; "mean": / rows
  dan.discriminator_hidden = 1024
  dan.discriminator_dropout = 0.5
  dan.grl_alpha = 10.0                      # λ(n) = 2 / (1 + exp(-alpha n / max_iter)) - 1
  dan.grl_max_iter = 10000.0
  dan.plg = "mean"                          # [P] exact means + cosine; "release": halving + L2
  dan.reliable_neighbours = 5
  dan.memory_instance_weight = 0.4
  dan.memory_temperature = 1.0
  dan.memory_symmetric = True               # [P]; False: the release's IR neighbour term
  dan.cma = "corrected"                     # [P]; "release": both moments from the RGB half
  config.dan = dan

  config.train.num_epochs = 16
  config.eval.features = ("pool", "bn")
  config.eval.main_feature = "pool"

  if synthetic_task:
    # The synthetic RegDB layout (48 training ids x 10 images per modality: 41 steps per epoch)
    # to the synthetic SYSU-MM01 layout, on the AGW demo's network and images.
    config.data.trial = 1
    config.data.root = "data/synthetic_regdb"
    config.data.tfds_dir = "data/synthetic_regdb_tfds"
    config.data.synthetic = dict(seed=0, nir_luminance_mix=0.8)
    config.data.target.root = "data/synthetic_sysu"
    config.data.target.tfds_dir = "data/synthetic_sysu_tfds"
    config.data.target.synthetic = dict(seed=0, nir_luminance_mix=0.8, ir_to_visible="")
    synthetic.use_demo_network(config)
    # The summed BCE (24 rows) over 2048-norm-scale BNNeck features at D's rate 0.1 throws D's
    # logits into the thousands within a step and the run to NaN by step 5 here (the release's
    # D saw softmax vectors, of norm <= 1); the spec's stability option, the mean, trains.
    config.dan.adversarial_reduction = "mean"
  return config
