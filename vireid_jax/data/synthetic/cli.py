"""The command line of the synthetic generator: `python -m vireid_jax.data.synthetic ...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vireid_jax.data.synthetic.generators import generate
from vireid_jax.data.synthetic.sysu import IR_TO_VISIBLE


def main(argv: Sequence[str] | None = None) -> int:
  """Parses `argv` (default: sys.argv[1:]), writes the dataset; 0 on success, 2 on an error."""
  parser = argparse.ArgumentParser(
    prog="python -m vireid_jax.data.synthetic",
    description="Write a synthetic RGB-IR re-ID dataset in a real dataset's raw layout. "
                "Options not given take the layout generator's defaults.",
    argument_default=argparse.SUPPRESS)
  parser.add_argument("--out", required=True, help="dataset root to create")
  parser.add_argument("--layout", default="sysu", help="raw layout: sysu, regdb or llcm")
  parser.add_argument("--seed", type=int)
  parser.add_argument("--num-train-ids", type=int, help="sysu, llcm")
  parser.add_argument("--num-val-ids", type=int, help="sysu")
  parser.add_argument("--num-test-ids", type=int, help="sysu, llcm")
  parser.add_argument("--num-single-modality-ids", type=int, help="sysu")
  parser.add_argument("--num-ids", type=int, help="regdb: identities, split in halves per trial")
  parser.add_argument("--images-per-id", type=int, help="regdb: images per id and modality")
  parser.add_argument("--images-per-camera", type=int, nargs=2, metavar=("MIN", "MAX"),
                      help="sysu, llcm")
  parser.add_argument("--image-height", type=int)
  parser.add_argument("--image-width", type=int)
  parser.add_argument("--nir-luminance-mix", type=float,
                      help="0 = NIR independent of colour (true modality gap); up to 1")
  parser.add_argument("--ir-to-visible", choices=IR_TO_VISIBLE,
                      help="sysu: replace every infrared image by a stand-in IR->VIS "
                           "translation (DJANet's data): '' (default, none) or colour_transfer")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace an existing non-empty output folder")
  options = vars(parser.parse_args(argv))
  out, layout = options.pop("out"), options.pop("layout")
  if "images_per_camera" in options:
    options["images_per_camera"] = tuple(options["images_per_camera"])
  try:
    path = generate(layout, out, **options)
  except (ValueError, FileExistsError) as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(path)
  return 0
