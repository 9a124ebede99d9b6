"""TFDS builder for SYSU-MM01 (and the synthetic dataset written in its layout).

The builder never downloads: SYSU-MM01 is gated, so it reads the unpacked raw folder given as
the manual directory (layout: `vireid_jax.data.layouts`, `data/README.md`). Images are
pre-resized to the configured size with Lanczos, as the reference's `pre_process_sysu.py` does
(spec §1.1.4), and stored losslessly (PNG) so no second lossy step is added.

Splits: `train` = train ∪ val ids (the reference trains on both; 395 ids on SYSU-MM01), visible
records then infrared records in the reference's order, with training labels; `test` = every
image of the test ids in all six cameras, label -1 (queries and gallery candidates).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from vireid_jax.data import layouts

MODALITIES = ("visible", "infrared")


@dataclasses.dataclass
class SysuMM01Config(tfds.core.BuilderConfig):
  """Stored image size (H x W); the paper setting is 288 x 144."""

  image_height: int = 288
  image_width: int = 144


def config_for_size(image_height: int, image_width: int) -> SysuMM01Config:
  return SysuMM01Config(name=f"{image_height}x{image_width}", image_height=image_height,
                        image_width=image_width)


def load_resized_image(path: str, image_height: int, image_width: int) -> np.ndarray:
  """Decode an image file to [H, W, 3] uint8, Lanczos-resized ignoring the aspect ratio.

  Raises:
    ValueError naming the file when it cannot be decoded: a corrupt file must stop the build
    rather than become a black sample.
  """
  try:
    with Image.open(path) as image:
      # Some decoders give IR JPEGs one channel; the reference assumes three.
      image = image.convert("RGB")
      image = image.resize((image_width, image_height), Image.LANCZOS)
      return np.asarray(image, dtype=np.uint8)
  except (OSError, SyntaxError, ValueError) as error:
    raise ValueError(f"Cannot decode image {path}: {error}. Re-extract the dataset or delete "
                     "the file and rebuild.") from error


class SysuMm01(tfds.core.GeneratorBasedBuilder):
  """SYSU-MM01 RGB-IR person re-identification (Wu et al., ICCV 2017)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [config_for_size(288, 144)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  SYSU-MM01 is distributed by its authors on request. Unpack it so that the manual directory
  holds cam1/ ... cam6/ and exp/{train,val,test}_id.txt (see data/README.md). Without it, use
  configs/synthetic.py, which writes a synthetic dataset in the same layout.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    height, width = self.builder_config.image_height, self.builder_config.image_width
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(height, width, 3), encoding_format="png"),
            "person_id": np.int32,
            "label": np.int32,
            "camera": np.int32,
            "modality": tfds.features.ClassLabel(names=MODALITIES),
            "relative_path": tfds.features.Text(),
        }),
        # Keep the reference's record order, so positions are stable across rebuilds.
        disable_shuffling=True,
        homepage="https://github.com/wuancong/SYSU-MM01",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = dl_manager.manual_dir
    layouts.check_sysu_root(root)
    visible, infrared = layouts.sysu_train_records(root)
    return {
        "train": self._generate_examples(visible + infrared),
        "test": self._generate_examples(layouts.sysu_test_records(root)),
    }

  def _generate_examples(self, records):
    height, width = self.builder_config.image_height, self.builder_config.image_width
    for position, record in enumerate(records):
      yield position, {
          "image": load_resized_image(record.path, height, width),
          "person_id": record.person_id,
          "label": record.label,
          "camera": record.camera,
          "modality": record.modality,
          "relative_path": record.relative_path,
      }
