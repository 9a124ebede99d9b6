"""TFDS builder for LLCM (and the synthetic dataset written in its layout).

Nothing is downloaded: the manual directory is the unpacked raw folder (`idx/train_vis.txt`,
`idx/train_nir.txt`, `idx/test_id.txt`, `test_vis/`, `test_nir/`; `vireid_jax.data.layouts`,
`data/README.md`). Shared behaviour (Lanczos pre-resize to the configured size, as the LLCM fork
of AGW resizes to 144 x 288, spec §1.3; PNG storage; integrity checks; atomic builds) is in
`common`.

Splits:
* `train`: `idx/train_vis.txt`, then `idx/train_nir.txt`, in file order, with the files' labels
  (0..712 on the real data, the same in both modalities).
* `test`: every visible test image, then every NIR one, each in the reference's order (test ids
  ascending, camera, file name), label -1: queries and gallery candidates of the LLCM protocol
  (spec §7.6).

Cameras are 1..9 and name the same physical camera in both modalities (the protocol removes
gallery images of the query's person and camera number): test images take the number of their
`cam<k>` folder (the reference's parsing), training images the `_c<kk>_` part of their file
name (the reference's training loader assigns none). NIR test images come from cam1, cam2,
cam4..cam9 only, as the reference lists them.
"""

from __future__ import annotations

import pathlib

from vireid_jax.data import layouts
from vireid_jax.data.builders import common


class LLCM(common.ReIdBuilder):
  """LLCM low-light visible-infrared person re-identification (Zhang & Wang, CVPR 2023)."""

  name = "llcm"
  DATASET = "llcm"
  HOMEPAGE = "https://github.com/ZYK100/LLCM"
  BUILDER_CONFIGS = [common.config_for_size(288, 144)]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  LLCM is distributed by its authors on request. Unpack it so that the manual directory holds
  idx/{train_vis,train_nir}.txt, idx/test_id.txt, the training image folders the index files
  point to, test_vis/ and test_nir/ (see data/README.md). Without it, use
  configs/synthetic_llcm.py, which writes a synthetic dataset in that layout.
  """

  def split_records(self, root: pathlib.Path) -> dict[str, list[layouts.Record]]:
    visible, infrared = layouts.llcm_train_records(root)
    return {"train": visible + infrared, "test": layouts.llcm_test_records(root)}
