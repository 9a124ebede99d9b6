"""The synthetic dataset in RegDB's raw layout: `generate_regdb`.

`Visible/`, `Thermal/` (co-registered visible/thermal pairs, BMP) and the index files of ten
random train/test splits, `idx/{train,test}_{visible,thermal}_{t}.txt`.
"""

from __future__ import annotations

import os
import pathlib

from vireid_jax.data import layouts
from vireid_jax.data.synthetic import common
from vireid_jax.data.synthetic import output
from vireid_jax.data.synthetic import render
from vireid_jax.data.synthetic.identities import PersonAttributes
from vireid_jax.data.synthetic.identities import sample_identities
from vireid_jax.data.synthetic.scenes import CameraView

# One co-registered visible/thermal camera pair: both views share the stream key, so the two
# images of a pair show the same crop and pose, each in its modality. The thermal camera is
# rendered with the NIR model (a grey image of per-material reflectances), a stand-in for
# far-infrared emission: what matters here is that brightness does not follow colour.
REGDB_VIEWS = {
  modality: CameraView(key=1, modality=modality, scene=1, indoor=False, size_factors=(1.0, 1.0))
  for modality in layouts.MODALITIES}
_REGDB_FOLDERS = {layouts.VISIBLE: "Visible", layouts.INFRARED: "Thermal"}
_REGDB_LETTERS = {layouts.VISIBLE: "v", layouts.INFRARED: "t"}


def regdb_trial_ids(seed: int, num_ids: int, trial: int) -> dict[str, list[int]]:
  """The person ids of RegDB trial `trial`: a random half trains, the other half tests.

  Returns:
    {"train": ids, "test": ids}, each ascending; ids are 1..num_ids.
  """
  order = common.stream_rng(common.layout_seed("regdb", seed), common.TRIAL_STREAM,
                            trial).permutation(num_ids) + 1
  half = num_ids // 2
  return {"train": sorted(int(i) for i in order[:half]),
          "test": sorted(int(i) for i in order[half:])}


def regdb_relative_path(person: PersonAttributes, modality: str, image_number: int,
                        images_per_id: int) -> str:
  """E.g. "Visible/7/female_v_00061_1.bmp", like RegDB's "<sex>_..._<v|t>_<frame>_<k>.bmp"."""
  sex = "female" if person.hair_style == "long" or person.lower.style == "skirt" else "male"
  frame = (person.person_id - 1) * images_per_id + image_number
  return (f"{_REGDB_FOLDERS[modality]}/{person.person_id}/"
          f"{sex}_{_REGDB_LETTERS[modality]}_{frame:05d}_{image_number}.bmp")


def regdb_counts(num_ids: int, images_per_id: int) -> dict:
  """`generate_regdb`'s plan as counts: {"train", "test"}, the same for every trial."""
  half = num_ids // 2
  cameras = {layouts.VISIBLE: layouts.REGDB_VISIBLE_CAMERA,
             layouts.INFRARED: layouts.REGDB_THERMAL_CAMERA}
  split = output.count_plan((person_id, cameras[modality], modality, images_per_id)
                            for person_id in range(1, half + 1)
                            for modality in layouts.MODALITIES)
  return {"train": split, "test": split}


def generate_regdb(out_dir: str | os.PathLike, *, seed: int = 0, num_ids: int = 96,
                   images_per_id: int = 10, image_height: int = 128, image_width: int = 64,
                   nir_luminance_mix: float = 0.0, overwrite: bool = False) -> pathlib.Path:
  """Writes a synthetic RGB-IR re-ID dataset in RegDB's raw layout, with its ten trials.

  Every id has `images_per_id` visible and as many thermal images (RegDB: 412 ids, 10 + 10),
  taken as co-registered pairs. Each trial t = 1..10 splits the ids at random into a training
  and a test half and lists them in `idx/{train,test}_{visible,thermal}_{t}.txt`, one
  "<relative path> <label>" per line, ids ascending; labels are the rank of the id within the
  half (training labels 0..num_ids/2 - 1, as the reference requires).

  Args:
    out_dir: the dataset root to create.
    seed: integer in [0, 2**32); same seed, same bytes.
    num_ids: identities (even, ≥ 2).
    images_per_id: images per id and modality (≥ 1).
    image_height, image_width: nominal crop size (every crop varies a little around it).
    nir_luminance_mix: see `generate_sysu`.
    overwrite: replace an existing non-empty `out_dir`.

  Returns:
    `out_dir` as an absolute path.

  Raises:
    FileExistsError: `out_dir` exists, is not empty and `overwrite` is False.
    ValueError: invalid options.
  """
  output.check_common_options(seed, image_height, image_width, nir_luminance_mix)
  if num_ids < 2 or num_ids % 2 or images_per_id < 1:
    raise ValueError(f"num_ids must be even and ≥ 2 (got {num_ids}) and images_per_id ≥ 1 "
                     f"(got {images_per_id}): each trial splits the ids in halves.")
  out_dir = pathlib.Path(out_dir).absolute()
  layout_seed = common.layout_seed("regdb", seed)
  people = sample_identities(layout_seed, range(1, num_ids + 1),
                             nir_luminance_mix=nir_luminance_mix)
  paths = {(person_id, modality): [regdb_relative_path(people[person_id], modality, k,
                                                       images_per_id)
                                   for k in range(1, images_per_id + 1)]
           for person_id in people for modality in layouts.MODALITIES}

  with output.atomic_output(out_dir, overwrite) as partial_dir:
    for (person_id, modality), relative_paths in paths.items():
      (partial_dir / relative_paths[0]).parent.mkdir(parents=True, exist_ok=True)
      for image_number, relative_path in enumerate(relative_paths, start=1):
        image = render.render_image(people[person_id], REGDB_VIEWS[modality], image_number,
                                    seed=layout_seed, image_height=image_height,
                                    image_width=image_width)
        output.save_bmp(image, partial_dir / relative_path)
    (partial_dir / "idx").mkdir()
    for trial in layouts.REGDB_TRIALS:
      for split, person_ids in regdb_trial_ids(seed, num_ids, trial).items():
        for modality in layouts.MODALITIES:
          lines = [f"{path} {label}" for label, person_id in enumerate(person_ids)
                   for path in paths[(person_id, modality)]]
          index_path = partial_dir / layouts.regdb_index_file(split, modality, trial)
          index_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output.write_info(partial_dir, "regdb", dict(
      seed=int(seed), num_ids=num_ids, images_per_id=images_per_id, image_height=image_height,
      image_width=image_width, nir_luminance_mix=nir_luminance_mix),
      2 * num_ids * images_per_id, regdb_counts)
  return out_dir
