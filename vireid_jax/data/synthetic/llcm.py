"""The synthetic dataset in LLCM's raw layout: `generate_llcm`.

Nine cameras that film in both modalities, low-light visible images; training images listed by
`idx/train_{vis,nir}.txt`, test images in `test_{vis,nir}/cam<k>/<person_id:04d>/`, test ids in
`idx/test_id.txt`.
"""

from __future__ import annotations

import os
import pathlib

from vireid_jax.data import layouts
from vireid_jax.data.synthetic import common
from vireid_jax.data.synthetic import output
from vireid_jax.data.synthetic import render
from vireid_jax.data.synthetic.identities import sample_identities
from vireid_jax.data.synthetic.scenes import CameraView
from vireid_jax.data.synthetic.sysu import sysu_split_ids

# Nine cameras, each filming in both modalities: the visible and the NIR view of a camera share
# its scene but not its image streams (the camera switches to NIR when the light fails, so the
# two modalities are different moments). Visible images are low-light: darker and noisier.
# Cameras 1-4 film rooms, 5-9 streets.
_LLCM_SIZE_FACTORS = {1: (1.0, 1.0), 2: (0.92, 1.06), 3: (1.08, 0.95), 4: (1.12, 0.94),
                      5: (0.96, 1.04), 6: (1.04, 1.0), 7: (0.94, 0.98), 8: (1.1, 1.02),
                      9: (0.98, 0.96)}
LLCM_VIEWS = {
  (modality, camera): CameraView(
    key=camera if modality == layouts.VISIBLE else 10 + camera, modality=modality,
    scene=camera, indoor=camera <= 4, size_factors=_LLCM_SIZE_FACTORS[camera],
    light=0.45 if modality == layouts.VISIBLE else 1.0,
    visible_noise=0.03 if modality == layouts.VISIBLE else 0.008)
  for modality in layouts.MODALITIES for camera in layouts.LLCM_CAMERAS}
# Cameras each modality is drawn from: the NIR test set of LLCM has no cam3, so neither has the
# synthetic training set.
_LLCM_DRAW_CAMERAS = {layouts.VISIBLE: layouts.LLCM_VISIBLE_TEST_CAMERAS,
                      layouts.INFRARED: layouts.LLCM_INFRARED_TEST_CAMERAS}
_LLCM_TAGS = {layouts.VISIBLE: "vis", layouts.INFRARED: "nir"}
_LLCM_TRAIN_FOLDERS = {layouts.VISIBLE: "vis", layouts.INFRARED: "nir"}


def llcm_split_ids(num_train_ids: int, num_test_ids: int) -> dict[str, list[int]]:
  """Person ids of each split, 1..N, test ids spread evenly among the training ids."""
  split_ids = sysu_split_ids(num_train_ids, 0, num_test_ids)
  return {"train": split_ids["train"], "test": split_ids["test"]}


def llcm_image_counts(seed: int, split_ids: dict[str, list[int]],
                      images_per_camera: tuple[int, int]) -> dict[tuple[int, str, int], int]:
  """{(person_id, modality, camera): number of images} for every LLCM folder to write.

  A training id is seen by ≥ 1 camera in each modality; a test id by ≥ 2, so that every query
  keeps a true match after the protocol drops the gallery images of its own camera, in both
  search directions.
  """
  min_images, max_images = images_per_camera
  counts = {}
  for split, person_ids in split_ids.items():
    minimum = 1 if split == "train" else 2
    for person_id in person_ids:
      rng = common.stream_rng(common.layout_seed("llcm", seed), common.PRESENCE_STREAM,
                              person_id)
      for modality in layouts.MODALITIES:
        pool = _LLCM_DRAW_CAMERAS[modality]
        cameras = {camera for camera in pool if rng.random() < 0.35}
        while len(cameras) < minimum:
          cameras.add(int(rng.choice(pool)))
        for camera in sorted(cameras):
          counts[(person_id, modality, camera)] = int(rng.integers(min_images, max_images + 1))
  return dict(sorted(counts.items()))


def llcm_file_name(person_id: int, modality: str, camera: int, image_number: int) -> str:
  """E.g. "0003_c01_s010001_f0001_nir.jpg", like LLCM's "0003_c01_s185734_f3195_nir.jpg"."""
  return (f"{person_id:04d}_c{camera:02d}_s{camera * 10000 + image_number:06d}_"
          f"f{image_number:04d}_{_LLCM_TAGS[modality]}.jpg")


def llcm_counts(seed: int, num_train_ids: int, num_test_ids: int,
                images_per_camera: tuple[int, int]) -> dict:
  """`generate_llcm`'s plan as counts: {"train", "test"}, without writing."""
  split_ids = llcm_split_ids(num_train_ids, num_test_ids)
  counts = llcm_image_counts(seed, split_ids, images_per_camera)
  return {split: output.count_plan((person_id, camera, modality, n)
                                   for (person_id, modality, camera), n in counts.items()
                                   if person_id in set(person_ids))
          for split, person_ids in split_ids.items()}


