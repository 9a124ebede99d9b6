"""TFDS builder for RegDB (and the synthetic dataset written in its layout), one trial at a time.

RegDB's ten train/test splits ("trials") each have their own index files
(`idx/{train,test}_{visible,thermal}_{t}.txt`), and the reference trains one model per trial, so
each trial is its own builder config: `trial{t}_{H}x{W}` (`trial{t}_{H}x{W}_bicubic` for a
bicubic build). Nothing is downloaded: the manual directory is the unpacked raw folder
(`vireid_jax.data.layouts`, `data/README.md`). Shared behaviour (pre-resize to the configured
size, Lanczos by default as the reference resizes RegDB to 144 x 288 too, spec §1.2; PNG
storage; integrity checks; atomic builds) is in `common`.

Splits, in index-file order:
* `train`: the trial's visible list, then its thermal list, with the files' labels (0..205 on
  the real data, the same in both modalities).
* `test`: the trial's visible test list, then its thermal test list, label -1: the queries and
  the gallery of the RegDB protocol (spec §7.5).

Cameras, as the AGW reference's RegDB protocol assigns them: 1 for every visible image, 2 for
every thermal image (thermal images have modality "infrared"). Person ids are the person folder
numbers (`Visible/<n>/…`).
"""

from __future__ import annotations

import dataclasses
import pathlib

from vireid_jax.data import layouts
from vireid_jax.data.builders import common


@dataclasses.dataclass
class RegDBConfig(common.ImageSizeConfig):
  """A trial (1..10) at a stored image size."""

  trial: int = 1


def config_for(trial: int, image_height: int, image_width: int, check_counts: bool = True,
               resize_filter: str = common.DEFAULT_RESIZE_FILTER) -> RegDBConfig:
  """Trial `trial` at H x W, named "trial<t>_<H>x<W>" (plus "_bicubic" for a bicubic build,
  `common.config_name`)."""
  layouts.check_regdb_trial(trial)
  return RegDBConfig(name=common.config_name(f"trial{trial}_{image_height}x{image_width}",
                                             resize_filter),
                     trial=trial, image_height=image_height, image_width=image_width,
                     check_counts=check_counts, resize_filter=resize_filter)


class RegDB(common.ReIdBuilder):
  """RegDB visible-thermal person re-identification (Nguyen et al., Sensors 2017)."""

  name = "regdb"
  DATASET = "regdb"
  HOMEPAGE = "http://dm.dongguk.edu/link.html"
  BUILDER_CONFIGS = [config_for(trial, 288, 144) for trial in layouts.REGDB_TRIALS]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  RegDB is distributed by its authors on request. Unpack it so that the manual directory holds
  Visible/, Thermal/ and idx/{train,test}_{visible,thermal}_{1..10}.txt (see data/README.md).
  Without it, use configs/synthetic_regdb.py, which writes a synthetic dataset in that layout.
  """

  def split_records(self, root: pathlib.Path) -> dict[str, list[layouts.Record]]:
    trial = self.builder_config.trial
    visible, thermal = layouts.regdb_train_records(root, trial)
    return {"train": visible + thermal, "test": layouts.regdb_test_records(root, trial)}
