"""AGW on SYSU-MM01, all-search single-shot, as in the reference (81 epochs, 288 x 144).

Both stems and the shared stages start from torchvision's ImageNet ResNet-50, which must be at
data/pretrained/resnet50-19c8e357.pth (data/README.md); the run stops at once, naming the file,
when it is missing. `--config.model.pretrained=none` trains from scratch on purpose.

The reference's `--method base` (no non-local blocks, average pooling, batch-hard triplet with
margin 0.3; spec baseline_data_eval.md §4.6) is this config with

  --config.model.non_local=False --config.model.pooling=avg --config.loss.triplet=hard \
  --config.loss.triplet_margin=0.3

The references evaluate on the test split every other epoch and keep the best checkpoint;
`--config.eval.every_epochs=2 --config.eval.select=best` does the same (and inflates the
number: README, "Evaluation during training").
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.root = "data/SYSU-MM01"
  return config