def generate_llcm(out_dir: str | os.PathLike, *, seed: int = 0, num_train_ids: int = 80,
                  num_test_ids: int = 24, images_per_camera: tuple[int, int] = (2, 4),
                  image_height: int = 128, image_width: int = 64,
                  nir_luminance_mix: float = 0.0, overwrite: bool = False) -> pathlib.Path:
  """Writes a synthetic RGB-IR re-ID dataset in LLCM's raw layout.

  Training images go to `vis/<id:04d>/` and `nir/<id:04d>/`, listed with their labels (rank of
  the id among the training ids) in `idx/train_vis.txt` and `idx/train_nir.txt`; test images to
  `test_vis/cam<k>/<id:04d>/` and `test_nir/cam<k>/<id:04d>/` (no NIR cam3, as in LLCM), with
  the test ids in `idx/test_id.txt`. File names carry the camera ("0003_c01_…_nir.jpg").

  Args:
    out_dir: the dataset root to create.
    seed: integer in [0, 2**32); same seed, same bytes.
    num_train_ids, num_test_ids: identities per split (each ≥ 1).
    images_per_camera: (min, max) images per (person, modality, camera), inclusive.
    image_height, image_width: nominal crop size; each camera's crops are a bit larger or
      smaller, and vary per image.
    nir_luminance_mix: see `generate_sysu`.
    overwrite: replace an existing non-empty `out_dir`.

  Returns:
    `out_dir` as an absolute path.

  Raises:
    FileExistsError: `out_dir` exists, is not empty and `overwrite` is False.
    ValueError: invalid options.
  """
  output.check_common_options(seed, image_height, image_width, nir_luminance_mix)
  if min(num_train_ids, num_test_ids) < 1:
    raise ValueError(f"num_train_ids and num_test_ids must be ≥ 1 (got {num_train_ids}, "
                     f"{num_test_ids}).")
  images_per_camera = output.check_images_range("images_per_camera", images_per_camera)
  out_dir = pathlib.Path(out_dir).absolute()
  layout_seed = common.layout_seed("llcm", seed)
  split_ids = llcm_split_ids(num_train_ids, num_test_ids)
  counts = llcm_image_counts(seed, split_ids, images_per_camera)
  people = sample_identities(layout_seed, [i for ids in split_ids.values() for i in ids],
                             nir_luminance_mix=nir_luminance_mix)
  label_of_person = {person_id: label for label, person_id in enumerate(split_ids["train"])}
  index_lines = {modality: [] for modality in layouts.MODALITIES}

  with output.atomic_output(out_dir, overwrite) as partial_dir:
    for (person_id, modality, camera), num_images in counts.items():
      if person_id in label_of_person:
        relative_dir = f"{_LLCM_TRAIN_FOLDERS[modality]}/{person_id:04d}"
      else:
        relative_dir = f"{layouts.LLCM_TEST_FOLDERS[modality]}/cam{camera}/{person_id:04d}"
      (partial_dir / relative_dir).mkdir(parents=True, exist_ok=True)
      for image_number in range(1, num_images + 1):
        file_name = llcm_file_name(person_id, modality, camera, image_number)
        relative_path = f"{relative_dir}/{file_name}"
        image = render.render_image(people[person_id], LLCM_VIEWS[(modality, camera)],
                                    image_number, seed=layout_seed,
                                    image_height=image_height, image_width=image_width)
        output.save_jpeg(image, partial_dir / relative_path)
        if person_id in label_of_person:
          index_lines[modality].append(f"{relative_path} {label_of_person[person_id]}")
    # The real download has every test camera folder.
    for modality in layouts.MODALITIES:
      for camera in layouts.LLCM_TEST_CAMERAS[modality]:
        (partial_dir / layouts.LLCM_TEST_FOLDERS[modality] / f"cam{camera}").mkdir(
          parents=True, exist_ok=True)
    (partial_dir / "idx").mkdir()
    for modality, lines in index_lines.items():
      (partial_dir / layouts.LLCM_TRAIN_INDEX_FILES[modality]).write_text(
        "\n".join(lines) + "\n", encoding="utf-8")
    (partial_dir / layouts.LLCM_TEST_ID_FILE).write_text(
      ",".join(str(i) for i in split_ids["test"]) + "\n", encoding="utf-8")
    output.write_info(partial_dir, "llcm", dict(
      seed=int(seed), num_train_ids=num_train_ids, num_test_ids=num_test_ids,
      images_per_camera=list(images_per_camera), image_height=image_height,
      image_width=image_width, nir_luminance_mix=nir_luminance_mix), sum(counts.values()),
      llcm_counts)
  return out_dir
