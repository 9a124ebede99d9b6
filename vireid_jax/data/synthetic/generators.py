"""The synthetic layouts by name: `GENERATORS`, `generate` and `expected_counts`.

`expected_counts` recomputes a dataset's counts from its manifest (the generator's plan), for
the builders' integrity check.
"""

from __future__ import annotations

import inspect
import os
import pathlib

from vireid_jax.data.synthetic import output
from vireid_jax.data.synthetic.llcm import generate_llcm
from vireid_jax.data.synthetic.llcm import llcm_counts
from vireid_jax.data.synthetic.regdb import generate_regdb
from vireid_jax.data.synthetic.regdb import regdb_counts
from vireid_jax.data.synthetic.sysu import generate_sysu
from vireid_jax.data.synthetic.sysu import sysu_counts

# Layout name -> generator.
GENERATORS = {"sysu": generate_sysu, "regdb": generate_regdb, "llcm": generate_llcm}
# Layout name -> the generator's plan, as counts (see `expected_counts`).
_PLAN_COUNTS = {"sysu": sysu_counts, "regdb": regdb_counts, "llcm": llcm_counts}


def generate(layout: str, out_dir: str | os.PathLike, **options) -> pathlib.Path:
  """Writes a synthetic dataset in the raw layout of `layout` ("sysu", "regdb" or "llcm").

  Raises:
    ValueError: an unknown layout, an option the layout's generator does not take, or an
      invalid option value.
    FileExistsError: see the generators.
  """
  if layout not in GENERATORS:
    raise ValueError(f"Unknown layout {layout!r}; available: {', '.join(sorted(GENERATORS))}.")
  generator = GENERATORS[layout]
  accepted = [name for name in inspect.signature(generator).parameters if name != "out_dir"]
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    raise ValueError(f"Options {', '.join(unknown)} do not apply to the {layout!r} layout; its "
                     f"options are {', '.join(accepted)}.")
  return generator(out_dir, **options)


def expected_counts(info: dict) -> dict:
  """The counts a synthetic dataset has, from its options alone (the generator's plan).

  The generator writes them into its manifest; the builders' integrity check compares the
  images it finds against them, as it compares a real dataset against the published counts.

  Args:
    info: the manifest (`output.INFO_FILE_NAME`), or any dict with "layout" and the generator
      options.

  Returns:
    {"train": counts, "test": counts} in `layouts.count_split` form (for RegDB the same for
    every trial: each trial splits the ids in halves and every id has the same number of
    images).
  """
  layout = info.get("layout")
  if layout not in GENERATORS:
    raise ValueError(f"Unknown synthetic layout {layout!r} in {info!r}")
  return output.counts_of_plan(_PLAN_COUNTS[layout], info)
