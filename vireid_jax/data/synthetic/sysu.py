"""The synthetic dataset in SYSU-MM01's raw layout: `generate_sysu`.

`cam1..cam6/<person_id:04d>/<k:04d>.jpg` and `exp/{train,val,test}_id.txt`; six cameras, four
RGB (1, 2, 4, 5) and two NIR (3, 6), cams 1-3 indoor (cam3 films cam2's room), 4-6 outdoor.
Which cameras saw a person follows SYSU-MM01's per-split statistics, with the guarantees the
evaluation protocols need (`sysu_image_counts`). `ir_to_visible` makes the stand-in of DJANet's
IR→VIS translated SYSU-MM01 (`IR_TO_VISIBLE`).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from vireid_jax.data import layouts
from vireid_jax.data import translation
from vireid_jax.data.synthetic import common
from vireid_jax.data.synthetic import output
from vireid_jax.data.synthetic import render
from vireid_jax.data.synthetic.identities import sample_identities

# `generate_sysu(ir_to_visible=...)`: what replaces the infrared images after generation.
# "": nothing (the NIR renderings stay). "colour_transfer": the stand-in of DJANet's IR→VIS
# translated SYSU-MM01 (spec djanet.md §1): every cam3/cam6 image becomes
# `translation.colour_transfer` of itself, with the per-channel mean and std of the visible
# images of the train + val ids.
IR_TO_VISIBLE = ("", "colour_transfer")


def sysu_split_ids(num_train_ids: int, num_val_ids: int, num_test_ids: int,
                   num_single_modality_ids: int = 0) -> dict[str, list[int]]:
  """Person ids of each split, numbered from 1 like SYSU-MM01.

  Test ids are spread evenly over 1..num_train_ids + num_test_ids, interleaved with the train
  ids (as SYSU-MM01's are); val ids follow as one block (SYSU-MM01: 334-433); then come ids that
  appear in one modality only and belong to no split (SYSU-MM01 has 22).

  Returns:
    {"train": ids, "val": ids, "test": ids, "none": ids}, each ascending.
  """
  num_interleaved = num_train_ids + num_test_ids
  test_ids = [int((i + 0.5) * num_interleaved / num_test_ids) + 1 for i in range(num_test_ids)]
  test_set = set(test_ids)
  train_ids = [i for i in range(1, num_interleaved + 1) if i not in test_set]
  val_ids = list(range(num_interleaved + 1, num_interleaved + num_val_ids + 1))
  first_single = num_interleaved + num_val_ids + 1
  single_ids = list(range(first_single, first_single + num_single_modality_ids))
  return {"train": train_ids, "val": val_ids, "test": test_ids, "none": single_ids}


def _sample_cameras(rng: np.random.Generator, split: str, position: int) -> list[int]:
  """Which cameras saw a person, mimicking SYSU-MM01's per-split statistics, with guarantees.

  * train: most cameras; ≥1 visible and ≥1 infrared camera.
  * val: only cams 3, 4, 5 (as in SYSU-MM01); cam3 always, and cam4 or cam5.
  * test: ~60% are seen indoors by cam1 (and mostly cam2), so the indoor protocol has queries
    without a match; ≥1 infrared camera and ≥1 of cams 1, 4, 5, so every all-search query
    (cam3 queries ignore cam2) has a match.
  * none: one modality only (even positions visible, odd infrared).
  """
  def present(probability: float) -> bool:
    return bool(rng.random() < probability)

  if split == "train":
    cameras = {c for c, p in {1: 0.75, 2: 0.85, 3: 0.9, 4: 0.8, 5: 0.85, 6: 0.7}.items()
               if present(p)}
    if not cameras & set(layouts.SYSU_VISIBLE_CAMERAS):
      cameras.add(int(rng.choice(layouts.SYSU_VISIBLE_CAMERAS)))
    if not cameras & set(layouts.SYSU_INFRARED_CAMERAS):
      cameras.add(int(rng.choice(layouts.SYSU_INFRARED_CAMERAS)))
  elif split == "val":
    cameras = {3} | {c for c in (4, 5) if present(0.9)}
    if not cameras & {4, 5}:
      cameras.add(int(rng.choice((4, 5))))
  elif split == "test":
    indoor = present(0.6)
    cameras = ({1} | ({2} if present(0.9) else set())) if indoor else set()
    cameras |= {c for c, p in {3: 0.95, 4: 0.97, 5: 0.97, 6: 0.97}.items() if present(p)}
    if not cameras & set(layouts.SYSU_INFRARED_CAMERAS):
      cameras.add(6)
    if not cameras & {1, 4, 5}:
      cameras.add(4)
  elif split == "none":
    pool = layouts.SYSU_VISIBLE_CAMERAS if position % 2 == 0 else layouts.SYSU_INFRARED_CAMERAS
    cameras = {int(rng.choice(pool))}
  else:
    raise ValueError(f"Unknown split {split!r}")
  return sorted(cameras)


def sysu_image_counts(seed: int, split_ids: dict[str, list[int]],
                      images_per_camera: tuple[int, int]) -> dict[tuple[int, int], int]:
  """{(person_id, camera): number of images} for every (person, camera) folder to write."""
  min_images, max_images = images_per_camera
  counts = {}
  for split, person_ids in split_ids.items():
    for position, person_id in enumerate(person_ids):
      rng = common.stream_rng(seed, common.PRESENCE_STREAM, person_id)
      for camera in _sample_cameras(rng, split, position):
        counts[(person_id, camera)] = int(rng.integers(min_images, max_images + 1))
  return dict(sorted(counts.items()))


def sysu_counts(seed: int, num_train_ids: int, num_val_ids: int, num_test_ids: int,
                num_single_modality_ids: int, images_per_camera: tuple[int, int]) -> dict:
  """`generate_sysu`'s plan as counts: {"train" (train + val ids), "test"}, without writing."""
  split_ids = sysu_split_ids(num_train_ids, num_val_ids, num_test_ids, num_single_modality_ids)
  counts = sysu_image_counts(seed, split_ids, images_per_camera)
  members = {"train": set(split_ids["train"] + split_ids["val"]), "test": set(split_ids["test"])}
  return {split: output.count_plan((person_id, camera, layouts.sysu_camera_modality(camera), n)
                                   for (person_id, camera), n in counts.items()
                                   if person_id in people)
          for split, people in members.items()}


def generate_sysu(out_dir: str | os.PathLike, *, seed: int = 0, num_train_ids: int = 80,
                  num_val_ids: int = 16, num_test_ids: int = 24,
                  num_single_modality_ids: int = 2,
                  images_per_camera: tuple[int, int] = (3, 6), image_height: int = 128,
                  image_width: int = 64, nir_luminance_mix: float = 0.0,
                  ir_to_visible: str = "", overwrite: bool = False) -> pathlib.Path:
  """Writes a synthetic RGB-IR re-ID dataset in SYSU-MM01's raw layout.

  Defaults make a demo dataset (~2,400 images, 20 MB, ~10 s on one core) for a narrow ResNet
  on two CPU cores: AGW trains on train + val ids (96 classes) and evaluates on 24 unseen
  test ids.

  Args:
    out_dir: the dataset root to create.
    seed: integer in [0, 2**32); same seed, same bytes.
    num_train_ids, num_val_ids, num_test_ids: identities per split (each ≥ 1).
    num_single_modality_ids: extra ids seen in one modality only, in no split (the loader
      must ignore them, as with SYSU-MM01's 22 such ids).
    images_per_camera: (min, max) images per (person, camera) folder, inclusive.
    image_height, image_width: nominal crop size; each camera's crops are a bit larger or
      smaller, and vary per image.
    nir_luminance_mix: 0 (default) = the true modality gap: clothing NIR reflectance is
      independent of colour. A value in (0, 1] makes that fraction of it follow the visible
      luminance (never the hue), which narrows the gap, e.g. for ablations or for very short
      demo trainings.
    ir_to_visible: "" (default) keeps the infrared renderings; "colour_transfer" replaces
      every infrared image (cam3, cam6, all ids) by a deterministic IR→VIS stand-in
      (`IR_TO_VISIBLE`), as DJANet trains on an IR→VIS translated SYSU-MM01. File names and
      image sizes stay; visible images are those of "".
    overwrite: replace an existing non-empty `out_dir`.

  Returns:
    `out_dir` as an absolute path.

  Raises:
    FileExistsError: `out_dir` exists, is not empty and `overwrite` is False.
    ValueError: invalid sizes, or an `ir_to_visible` not in `IR_TO_VISIBLE`.
  """
  output.check_common_options(seed, image_height, image_width, nir_luminance_mix)
  if min(num_train_ids, num_val_ids, num_test_ids) < 1 or num_single_modality_ids < 0:
    raise ValueError("num_train_ids, num_val_ids and num_test_ids must be ≥ 1 (got "
                     f"{num_train_ids}, {num_val_ids}, {num_test_ids}) and "
                     f"num_single_modality_ids ≥ 0 (got {num_single_modality_ids}).")
  min_images, max_images = output.check_images_range("images_per_camera", images_per_camera)
  if ir_to_visible not in IR_TO_VISIBLE:
    raise ValueError(f"ir_to_visible must be one of {IR_TO_VISIBLE}, got {ir_to_visible!r}.")

  out_dir = pathlib.Path(out_dir).absolute()
  split_ids = sysu_split_ids(num_train_ids, num_val_ids, num_test_ids, num_single_modality_ids)
  counts = sysu_image_counts(seed, split_ids, (min_images, max_images))
  people = sample_identities(seed, [i for ids in split_ids.values() for i in ids],
                             nir_luminance_mix=nir_luminance_mix)

  with output.atomic_output(out_dir, overwrite) as partial_dir:
    for (person_id, camera), num_images in counts.items():
      person_dir = partial_dir / f"cam{camera}" / f"{person_id:04d}"
      person_dir.mkdir(parents=True)
      for image_number in range(1, num_images + 1):
        image = render.render_image(people[person_id], camera, image_number, seed=seed,
                                    image_height=image_height, image_width=image_width)
        output.save_jpeg(image, person_dir / f"{image_number:04d}.jpg")
    # The real download has every camera folder, even if a split leaves one empty.
    for camera in layouts.SYSU_CAMERAS:
      (partial_dir / f"cam{camera}").mkdir(exist_ok=True)
    (partial_dir / "exp").mkdir()
    for split in layouts.SYSU_SPLITS:
      (partial_dir / "exp" / f"{split}_id.txt").write_text(
        ",".join(str(i) for i in split_ids[split]) + "\n", encoding="utf-8")
    options = dict(
      seed=int(seed), num_train_ids=num_train_ids, num_val_ids=num_val_ids,
      num_test_ids=num_test_ids, num_single_modality_ids=num_single_modality_ids,
      images_per_camera=[min_images, max_images], image_height=image_height,
      image_width=image_width, nir_luminance_mix=nir_luminance_mix,
      ir_to_visible=ir_to_visible)
    if ir_to_visible == "colour_transfer":
      options["ir_to_visible_statistics"] = _colour_transfer_infrared(partial_dir)
    output.write_info(partial_dir, "sysu", options, sum(counts.values()), sysu_counts)
  return out_dir


def _colour_transfer_infrared(root: pathlib.Path) -> dict:
  """Replaces every infrared image of `root` by `translation.colour_transfer` of itself.

  The statistics are those of the visible images of the train + val ids as written (decoded
  JPEGs), computed once, before any infrared image changes.

  Returns:
    {"visible_mean": [R, G, B], "visible_std": [R, G, B]}: the statistics used, for the
    manifest.
  """
  mean, std = translation.visible_channel_statistics(root)
  translate = translation.colour_transfer(mean, std)
  for relative_path in translation.infrared_relative_paths(root):
    translation.translate_image_file(root / relative_path, root / relative_path, translate)
  return {"visible_mean": mean.tolist(), "visible_std": std.tolist()}
