"""TFDS builder for SYSU-MM01 (and the synthetic dataset written in its layout).

The builder never downloads: SYSU-MM01 is gated, so it reads the unpacked raw folder given as
the manual directory (layout: `vireid_jax.data.layouts`, `data/README.md`). Shared behaviour
(Lanczos pre-resize as `pre_process_sysu.py` does, PNG storage, integrity checks, atomic
builds) is in `common`.

Splits: `train` = train ∪ val ids (the reference trains on both; 395 ids on SYSU-MM01), visible
records then infrared records in the reference's order, with training labels; `test` = every
image of the test ids in all six cameras, label -1 (queries and gallery candidates).

Cameras are the folder numbers 1..6: visible 1, 2, 4, 5; infrared 3, 6 (cam3 films cam2's room).
"""

from __future__ import annotations

import pathlib

from vireid_jax.data import layouts
from vireid_jax.data.builders import common


class SysuMm01(common.ReIdBuilder):
  """SYSU-MM01 RGB-IR person re-identification (Wu et al., ICCV 2017)."""

  DATASET = "sysu"
  HOMEPAGE = "https://github.com/wuancong/SYSU-MM01"
  BUILDER_CONFIGS = [common.config_for_size(288, 144)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  SYSU-MM01 is distributed by its authors on request. Unpack it so that the manual directory
  holds cam1/ ... cam6/ and exp/{train,val,test}_id.txt (see data/README.md). Without it, use
  configs/synthetic.py, which writes a synthetic dataset in the same layout.
  """

  def split_records(self, root: pathlib.Path) -> dict[str, list[layouts.Record]]:
    visible, infrared = layouts.sysu_train_records(root)
    return {"train": visible + infrared, "test": layouts.sysu_test_records(root)}
