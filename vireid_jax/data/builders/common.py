"""What the three TFDS builders share: the image size config, decoding, features and checks.

Each builder reads an unpacked raw folder given as the manual directory (SYSU-MM01, RegDB and
LLCM are gated: nothing is downloaded), enumerates its records with `vireid_jax.data.layouts`,
checks them against the dataset's known counts (`integrity`) before writing anything, and
writes one example per image: the image pre-resized to the configured size with the configured
filter (`config.data.resize_filter`: Lanczos by default, as the AGW-family references' loaders
do, spec §1.1.4, §1.2, §1.3; bicubic for AlignGAN, aligngan.md §1.2), stored losslessly (PNG)
so no second lossy step is added.

Size and filter name the build: config "<H>x<W>" is a Lanczos build, "<H>x<W>_bicubic" a bicubic
one, each in a folder of its own under `config.data.tfds_dir`, and the filter is also recorded
in the build's metadata (`RESIZE_FILTER_KEY`).

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
import tensorflow_datasets as tfds

from vireid_jax import failpoints
from vireid_jax.data import files
from vireid_jax.data import layouts
from vireid_jax.data.builders import integrity

MODALITIES = layouts.MODALITIES


# The pre-resize: TensorFlow-free, so that search and export read images exactly as the builders
# store them.
RESIZE_FILTERS = files.RESIZE_FILTERS
DEFAULT_RESIZE_FILTER = files.DEFAULT_RESIZE_FILTER
check_resize_filter = files.check_resize_filter
load_resized_image = files.load_resized_image
# The key of the filter in a build's `DatasetInfo.metadata`; builds that lack it are Lanczos
# builds (every build was, before the filter became an option).
RESIZE_FILTER_KEY = "resize_filter"


def config_name(base_name: str, resize_filter: str) -> str:
  """`base_name` ("288x144", "trial1_288x144"), with "_<filter>" unless the filter is Lanczos.

  Lanczos builds keep the names they had before the filter was an option, so they stay valid;
  any other filter gets a folder of its own, so builds of one dataset with two filters never
  overwrite each other or load as each other.
  """
  check_resize_filter(resize_filter)
  if resize_filter == DEFAULT_RESIZE_FILTER:
    return base_name
  return f"{base_name}_{resize_filter}"


@dataclasses.dataclass
class ImageSizeConfig(tfds.core.BuilderConfig):
  """Stored image size (H x W) and resize filter; the papers use 288 x 144, Lanczos.

  `check_counts=False` skips the comparison with the dataset's known counts (use it only for a
  complete download whose published counts are wrong); every other check stays.
  """

  image_height: int = 288
  image_width: int = 144
  check_counts: bool = True
  resize_filter: str = DEFAULT_RESIZE_FILTER


def config_for_size(image_height: int, image_width: int, check_counts: bool = True,
                    resize_filter: str = DEFAULT_RESIZE_FILTER) -> ImageSizeConfig:
  """The config of a dataset without trials, named "<H>x<W>" (`config_name` adds a filter
  other than Lanczos: "<H>x<W>_bicubic")."""
  return ImageSizeConfig(name=config_name(f"{image_height}x{image_width}", resize_filter),
                         image_height=image_height, image_width=image_width,
                         check_counts=check_counts, resize_filter=resize_filter)


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
        # Filled by `_split_generators`: {integrity.RAW_FOLDER_KEY: raw_folder_record,
        # RESIZE_FILTER_KEY: the filter}.
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = pathlib.Path(dl_manager.manual_dir)
    splits = self.split_records(root)
    if self.builder_config.check_counts:
      integrity.check_counts(self.DATASET, root, count_splits(splits))
    self.info.metadata[integrity.RAW_FOLDER_KEY] = integrity.raw_folder_record(root, splits)
    self.info.metadata[RESIZE_FILTER_KEY] = self.builder_config.resize_filter
    return {name: self._generate_examples(records) for name, records in splits.items()}

  def _generate_examples(self, records: Sequence[layouts.Record]):
    height, width = self.builder_config.image_height, self.builder_config.image_width
    resize_filter = self.builder_config.resize_filter
    # A Lanczos build calls the loader with the three arguments it always took: tests and
    # tools that wrap `load_resized_image` (tests/data/test_integrity.py) keep working.
    filter_argument = ({} if resize_filter == DEFAULT_RESIZE_FILTER
                       else {"resize_filter": resize_filter})
    for position, record in enumerate(records):
      failpoints.hit("tfrecord_example")
      yield position, {
          "image": load_resized_image(record.path, height, width, **filter_argument),
          "person_id": record.person_id,
          "label": record.label,
          "camera": record.camera,
          "modality": record.modality,
          "relative_path": record.relative_path,
      }


def count_splits(splits: dict[str, Iterable[layouts.Record]]) -> dict[str, dict]:
  """{split: `layouts.count_records(records)`}."""
  return {name: layouts.count_records(list(records)) for name, records in splits.items()}
