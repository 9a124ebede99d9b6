"""What the three TFDS builders share: the image size config, decoding, features and checks.

Each builder reads an unpacked raw folder given as the manual directory (SYSU-MM01, RegDB and
LLCM are gated: nothing is downloaded), enumerates its records with `vireid_jax.data.layouts`,
checks them against the dataset's known counts (`integrity`) before writing anything, and
writes one example per image: the image pre-resized to the configured size with Lanczos, as the
references' loaders do (spec §1.1.4, §1.2, §1.3), stored losslessly (PNG) so no second lossy
step is added.

TFDS writes a build into a temporary folder and renames it when every split is complete, so a
build that fails (an unreadable image, a wrong count) or is killed never leaves a dataset that
later loads as complete; the next build starts over.

Each build records the raw folder it read (`integrity.raw_folder_record`: absolute path and a
content fingerprint) in its `DatasetInfo.metadata` (TFDS's `metadata.json` beside the
TFRecords), so that `vireid_jax.data.datasets.build` can refuse TFRecords of another folder
with the same counts (an IR→VIS translated copy of SYSU-MM01).
"""

from __future__ import annotations

import abc
import dataclasses
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from vireid_jax.data import layouts
from vireid_jax.data.builders import integrity

MODALITIES = layouts.MODALITIES


@dataclasses.dataclass
class ImageSizeConfig(tfds.core.BuilderConfig):
  """Stored image size (H x W); the papers use 288 x 144.

  `check_counts=False` skips the comparison with the dataset's known counts (use it only for a
  complete download whose published counts are wrong); every other check stays.
  """

  image_height: int = 288
  image_width: int = 144
  check_counts: bool = True


def config_for_size(image_height: int, image_width: int,
                    check_counts: bool = True) -> ImageSizeConfig:
  """The config of a dataset without trials, named "<H>x<W>"."""
  return ImageSizeConfig(name=f"{image_height}x{image_width}", image_height=image_height,
                         image_width=image_width, check_counts=check_counts)


def load_resized_image(path: str, image_height: int, image_width: int) -> np.ndarray:
  """Decodes an image file to [H, W, 3] uint8, Lanczos-resized ignoring the aspect ratio.

  Raises:
    layouts.DatasetIntegrityError (a ValueError) naming the file when it cannot be read or
    decoded, truncated files included: a corrupt file must stop the build rather than become a
    black sample.
  """
  try:
    with Image.open(path) as image:
      # Some decoders give IR images one channel; the references assume three.
      image = image.convert("RGB")
      image = image.resize((image_width, image_height), Image.LANCZOS)
      return np.asarray(image, dtype=np.uint8)
  except (OSError, SyntaxError, ValueError) as error:
    raise layouts.DatasetIntegrityError(
      f"Cannot decode image {path}: {error}. Re-extract the dataset (or restore that file) "
      "and build again.") from error


class ReIdBuilder(tfds.core.GeneratorBasedBuilder):
  """A visible-infrared re-ID dataset: splits of records in, one example per image out.

  Subclasses name their dataset (`DATASET`, a key of `layouts.DISPLAY_NAMES`), give
  `split_records` and their configs; everything else is shared.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  DATASET: str
  HOMEPAGE: str

  @abc.abstractmethod
  def split_records(self, root: pathlib.Path) -> dict[str, list[layouts.Record]]:
    """{"train": records with labels 0..C-1, "test": records with label -1}, in stored order."""

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
        homepage=self.HOMEPAGE,
        # Filled by `_split_generators`: {integrity.RAW_FOLDER_KEY: raw_folder_record}.
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = pathlib.Path(dl_manager.manual_dir)
    splits = self.split_records(root)
    if self.builder_config.check_counts:
      integrity.check_counts(self.DATASET, root, count_splits(splits))
    self.info.metadata[integrity.RAW_FOLDER_KEY] = integrity.raw_folder_record(root, splits)
    return {name: self._generate_examples(records) for name, records in splits.items()}

  def _generate_examples(self, records: Sequence[layouts.Record]):
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


def count_splits(splits: dict[str, Iterable[layouts.Record]]) -> dict[str, dict]:
  """{split: `layouts.count_records(records)`}."""
  return {name: layouts.count_records(list(records)) for name, records in splits.items()}
