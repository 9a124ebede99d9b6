"""A procedurally rendered RGB-IR person re-identification dataset, in a real dataset's layout.

The dataset is written in exactly the raw on-disk layout of a real dataset
(`vireid_jax.data.layouts`, data/README.md), so the loader, builder and evaluation protocols
that serve the real data serve it unchanged:

* "sysu" (`generate_sysu`): SYSU-MM01's `cam1..cam6/<person_id:04d>/<k:04d>.jpg` and
  `exp/{train,val,test}_id.txt`; six cameras, four RGB and two NIR.
* "regdb" (`generate_regdb`): RegDB's `Visible/`, `Thermal/` (co-registered pairs, BMP) and the
  index files of ten random train/test splits, `idx/{train,test}_{visible,thermal}_{t}.txt`.
* "llcm" (`generate_llcm`): LLCM's nine cameras that film in both modalities, low-light visible
  images; training images listed by `idx/train_{vis,nir}.txt`, test images in
  `test_{vis,nir}/cam<k>/<person_id:04d>/`, test ids in `idx/test_id.txt`.

It needs no download and is small enough to train and evaluate a narrow ResNet on a laptop CPU.
Each generator writes a manifest (`synthetic.json`) with its options and the counts the dataset
has (ids, images per modality and camera, per split), which the builders' integrity check
holds the folder to, as it holds a real download to the published counts.

Rendering model
---------------
Each identity is a pedestrian drawn from the seed (`sample_person_attributes`): body proportions
(shoulder and hip width, head size, leg length, limb width), an upper garment (short sleeves,
long sleeves or a long coat) and a lower garment (trousers, shorts or a skirt), each with a
texture pattern (plain, horizontal/vertical/diagonal stripes, checks, dots or a two-tone block,
with a period and a phase) made of two materials; hair style, hat, bag (backpack, shoulder bag,
hand bag) and a chest emblem. Discrete attributes of two identities always differ in at least
three places (`sample_identities`), so identities are distinguishable.

An image (`render_image`) places the pedestrian in a camera's scene: a viewpoint (front, back,
left or right side; a backpack is a large block from the back and two straps from the front, an
emblem is only seen from the front), a walking phase, scale and position jitter, a crop of the
camera's background panorama (cams 1-3 share an indoor family of rooms, cams 4-6 are outdoor;
cam3 films cam2's room, as in SYSU-MM01) with random clutter, and the camera's illumination.
Crops are drawn at 2x and box-downsampled (antialiasing); their native size varies per camera
and per image, as real detector crops do. A `CameraView` describes each camera of a layout
(`SYSU_VIEWS`, `REGDB_VIEWS`: one visible/thermal pair filming the same crop, `LLCM_VIEWS`:
nine cameras, each with a low-light visible and an NIR view of one scene).

The modality gap
----------------
Every material has an RGB reflectance and a near-infrared (NIR) reflectance drawn
*independently*. Visible cameras (1, 2, 4, 5) render RGB with a per-camera colour cast and
per-image exposure; infrared cameras (3, 6) render only the NIR reflectance as a grey image
(saved as 3-channel JPEG, like SYSU-MM01's IR images), under active illumination (a bright
vignetted spot, darker distant background), with a different background response (vegetation
bright, sky dark), blur and stronger sensor noise. So colour and brightness do not transfer
across modalities, while shape, proportions, texture patterns, hair, hats and bags do: a model
must learn modality-invariant cues to match an IR query to an RGB gallery. (The option
`nir_luminance_mix` narrows the gap by letting part of each NIR reflectance follow the visible
luminance; the default 0 keeps them independent.)

Determinism: every random quantity comes from a `numpy.random.Generator` seeded from
(seed, stream, person_id, camera, image number), so the same seed gives byte-identical files,
and adding identities does not change the images of the others. Each layout adds its own offset
to the seed, so two layouts never share identities or scenes (no leak between the datasets of
a cross-dataset experiment); SYSU-MM01's offset is 0. Files are written into a temporary
sibling folder that is renamed when complete.

Usage::

  python -m vireid_jax.data.synthetic --out data/synthetic_sysu --layout sysu --seed 0
  python -m vireid_jax.data.synthetic --out data/synthetic_regdb --layout regdb --num-ids 96
  python -m vireid_jax.data.synthetic --out data/synthetic_llcm --layout llcm
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import inspect
import json
import math
import os
import pathlib
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vireid_jax.data import layouts

GENERATOR_VERSION = 1
# Written into the dataset root with the generator options; ignored by the loader.
INFO_FILE_NAME = "synthetic.json"

_SUPERSAMPLE = 2
_JPEG_QUALITY = 95

# Random streams: each quantity draws from its own generator, so e.g. changing how camera
# presence is drawn cannot shift the appearance of an identity.
_ATTRIBUTE_STREAM = 1
_PRESENCE_STREAM = 2
_SCENE_STREAM = 3
_IMAGE_STREAM = 4

# Native crop size of each camera relative to the nominal (height, width): real detector crops
# differ between cameras (distance, lens, resolution).
_CAMERA_SIZE_FACTORS = {1: (1.0, 1.0), 2: (0.92, 1.06), 3: (1.08, 0.95),
                        4: (1.12, 0.94), 5: (0.96, 1.04), 6: (1.04, 1.0)}
# Every camera of every layout stays within these, so one panorama size serves all of them.
_MAX_SIZE_FACTORS = tuple(max(f[i] for f in _CAMERA_SIZE_FACTORS.values()) for i in (0, 1))
# cam3 films the room of cam2 (the reason for the protocol's cam3/cam2 rule).
_SCENE_OF_CAMERA = {1: 1, 2: 2, 3: 2, 4: 4, 5: 5, 6: 6}

HAIR_STYLES = ("short", "long", "bun")
UPPER_STYLES = ("short_sleeve", "long_sleeve", "coat")
LOWER_STYLES = ("trousers", "shorts", "skirt")
UPPER_PATTERNS = ("plain", "horizontal", "vertical", "diagonal", "checks", "dots", "block")
LOWER_PATTERNS = ("plain", "horizontal", "vertical", "checks")
# Stripe/check periods in body heights: coarse enough to survive a 64 x 32 resize.
PATTERN_PERIODS = (0.11, 0.19)
HATS = ("none", "cap", "beanie")
BAGS = ("none", "backpack", "shoulder_bag", "hand_bag")
EMBLEMS = ("none", "disc", "square", "triangle")
VIEWS = ("front", "back", "left", "right")

# Label-map values: geometry is drawn once as labels, then shaded per modality.
_BACKGROUND, _SKIN, _HAIR, _UPPER, _UPPER_2, _LOWER, _LOWER_2 = 0, 1, 2, 3, 4, 5, 6
_SHOES, _HAT, _BAG, _EMBLEM, _CLUTTER_1, _CLUTTER_2 = 7, 8, 9, 10, 11, 12
_NUM_LABELS = 13
_FIRST_CLUTTER = _CLUTTER_1


@dataclasses.dataclass(frozen=True)
class Material:
  """A surface: RGB reflectance (each in [0, 1]) and an independent NIR reflectance."""

  rgb: tuple[float, float, float]
  nir: float


@dataclasses.dataclass(frozen=True)
class Garment:
  """A garment: style, texture pattern and the two materials the pattern alternates."""

  style: str
  pattern: str
  pattern_period: float  # body heights
  pattern_phase: float  # fraction of a period
  primary: Material
  secondary: Material


@dataclasses.dataclass(frozen=True)
class PersonAttributes:
  """Everything that identifies one synthetic pedestrian. Lengths are in body heights."""

  person_id: int
  shoulder_width: float
  hip_width: float
  head_radius: float
  leg_length: float  # hip to sole
  limb_width: float
  skin: Material
  hair_style: str
  hair: Material
  upper: Garment
  lower: Garment
  shoes: Material
  hat: str
  hat_material: Material
  bag: str
  bag_material: Material
  emblem: str
  emblem_material: Material

  def signature(self) -> tuple:
    """The discrete attributes (what survives the modality change besides proportions)."""
    return (self.hair_style, self.upper.style, self.upper.pattern,
            _period_index(self.upper), self.lower.style, self.lower.pattern,
            _period_index(self.lower), self.hat, self.bag, self.emblem)


def _period_index(garment: Garment) -> int:
  return -1 if garment.pattern == "plain" else PATTERN_PERIODS.index(garment.pattern_period)


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
  return np.random.default_rng([seed, stream, *keys])


@dataclasses.dataclass(frozen=True)
class CameraView:
  """How one camera (in one modality) of a layout renders its images.

  Attributes:
    key: the camera's random-stream key: its images, viewpoints and response are drawn from
      streams keyed by it, so two views with the same key (RegDB's co-registered visible and
      thermal cameras) render the same crop and pose, each in its own modality.
    modality: "visible" or "infrared".
    scene: the background panorama; cameras filming the same place share it.
    indoor: whether that scene is a room (else a street).
    size_factors: native crop (height, width) relative to the nominal size, within
      `_MAX_SIZE_FACTORS`.
    light: scales a visible camera's exposure (LLCM's low-light scenes are darker).
    visible_noise: standard deviation of a visible camera's sensor noise, in [0, 1] units.
  """

  key: int
  modality: str
  scene: int
  indoor: bool
  size_factors: tuple[float, float]
  light: float = 1.0
  visible_noise: float = 0.008

  def __post_init__(self):
    if not all(f <= m for f, m in zip(self.size_factors, _MAX_SIZE_FACTORS)):
      raise ValueError(f"size_factors {self.size_factors} exceed {_MAX_SIZE_FACTORS}.")


# SYSU-MM01's six cameras: the stream key is the camera number.
SYSU_VIEWS = {
  camera: CameraView(key=camera, modality=layouts.sysu_camera_modality(camera),
                     scene=_SCENE_OF_CAMERA[camera],
                     indoor=camera in layouts.SYSU_INDOOR_CAMERAS,
                     size_factors=_CAMERA_SIZE_FACTORS[camera])
  for camera in layouts.SYSU_CAMERAS}


# ----------------------------------------------------------------------------------------------
# Identities.


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> tuple[float, float, float]:
  sector = int(hue * 6.0) % 6
  fraction = hue * 6.0 - int(hue * 6.0)
  p = value * (1.0 - saturation)
  q = value * (1.0 - saturation * fraction)
  t = value * (1.0 - saturation * (1.0 - fraction))
  rgb = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value),
         (value, p, q)][sector]
  return tuple(float(c) for c in rgb)


def _luminance(rgb: Sequence[float]) -> float:
  return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _random_material(rng: np.random.Generator, nir_luminance_mix: float = 0.0) -> Material:
  """A dye: any hue, greys included; NIR reflectance independent of the colour.

  Textile dyes are largely transparent in the NIR, so a fabric's NIR brightness is unrelated
  to its colour; drawing it independently is what makes the modality gap real.
  `nir_luminance_mix` > 0 narrows the gap: that fraction of the NIR reflectance follows the
  visible luminance (never the hue). The random draws are the same for every mix.
  """
  saturation = 0.0 if rng.random() < 0.2 else rng.uniform(0.3, 1.0)
  rgb = _hsv_to_rgb(rng.random(), saturation, rng.uniform(0.12, 0.95))
  independent_nir = rng.uniform(0.08, 0.92)
  nir = (1.0 - nir_luminance_mix) * independent_nir + nir_luminance_mix * _luminance(rgb)
  return Material(rgb=rgb, nir=float(nir))


def _contrasting_material(rng: np.random.Generator, others: Sequence[Material],
                          min_rgb_distance: float = 0.35, min_nir_distance: float = 0.3,
                          nir_luminance_mix: float = 0.0) -> Material:
  """A material that stands out from each of `others` in both modalities.

  Neighbouring parts (pattern stripes, top and trousers, bag and top) then have visible edges
  in RGB *and* in IR, so shapes survive the modality change. The acceptance region is a product
  of an RGB and a NIR condition, so (for nir_luminance_mix = 0) the accepted colour and NIR
  reflectance stay independent.
  """
  for _ in range(1000):
    material = _random_material(rng, nir_luminance_mix)
    if all(np.linalg.norm(np.subtract(material.rgb, other.rgb)) >= min_rgb_distance
           and abs(material.nir - other.nir) >= min_nir_distance for other in others):
      return material
  # Only reachable when a strong luminance mix makes NIR contrast impossible; keep the colour.
  return material


def _choice(rng: np.random.Generator, options: Sequence[str], probabilities) -> str:
  return options[rng.choice(len(options), p=probabilities)]


def _random_garment(rng, styles, style_probabilities, patterns, pattern_probabilities,
                    neighbours: Sequence[Material], nir_luminance_mix: float) -> Garment:
  style = _choice(rng, styles, style_probabilities)
  pattern = _choice(rng, patterns, pattern_probabilities)
  period = PATTERN_PERIODS[rng.integers(len(PATTERN_PERIODS))]
  phase = float(rng.random())
  primary = _contrasting_material(rng, neighbours, 0.2, 0.12, nir_luminance_mix)
  secondary = _contrasting_material(rng, [primary], nir_luminance_mix=nir_luminance_mix)
  return Garment(style=style, pattern=pattern, pattern_period=period, pattern_phase=phase,
                 primary=primary, secondary=secondary)


def sample_person_attributes(seed: int, person_id: int, attempt: int = 0, *,
                             nir_luminance_mix: float = 0.0) -> PersonAttributes:
  """Draws one pedestrian from (seed, person_id, attempt); independent of every other id.

  Args:
    seed: dataset seed.
    person_id: the identity.
    attempt: > 0 gives alternative draws, used by `sample_identities` to keep ids distinct.
    nir_luminance_mix: 0 (default) draws every clothing/accessory NIR reflectance
      independently of its colour (the true modality gap); a value in (0, 1] makes that
      fraction of it follow the visible luminance (see `generate_sysu`).

  Returns:
    The pedestrian's attributes.
  """
  mix = nir_luminance_mix
  rng = _rng(seed, _ATTRIBUTE_STREAM, person_id, attempt)
  skin_value = rng.uniform(0.35, 0.95)
  skin = Material(rgb=_hsv_to_rgb(rng.uniform(0.03, 0.1), rng.uniform(0.25, 0.6), skin_value),
                  # Skin reflects NIR strongly whatever its visible tone.
                  nir=float(rng.uniform(0.55, 0.85)))
  hair = Material(rgb=_hsv_to_rgb(rng.uniform(0.02, 0.12), rng.uniform(0.2, 0.7),
                                  rng.choice([0.08, 0.15, 0.3, 0.55])),
                  nir=float(rng.uniform(0.1, 0.55)))
  upper = _random_garment(rng, UPPER_STYLES, [0.4, 0.4, 0.2], UPPER_PATTERNS,
                          [0.05, 0.16, 0.16, 0.16, 0.16, 0.16, 0.15], neighbours=[skin],
                          nir_luminance_mix=mix)
  lower = _random_garment(rng, LOWER_STYLES, [0.55, 0.25, 0.2], LOWER_PATTERNS,
                          [0.15, 0.29, 0.28, 0.28], neighbours=[skin, upper.primary],
                          nir_luminance_mix=mix)
  return PersonAttributes(
    person_id=person_id,
    shoulder_width=float(rng.uniform(0.17, 0.31)),
    hip_width=float(rng.uniform(0.14, 0.23)),
    head_radius=float(rng.uniform(0.055, 0.075)),
    leg_length=float(rng.uniform(0.44, 0.52)),
    limb_width=float(rng.uniform(0.045, 0.065)),
    skin=skin,
    hair_style=_choice(rng, HAIR_STYLES, [0.45, 0.35, 0.2]),
    hair=hair,
    upper=upper,
    lower=lower,
    shoes=_contrasting_material(rng, [lower.primary], 0.2, 0.12, mix),
    hat=_choice(rng, HATS, [0.6, 0.2, 0.2]),
    hat_material=_contrasting_material(rng, [hair, skin], 0.2, 0.12, mix),
    bag=_choice(rng, BAGS, [0.3, 0.3, 0.2, 0.2]),
    bag_material=_contrasting_material(rng, [upper.primary], 0.2, 0.12, mix),
    emblem=_choice(rng, EMBLEMS, [0.4, 0.2, 0.2, 0.2]),
    emblem_material=_contrasting_material(rng, [upper.primary], nir_luminance_mix=mix),
  )


def sample_identities(seed: int, person_ids: Sequence[int], min_attribute_differences: int = 3,
                      *, nir_luminance_mix: float = 0.0) -> dict[int, PersonAttributes]:
  """Attributes of `person_ids`, redrawn until discrete attributes differ enough.

  Ids are processed in ascending order and an id only compares itself with smaller ids, so
  adding larger ids never changes the existing ones.

  Args:
    seed: dataset seed.
    person_ids: the ids to draw.
    min_attribute_differences: every pair of ids differs in at least this many entries of
      `PersonAttributes.signature()`.
    nir_luminance_mix: see `sample_person_attributes`.

  Returns:
    {person_id: attributes}.
  """
  accepted: dict[int, PersonAttributes] = {}
  signatures: list[tuple] = []
  for person_id in sorted(person_ids):
    for attempt in range(10_000):
      attributes = sample_person_attributes(seed, person_id, attempt,
                                            nir_luminance_mix=nir_luminance_mix)
      signature = attributes.signature()
      if all(sum(a != b for a, b in zip(signature, other)) >= min_attribute_differences
             for other in signatures):
        break
    else:
      raise ValueError(f"Cannot draw {len(person_ids)} mutually distinct identities; use fewer "
                       "ids or a smaller min_attribute_differences.")
    accepted[person_id] = attributes
    signatures.append(signature)
  return accepted


# ----------------------------------------------------------------------------------------------
# Scenes.


def _draw_both(rgb_draw, nir_draw, shape: str, xy, material: Material) -> None:
  """Draws one scene primitive into the RGB and the NIR panorama."""
  fill_rgb = tuple(int(round(255 * c)) for c in material.rgb)
  fill_nir = int(round(255 * material.nir))
  getattr(rgb_draw, shape)(xy, fill=fill_rgb)
  getattr(nir_draw, shape)(xy, fill=fill_nir)


def _jittered(rng, rgb, nir, rgb_jitter=0.06, nir_jitter=0.06) -> Material:
  rgb = np.clip(np.asarray(rgb) + rng.uniform(-rgb_jitter, rgb_jitter, 3), 0, 1)
  return Material(rgb=tuple(float(c) for c in rgb),
                  nir=float(np.clip(nir + rng.uniform(-nir_jitter, nir_jitter), 0, 1)))


def _indoor_scene(rng, rgb_draw, nir_draw, height: int, width: int) -> float:
  """A corridor/room: wall, doors, windows, pillars, posters, tiled floor. Returns horizon."""
  horizon = height * rng.uniform(0.6, 0.7)
  wall_tone = rng.uniform(0.55, 0.9)
  wall = _jittered(rng, _hsv_to_rgb(rng.uniform(0.05, 0.6), rng.uniform(0.05, 0.3), wall_tone),
                   rng.uniform(0.45, 0.75))
  _draw_both(rgb_draw, nir_draw, "rectangle", [0, 0, width, horizon], wall)
  floor = _jittered(rng, _hsv_to_rgb(rng.uniform(0.05, 0.15), rng.uniform(0.1, 0.4),
                                     rng.uniform(0.3, 0.6)), rng.uniform(0.3, 0.6))
  _draw_both(rgb_draw, nir_draw, "rectangle", [0, horizon, width, height], floor)
  # Floor tiles: lines getting sparser towards the camera, as in perspective.
  tile_line = _jittered(rng, np.asarray(floor.rgb) * 0.75, floor.nir * 0.8)
  y, step = horizon, height * 0.02
  while y < height:
    _draw_both(rgb_draw, nir_draw, "rectangle", [0, y, width, y + max(1, step * 0.12)], tile_line)
    y, step = y + step, step * 1.35
  x = rng.uniform(0, width * 0.1)
  while x < width:
    kind = rng.choice(["door", "window", "pillar", "poster", "gap"], p=[0.3, 0.2, 0.2, 0.2, 0.1])
    item_width = width * rng.uniform(0.04, 0.1)
    if kind == "door":
      door = _random_material(rng)
      _draw_both(rgb_draw, nir_draw, "rectangle",
                 [x, horizon - height * rng.uniform(0.35, 0.45), x + item_width, horizon], door)
    elif kind == "window":
      glass = Material(rgb=_hsv_to_rgb(0.58, rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)),
                       nir=float(rng.uniform(0.7, 1.0)))
      top = height * rng.uniform(0.08, 0.2)
      _draw_both(rgb_draw, nir_draw, "rectangle",
                 [x, top, x + item_width * 1.5, top + height * rng.uniform(0.2, 0.3)], glass)
    elif kind == "pillar":
      pillar = _jittered(rng, np.asarray(wall.rgb) * rng.uniform(0.7, 1.1), wall.nir * 1.1)
      _draw_both(rgb_draw, nir_draw, "rectangle", [x, 0, x + item_width * 0.8, horizon], pillar)
    elif kind == "poster":
      top = height * rng.uniform(0.2, 0.4)
      _draw_both(rgb_draw, nir_draw, "rectangle",
                 [x, top, x + item_width, top + item_width * 1.4], _random_material(rng))
    x += item_width * rng.uniform(1.8, 3.5)
  skirting = _jittered(rng, np.asarray(wall.rgb) * 0.5, wall.nir * 0.6)
  _draw_both(rgb_draw, nir_draw, "rectangle", [0, horizon - height * 0.012, width, horizon],
             skirting)
  return horizon


def _outdoor_scene(rng, rgb_draw, nir_draw, height: int, width: int) -> float:
  """A street: sky, buildings, trees, pavement and road. Returns the horizon row."""
  horizon = height * rng.uniform(0.5, 0.62)
  # Sky is bright in RGB but dark in NIR; vegetation is the reverse (the red edge).
  sky = Material(rgb=_hsv_to_rgb(0.58, rng.uniform(0.1, 0.5), rng.uniform(0.75, 1.0)),
                 nir=float(rng.uniform(0.15, 0.3)))
  _draw_both(rgb_draw, nir_draw, "rectangle", [0, 0, width, horizon], sky)
  x = -rng.uniform(0, width * 0.1)
  while x < width:
    building_width = width * rng.uniform(0.12, 0.3)
    top = horizon - height * rng.uniform(0.25, 0.55)
    facade = _jittered(rng, _hsv_to_rgb(rng.uniform(0.0, 0.15), rng.uniform(0.0, 0.35),
                                        rng.uniform(0.35, 0.85)), rng.uniform(0.3, 0.6))
    _draw_both(rgb_draw, nir_draw, "rectangle", [x, top, x + building_width, horizon], facade)
    window = Material(rgb=_hsv_to_rgb(0.6, 0.2, rng.uniform(0.2, 0.5)),
                      nir=float(rng.uniform(0.05, 0.25)))
    window_size = height * 0.035
    for wy in np.arange(top + window_size, horizon - window_size * 2, window_size * 2.2):
      for wx in np.arange(x + window_size, x + building_width - window_size, window_size * 2):
        _draw_both(rgb_draw, nir_draw, "rectangle", [wx, wy, wx + window_size, wy + window_size],
                   window)
    x += building_width + width * rng.uniform(0.0, 0.08)
  ground = _jittered(rng, (0.5, 0.5, 0.5), 0.45, rgb_jitter=0.12, nir_jitter=0.1)
  _draw_both(rgb_draw, nir_draw, "rectangle", [0, horizon, width, height], ground)
  road_top = horizon + (height - horizon) * rng.uniform(0.3, 0.6)
  road = _jittered(rng, (0.3, 0.3, 0.32), 0.25, rgb_jitter=0.08)
  _draw_both(rgb_draw, nir_draw, "rectangle", [0, road_top, width, height], road)
  marking = Material(rgb=(0.92, 0.92, 0.85), nir=0.8)
  for lx in np.arange(rng.uniform(0, width * 0.1), width, width * 0.12):
    _draw_both(rgb_draw, nir_draw, "rectangle",
               [lx, road_top + height * 0.08, lx + width * 0.05, road_top + height * 0.095],
               marking)
  for _ in range(int(rng.integers(3, 7))):
    tree_x = rng.uniform(0, width)
    crown = height * rng.uniform(0.08, 0.16)
    base = horizon + height * rng.uniform(0.0, 0.05)
    trunk = Material(rgb=(0.3, 0.22, 0.15), nir=0.35)
    _draw_both(rgb_draw, nir_draw, "rectangle",
               [tree_x - crown * 0.12, base - crown * 2.2, tree_x + crown * 0.12, base], trunk)
    leaves = Material(rgb=_hsv_to_rgb(rng.uniform(0.22, 0.38), rng.uniform(0.4, 0.8),
                                      rng.uniform(0.25, 0.6)),
                      nir=float(rng.uniform(0.75, 0.95)))
    _draw_both(rgb_draw, nir_draw, "ellipse",
               [tree_x - crown, base - crown * 3.6, tree_x + crown, base - crown * 1.6], leaves)
  return horizon


@dataclasses.dataclass(frozen=True)
class _CameraScene:
  rgb: np.ndarray  # [Hp, Wp, 3] float32 in [0, 1]
  nir: np.ndarray  # [Hp, Wp] float32 in [0, 1]
  indoor: bool
  # Camera response: exposure gain and per-channel colour cast (RGB cameras).
  gain: float
  colour_cast: np.ndarray  # [3]


@functools.lru_cache(maxsize=10)
def _scene_panorama(seed: int, scene_index: int, indoor: bool, max_height: int,
                    max_width: int) -> tuple[np.ndarray, np.ndarray]:
  """A scene's background panorama, large enough to crop any of its cameras' (2x) canvases.

  Returns:
    (rgb [Hp, Wp, 3], nir [Hp, Wp]) float32 in [0, 1], contrast halved around the mean.
  """
  rng = _rng(seed, _SCENE_STREAM, scene_index)
  height, width = int(max_height * 1.6), int(max_width * 6)
  rgb_image = Image.new("RGB", (width, height))
  nir_image = Image.new("L", (width, height))
  rgb_draw, nir_draw = ImageDraw.Draw(rgb_image), ImageDraw.Draw(nir_image)
  if indoor:
    _indoor_scene(rng, rgb_draw, nir_draw, height, width)
  else:
    _outdoor_scene(rng, rgb_draw, nir_draw, height, width)
  # Halve the scene's contrast around its mean: the background is out of focus and hazier than
  # the person the detector centred on, and should not dominate the crop.
  rgb = np.asarray(rgb_image, np.float32) / 255.0
  nir = np.asarray(nir_image, np.float32) / 255.0
  return 0.5 * (rgb + rgb.mean(axis=(0, 1))), 0.5 * (nir + nir.mean())


def _camera_scene(seed: int, view: CameraView, max_height: int, max_width: int) -> _CameraScene:
  """The background panorama of a camera and the camera's response."""
  rgb, nir = _scene_panorama(seed, view.scene, view.indoor, max_height, max_width)
  # The camera's own response, from a stream of the camera (cam2 and cam3 share the room only).
  camera_rng = _rng(seed, _SCENE_STREAM, 100 + view.key)
  gain = float(camera_rng.uniform(0.85, 1.15))
  # Indoor lighting is warm, outdoor daylight cool.
  base_cast = np.array([1.06, 1.0, 0.9]) if view.indoor else np.array([0.95, 1.0, 1.07])
  colour_cast = base_cast * camera_rng.uniform(0.94, 1.06, 3)
  return _CameraScene(rgb=rgb, nir=nir, indoor=view.indoor, gain=gain,
                      colour_cast=colour_cast.astype(np.float32))


# ----------------------------------------------------------------------------------------------
# Pedestrians.


def _limb(draw: ImageDraw.ImageDraw, start, end, start_width: float, end_width: float,
          label: int) -> None:
  """A tapered segment with rounded ends from `start` to `end` (x, y pixels)."""
  # Plain floats: this runs ~10 times per image, where NumPy's per-call overhead dominates.
  (x0, y0), (x1, y1) = start, end
  length = max(math.hypot(x1 - x0, y1 - y0), 1e-6)
  nx, ny = -(y1 - y0) / length, (x1 - x0) / length
  h0, h1 = start_width / 2, end_width / 2
  draw.polygon([(x0 + nx * h0, y0 + ny * h0), (x1 + nx * h1, y1 + ny * h1),
                (x1 - nx * h1, y1 - ny * h1), (x0 - nx * h0, y0 - ny * h0)], fill=label)
  draw.ellipse([x0 - h0, y0 - h0, x0 + h0, y0 + h0], fill=label)
  draw.ellipse([x1 - h1, y1 - h1, x1 + h1, y1 + h1], fill=label)


def _ellipse(draw, cx, cy, rx, ry, label) -> None:
  draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=label)


@dataclasses.dataclass(frozen=True)
class _Pose:
  """Where and how the pedestrian stands in the (supersampled) canvas."""

  view: str
  centre_x: float
  top: float
  body_height: float
  stride: float  # -1..1, walking phase
  arm_swing: float  # -1..1


def _draw_person(draw: ImageDraw.ImageDraw, person: PersonAttributes, pose: _Pose) -> None:
  """Draws the pedestrian's labels in painter's order for its viewpoint."""
  b, cx, top = pose.body_height, pose.centre_x, pose.top
  side = pose.view in ("left", "right")
  facing = {"left": -1.0, "right": 1.0}.get(pose.view, 0.0)
  # The side view shows the body's depth, not its width.
  width_factor = 0.55 if side else 1.0
  head_radius = person.head_radius * b
  head_y = top + head_radius
  shoulder_y = top + 2 * head_radius + 0.025 * b
  shoulder = person.shoulder_width / 2 * b * width_factor
  hip = person.hip_width / 2 * b * width_factor
  hip_y = top + (1 - person.leg_length) * b
  sole_y = top + b
  limb = person.limb_width * b
  leg_length = sole_y - hip_y
  arm_length = 0.37 * b

  def draw_backpack():
    if person.bag != "backpack":
      return
    if pose.view == "back":
      draw.rounded_rectangle([cx - shoulder * 0.75, shoulder_y + 0.01 * b, cx + shoulder * 0.75,
                              shoulder_y + 0.23 * b], radius=0.03 * b, fill=_BAG)
    elif side:
      back, pack_back = cx - facing * shoulder * 0.8, cx - facing * (shoulder + 0.1 * b)
      draw.rounded_rectangle([min(back, pack_back), shoulder_y + 0.01 * b,
                              max(back, pack_back), shoulder_y + 0.22 * b],
                             radius=0.02 * b, fill=_BAG)

  def draw_legs():
    stride = pose.stride * (0.12 if side else 0.03) * b
    spread = 0.0 if side else hip * 0.5
    for sign in (-1.0, 1.0):
      hip_point = (cx + sign * spread, hip_y + 0.02 * b)
      foot_point = (cx + sign * (spread * 1.1 + stride), sole_y - 0.03 * b)
      top_width, bottom_width = (hip * 1.05 if not side else hip * 1.6), limb * 1.1
      _limb(draw, hip_point, foot_point, top_width, bottom_width, _SKIN)
      covered = {"trousers": 0.97, "shorts": 0.42, "skirt": 0.0}[person.lower.style]
      if covered:
        knee = np.add(hip_point, np.subtract(foot_point, hip_point) * covered)
        cover_width = top_width + (bottom_width - top_width) * covered
        _limb(draw, hip_point, knee, top_width * 1.05, cover_width * 1.1, _LOWER)
      shoe_x = foot_point[0] + facing * limb * 0.4
      _ellipse(draw, shoe_x, sole_y - 0.02 * b, limb * (1.1 if side else 0.75), 0.025 * b,
               _SHOES)
    draw.polygon([(cx - hip, hip_y - 0.01 * b), (cx + hip, hip_y - 0.01 * b),
                  (cx + hip * 0.9, hip_y + 0.07 * b), (cx - hip * 0.9, hip_y + 0.07 * b)],
                 fill=_LOWER)
    if person.lower.style == "skirt":
      flare = 1.0 + 0.5 * (0.6 if side else 1.0)
      hem_y = hip_y + 0.5 * leg_length
      draw.polygon([(cx - hip, hip_y - 0.01 * b), (cx + hip, hip_y - 0.01 * b),
                    (cx + hip * flare, hem_y), (cx - hip * flare, hem_y)], fill=_LOWER)

  def draw_torso():
    hem_y = hip_y + (0.22 * b if person.upper.style == "coat" else 0.03 * b)
    hem = hip * (1.3 if person.upper.style == "coat" else 1.0)
    draw.polygon([(cx - shoulder, shoulder_y), (cx + shoulder, shoulder_y),
                  (cx + hem, hem_y), (cx - hem, hem_y)], fill=_UPPER)
    for sign in (-1.0, 1.0):
      _ellipse(draw, cx + sign * (shoulder - limb * 0.4), shoulder_y + limb * 0.45, limb * 0.6,
               limb * 0.55, _UPPER)

  def draw_arm(shoulder_point, angle):
    hand = (shoulder_point[0] + np.sin(angle) * arm_length,
            shoulder_point[1] + np.cos(angle) * arm_length)
    _limb(draw, shoulder_point, hand, limb, limb * 0.8, _SKIN)
    covered = {"short_sleeve": 0.33, "long_sleeve": 0.9, "coat": 0.9}[person.upper.style]
    elbow = np.add(shoulder_point, np.subtract(hand, shoulder_point) * covered)
    _limb(draw, shoulder_point, elbow, limb * 1.15, limb * 1.05, _UPPER)
    _ellipse(draw, hand[0], hand[1], limb * 0.5, limb * 0.55, _SKIN)
    return hand

  def draw_arms():
    hands = []
    if side:
      angle = facing * pose.arm_swing * 0.45
      hands.append(draw_arm((cx - facing * shoulder * 0.2, shoulder_y + limb * 0.4), angle))
    else:
      for sign in (-1.0, 1.0):
        angle = sign * (0.08 + 0.05 * pose.arm_swing * sign)
        hands.append(draw_arm((cx + sign * (shoulder - limb * 0.45), shoulder_y + limb * 0.4),
                              angle))
    return hands

  def draw_emblem():
    if pose.view != "front" or person.emblem == "none":
      return
    size, ey = 0.045 * b, shoulder_y + 0.1 * b
    if person.emblem == "disc":
      _ellipse(draw, cx, ey, size, size, _EMBLEM)
    elif person.emblem == "square":
      draw.rectangle([cx - size, ey - size, cx + size, ey + size], fill=_EMBLEM)
    else:
      draw.polygon([(cx, ey - size * 1.2), (cx + size * 1.2, ey + size),
                    (cx - size * 1.2, ey + size)], fill=_EMBLEM)

  def draw_front_straps():
    if person.bag == "backpack" and pose.view == "front":
      for sign in (-1.0, 1.0):
        x = cx + sign * shoulder * 0.55
        _limb(draw, (x, shoulder_y), (x + sign * 0.01 * b, shoulder_y + 0.17 * b),
              limb * 0.45, limb * 0.45, _BAG)

  def draw_shoulder_bag():
    if person.bag != "shoulder_bag":
      return
    # Strap from the left shoulder to the right hip; the bag hangs at the right hip. Seen from
    # the back the picture is mirrored; from the side the bag is at the hip.
    mirror = {"front": 1.0, "back": -1.0}.get(pose.view, 0.0)
    bag_x = cx - mirror * hip * 1.15 if not side else cx - facing * hip * 0.3
    if not side:
      _limb(draw, (cx + mirror * shoulder * 0.7, shoulder_y), (bag_x, hip_y - 0.02 * b),
            limb * 0.35, limb * 0.35, _BAG)
    draw.rounded_rectangle([bag_x - 0.06 * b, hip_y - 0.03 * b, bag_x + 0.06 * b,
                            hip_y + 0.07 * b], radius=0.015 * b, fill=_BAG)

  def draw_hand_bag(hands):
    if person.bag != "hand_bag":
      return
    hand = hands[-1]
    draw.rectangle([hand[0] - 0.045 * b, hand[1] + 0.01 * b, hand[0] + 0.045 * b,
                    hand[1] + 0.12 * b], fill=_BAG)

  def draw_head():
    neck_width = head_radius * 0.6
    draw.rectangle([cx - neck_width, head_y + head_radius * 0.5, cx + neck_width,
                    shoulder_y + 0.01 * b], fill=_SKIN)
    head_x = cx + facing * head_radius * 0.15
    _ellipse(draw, head_x, head_y, head_radius * (0.9 if side else 0.85), head_radius, _SKIN)
    return head_x

  def draw_hair(head_x):
    hair_rx, hair_ry = head_radius * 1.0, head_radius * 1.08
    if pose.view == "back":
      _ellipse(draw, head_x, head_y, hair_rx * 0.95, hair_ry, _HAIR)
      if person.hair_style == "long":
        draw.rectangle([cx - head_radius * 1.05, head_y, cx + head_radius * 1.05,
                        shoulder_y + 0.12 * b], fill=_HAIR)
    else:
      # The top of the head; from the side, also the back of the head.
      draw.pieslice([head_x - hair_rx, head_y - hair_ry, head_x + hair_rx, head_y + hair_ry * 0.7],
                    180, 360, fill=_HAIR)
      if side:
        back_x = head_x - facing * head_radius * 0.45
        _ellipse(draw, back_x, head_y, head_radius * 0.6, head_radius * 0.9, _HAIR)
        if person.hair_style == "long":
          x0 = head_x - facing * head_radius * 1.1
          draw.rectangle([min(x0, head_x), head_y, max(x0, head_x), shoulder_y + 0.12 * b],
                         fill=_HAIR)
      elif person.hair_style == "long":
        for sign in (-1.0, 1.0):
          x = head_x + sign * head_radius * 0.95
          draw.rectangle([min(x, x + sign * head_radius * 0.4), head_y - head_radius * 0.3,
                          max(x, x + sign * head_radius * 0.4), shoulder_y + 0.1 * b],
                         fill=_HAIR)
    if person.hair_style == "bun":
      bun_x = head_x - facing * head_radius * 0.9
      bun_y = head_y - head_radius * (0.2 if side else 0.95)
      _ellipse(draw, bun_x, bun_y, head_radius * 0.45, head_radius * 0.45, _HAIR)

  def draw_hat(head_x):
    if person.hat == "none":
      return
    if person.hat == "beanie":
      draw.pieslice([head_x - head_radius * 1.08, head_y - head_radius * 1.45,
                     head_x + head_radius * 1.08, head_y + head_radius * 0.55], 180, 360,
                    fill=_HAT)
      return
    draw.pieslice([head_x - head_radius * 1.05, head_y - head_radius * 1.15,
                   head_x + head_radius * 1.05, head_y + head_radius * 0.6], 180, 360, fill=_HAT)
    brim_y = head_y - head_radius * 0.28
    if side:
      x0, x1 = head_x, head_x + facing * head_radius * 1.7
      draw.rectangle([min(x0, x1), brim_y - head_radius * 0.12, max(x0, x1),
                      brim_y + head_radius * 0.12], fill=_HAT)
    elif pose.view == "front":
      _ellipse(draw, head_x, brim_y, head_radius * 1.1, head_radius * 0.22, _HAT)

  if side:
    draw_backpack()
  draw_legs()
  draw_torso()
  draw_emblem()
  hands = draw_arms()
  draw_front_straps()
  head_x = draw_head()
  draw_hair(head_x)
  draw_hat(head_x)
  if pose.view == "back":
    draw_backpack()
  draw_shoulder_bag()
  draw_hand_bag(hands)


def pattern_mask(garment: Garment, u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
  """Where a garment shows its secondary material.

  Patterns are defined in body heights around the body axis, so they scale with the person
  and look the same in every camera and modality.

  Args:
    garment: the garment.
    u: horizontal body coordinate, (x - body axis) / body height, e.g. [1, W].
    v: vertical body coordinate, (y - top of head) / body height, e.g. [H, 1].

  Returns:
    Boolean mask of the broadcast shape of u and v (e.g. [H, W]); None for plain garments.
  """
  period, phase = garment.pattern_period, garment.pattern_phase * 2 * np.pi
  pattern = garment.pattern
  if pattern == "plain":
    return None
  if pattern == "horizontal":
    return np.sin(2 * np.pi * v / period + phase) > 0
  if pattern == "vertical":
    return np.sin(2 * np.pi * u / period + phase) > 0
  if pattern == "diagonal":
    return np.sin(2 * np.pi * (u + v) / (period * 1.2) + phase) > 0
  if pattern == "checks":
    return (np.sin(2 * np.pi * u / period + phase) > 0) ^ (np.sin(2 * np.pi * v / period) > 0)
  if pattern == "dots":
    du = np.mod(u / period + garment.pattern_phase, 1.0) - 0.5
    dv = np.mod(v / period, 1.0) - 0.5
    return du * du + dv * dv < 0.09
  if pattern == "block":
    # Two-tone top: the lower part of the garment (from mid-chest down) in the second material.
    return v > 0.3 + 0.1 * garment.pattern_phase
  raise ValueError(f"Unknown pattern {pattern!r}")


def _material_table(person: PersonAttributes, clutter: Sequence[Material],
                    modality: str) -> np.ndarray:
  """Per label value: [NUM_LABELS, 3] RGB reflectances or [NUM_LABELS] NIR reflectances."""
  materials = {
    _SKIN: person.skin, _HAIR: person.hair, _UPPER: person.upper.primary,
    _UPPER_2: person.upper.secondary, _LOWER: person.lower.primary,
    _LOWER_2: person.lower.secondary, _SHOES: person.shoes, _HAT: person.hat_material,
    _BAG: person.bag_material, _EMBLEM: person.emblem_material,
    _CLUTTER_1: clutter[0], _CLUTTER_2: clutter[1],
  }
  if modality == layouts.VISIBLE:
    table = np.zeros((_NUM_LABELS, 3), np.float32)
    for label, material in materials.items():
      table[label] = material.rgb
  else:
    table = np.zeros((_NUM_LABELS,), np.float32)
    for label, material in materials.items():
      table[label] = material.nir
  return table


def _crop_size(view: CameraView, image_height: int, image_width: int,
               rng: np.random.Generator) -> tuple[int, int]:
  """Native (height, width) of one crop: per-camera size, jittered per image."""
  height_factor, width_factor = view.size_factors
  height = image_height * height_factor * rng.uniform(0.93, 1.07)
  width = image_width * width_factor * rng.uniform(0.93, 1.07)
  return max(16, int(round(height))), max(8, int(round(width)))


def render_image(person: PersonAttributes, camera: int | CameraView, image_number: int, *,
                 seed: int, image_height: int, image_width: int) -> np.ndarray:
  """Renders image `image_number` (1-based) of `person` in camera `camera`.

  Random draws do not depend on material values, so changing a person's RGB colours leaves its
  infrared images unchanged and vice versa.

  Args:
    person: the pedestrian.
    camera: a SYSU camera number 1..6 or a `CameraView` (modality, scene, crop size and random
      streams follow from it).
    image_number: which image of (person, camera), from 1; each number is a new draw.
    seed: dataset seed.
    image_height, image_width: nominal crop size; the native size varies around it.

  Returns:
    [H, W, 3] uint8 image; for infrared cameras the three channels are equal.
  """
  camera_view = camera if isinstance(camera, CameraView) else SYSU_VIEWS[camera]
  modality = camera_view.modality
  # Viewpoint of the tracklet: consecutive frames of one camera mostly share it.
  # People walk along routes, so a person is mostly seen from the same side (towards or away
  # from the cameras); some cameras see them the other way or from the side.
  route_view = VIEWS[_rng(seed, _IMAGE_STREAM, person.person_id, 0, 0).integers(2)]
  tracklet_rng = _rng(seed, _IMAGE_STREAM, person.person_id, camera_view.key, 0)
  other_view = VIEWS[tracklet_rng.choice(4, p=[0.45, 0.45, 0.05, 0.05])]
  dominant_view = route_view if tracklet_rng.random() < 0.7 else other_view
  tracklet_scale = tracklet_rng.uniform(0.82, 0.9)
  rng = _rng(seed, _IMAGE_STREAM, person.person_id, camera_view.key, image_number)

  height, width = _crop_size(camera_view, image_height, image_width, rng)
  canvas_height, canvas_width = height * _SUPERSAMPLE, width * _SUPERSAMPLE
  # The panorama must hold the largest crop of any camera (size factor x 1.07 jitter).
  max_height = int(np.ceil(image_height * _MAX_SIZE_FACTORS[0] * 1.07)) * _SUPERSAMPLE
  max_width = int(np.ceil(image_width * _MAX_SIZE_FACTORS[1] * 1.07)) * _SUPERSAMPLE
  scene = _camera_scene(seed, camera_view, max_height, max_width)
  scene_height, scene_width = scene.nir.shape
  y0 = int(rng.uniform(0.2, 0.8) * (scene_height - canvas_height))
  x0 = int(rng.uniform(0.0, 1.0) * (scene_width - canvas_width))

  labels = Image.new("L", (canvas_width, canvas_height), _BACKGROUND)
  draw = ImageDraw.Draw(labels)
  # Clutter behind the person: objects of the scene that differ from crop to crop.
  clutter = [_random_material(rng), _random_material(rng)]
  num_clutter = rng.choice(3, p=[0.5, 0.4, 0.1])
  for index in range(2):
    cx, cy = rng.uniform(0, canvas_width), rng.uniform(0.3, 1.0) * canvas_height
    rx, ry = rng.uniform(0.05, 0.25) * canvas_width, rng.uniform(0.03, 0.15) * canvas_height
    shape = "ellipse" if rng.random() < 0.5 else "rectangle"
    if index < num_clutter:
      getattr(draw, shape)([cx - rx, cy - ry, cx + rx, cy + ry], fill=_FIRST_CLUTTER + index)

  view = dominant_view if rng.random() < 0.9 else VIEWS[rng.integers(4)]
  body_height = canvas_height * tracklet_scale * rng.uniform(0.96, 1.04)
  pose = _Pose(view=view,
               centre_x=canvas_width * (0.5 + rng.uniform(-0.05, 0.05)),
               top=(canvas_height - body_height) * rng.uniform(0.3, 0.7),
               body_height=body_height,
               stride=rng.uniform(-1, 1),
               arm_swing=rng.uniform(-1, 1))
  _draw_person(draw, person, pose)
  labels = np.array(labels)  # [2H, 2W] uint8, writable

  # Patterns in body coordinates.
  v = (np.arange(canvas_height, dtype=np.float32)[:, None] - pose.top) / body_height  # [2H, 1]
  u = (np.arange(canvas_width, dtype=np.float32)[None, :] - pose.centre_x) / body_height  # [1, 2W]
  for primary, secondary, garment in ((_UPPER, _UPPER_2, person.upper),
                                      (_LOWER, _LOWER_2, person.lower)):
    mask = pattern_mask(garment, u, v)
    if mask is not None:
      np.putmask(labels, (labels == primary) & mask, secondary)

  # Per-image material jitter (fabric folds, white balance drift).
  material_jitter = rng.uniform(0.94, 1.06, (_NUM_LABELS, 1)).astype(np.float32)
  # Illumination draws, all made for both modalities so the stream does not depend on it.
  exposure = rng.uniform(0.8, 1.2)
  gamma = rng.uniform(0.85, 1.15)
  cast = rng.uniform(0.97, 1.03, 3).astype(np.float32)
  ir_background_falloff = rng.uniform(0.45, 0.7)
  ir_spot = (rng.uniform(0.35, 0.65) * width, rng.uniform(0.3, 0.6) * height)
  ir_vignetting = rng.uniform(0.15, 0.35)
  ir_noise = rng.uniform(0.01, 0.02)
  noise_rng = np.random.default_rng(rng.integers(2**63))

  table = _material_table(person, clutter, modality)  # [NUM_LABELS, C]
  table = table * (material_jitter if modality == layouts.VISIBLE else material_jitter[:, 0])
  background_crop = (scene.rgb if modality == layouts.VISIBLE else scene.nir)[
    y0:y0 + canvas_height, x0:x0 + canvas_width]  # [2H, 2W(, 3)]
  if modality == layouts.INFRARED:
    # The active illuminator sits at the camera: the distant scene gets less of its light.
    table[_FIRST_CLUTTER:] *= ir_background_falloff
    background_crop = background_crop * np.float32(ir_background_falloff)
  # Compose at 2x with a table look-up (label 0 looks up zeros) plus the masked background.
  is_background = labels == _BACKGROUND
  if modality == layouts.VISIBLE:
    is_background = is_background[..., None]
  image = np.take(table, labels, axis=0) + background_crop * is_background
  person_coverage = _box_downsample(
    ((labels > _BACKGROUND) & (labels < _FIRST_CLUTTER)).astype(np.float32))  # [H, W]
  image = _box_downsample(image)

  # Soft body shading (a lit front, darker flanks and feet), the same in both modalities. It is
  # smooth, so it is applied at 1x, weighted by how much of each pixel the person covers.
  y = (np.arange(height, dtype=np.float32)[:, None] + 0.5) * _SUPERSAMPLE
  x = (np.arange(width, dtype=np.float32)[None, :] + 0.5) * _SUPERSAMPLE
  shoulder_px = person.shoulder_width / 2 * body_height
  shading = (1.0 - 0.3 * np.clip(np.abs(x - pose.centre_x) / (shoulder_px * 1.3), 0, 1) ** 2
             - 0.12 * np.clip((y - pose.top) / body_height, 0, 1))  # [H, W]
  shading = 1.0 - person_coverage * (1.0 - shading)

  if modality == layouts.VISIBLE:
    light = scene.gain * (exposure * camera_view.light)
    image *= shading[..., None] * (light * scene.colour_cast * cast)
    image = np.clip(image, 0, 1) ** gamma
    image += noise_rng.normal(0, camera_view.visible_noise, image.shape).astype(np.float32)
  else:
    # Active NIR illumination: a bright spot that falls off towards the crop's corners.
    yy = (np.arange(height, dtype=np.float32)[:, None] - ir_spot[1]) / height
    xx = (np.arange(width, dtype=np.float32)[None, :] - ir_spot[0]) / width
    image *= shading * (1.0 - ir_vignetting * (xx ** 2 + yy ** 2) * 2.5) * (1.15 * exposure)
    image = np.clip(image, 0, 1) ** gamma
    image = _blur(image) + noise_rng.normal(0, ir_noise, image.shape).astype(np.float32)
    image = np.repeat(image[..., None], 3, axis=-1)
  return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


def _box_downsample(image: np.ndarray) -> np.ndarray:
  """Averages _SUPERSAMPLE x _SUPERSAMPLE blocks: [2H, 2W, ...] -> [H, W, ...]."""
  s = _SUPERSAMPLE
  height, width = image.shape[0] // s, image.shape[1] // s
  total = np.zeros((height, width, *image.shape[2:]), np.float32)
  # Summing strided views is several times faster than reshape + mean.
  for dy in range(s):
    for dx in range(s):
      total += image[dy:height * s:s, dx:width * s:s]
  return total * np.float32(1.0 / (s * s))


def _blur(image: np.ndarray) -> np.ndarray:
  """A light blur of a [H, W] float image: NIR optics are softer than RGB ones."""
  as_pil = Image.fromarray(np.clip(image * 255, 0, 255).astype(np.uint8))
  return np.asarray(as_pil.filter(ImageFilter.GaussianBlur(0.5)), np.float32) / 255.0


# ----------------------------------------------------------------------------------------------
# Writing a dataset, whatever its layout.

# Identities and scenes are drawn from the seed plus a per-layout offset, so that datasets of
# different layouts never share people or backgrounds, whatever their seeds: a cross-dataset
# experiment (e.g. SYSU-MM01 -> RegDB) must not meet its training people again in the target.
# SYSU-MM01's offset is 0, so its images are those of earlier versions.
_LAYOUT_SEED_OFFSETS = {"sysu": 0, "regdb": 1 << 32, "llcm": 2 << 32}
_SEED_LIMIT = 1 << 32
# Random stream of RegDB's ten train/test splits.
_TRIAL_STREAM = 5


def _layout_seed(layout: str, seed: int) -> int:
  return _LAYOUT_SEED_OFFSETS[layout] + int(seed)


def _check_common_options(seed, image_height: int, image_width: int,
                          nir_luminance_mix: float) -> None:
  if not (isinstance(seed, (int, np.integer)) and 0 <= seed < _SEED_LIMIT):
    raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
  if not 0.0 <= nir_luminance_mix <= 1.0:
    raise ValueError(f"nir_luminance_mix must be in [0, 1], got {nir_luminance_mix}")
  if image_height < 32 or image_width < 16:
    raise ValueError(f"image size must be at least 32 x 16, got {image_height} x {image_width}")


def _check_images_range(name: str, value) -> tuple[int, int]:
  min_images, max_images = (int(n) for n in value)
  if not 1 <= min_images <= max_images:
    raise ValueError(f"{name} must be (min, max) with 1 ≤ min ≤ max, got {tuple(value)}")
  return min_images, max_images


def _save_jpeg(image: np.ndarray, path: pathlib.Path) -> None:
  # Fixed quality and subsampling: the bytes depend only on the pixels (and libjpeg).
  Image.fromarray(image).save(path, format="JPEG", quality=_JPEG_QUALITY, subsampling=2,
                              optimize=False)


def _save_bmp(image: np.ndarray, path: pathlib.Path) -> None:
  # RegDB ships uncompressed bitmaps.
  Image.fromarray(image).save(path, format="BMP")


def _prepare_output(out_dir: pathlib.Path, overwrite: bool) -> pathlib.Path:
  """Checks `out_dir` and returns an empty temporary sibling folder to write into."""
  if out_dir.exists():
    if not out_dir.is_dir():
      raise FileExistsError(f"Output path {out_dir} exists and is not a folder.")
    if any(out_dir.iterdir()) and not overwrite:
      raise FileExistsError(
        f"Output folder {out_dir} exists and is not empty; refusing to overwrite it. Delete it, "
        "choose another folder, or pass overwrite=True (--overwrite).")
  out_dir.parent.mkdir(parents=True, exist_ok=True)
  partial_dir = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
  if partial_dir.exists():
    shutil.rmtree(partial_dir)
  partial_dir.mkdir()
  return partial_dir


def _publish(partial_dir: pathlib.Path, out_dir: pathlib.Path) -> None:
  """Moves the finished dataset into place with renames, so it never looks half-written."""
  if out_dir.exists():
    old_dir = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    os.rename(out_dir, old_dir)
    os.rename(partial_dir, out_dir)
    shutil.rmtree(old_dir)
  else:
    os.rename(partial_dir, out_dir)


@contextlib.contextmanager
def _atomic_output(out_dir: pathlib.Path, overwrite: bool) -> Iterator[pathlib.Path]:
  """Yields an empty temporary folder; publishes it as `out_dir` if the block completes.

  An exception (or Ctrl-C) inside the block removes the temporary folder and leaves `out_dir`
  as it was.
  """
  partial_dir = _prepare_output(out_dir, overwrite)
  try:
    yield partial_dir
    _publish(partial_dir, out_dir)
  except BaseException:
    shutil.rmtree(partial_dir, ignore_errors=True)
    raise


def _write_info(folder: pathlib.Path, layout: str, options: dict, num_images: int) -> None:
  """Writes the manifest: the generator options and the counts the dataset must have."""
  info = dict(generator="vireid_jax.data.synthetic", version=GENERATOR_VERSION, layout=layout,
              **options, num_images=num_images)
  info["expected_counts"] = expected_counts(info)
  (folder / INFO_FILE_NAME).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")


def _count_plan(images: Iterable[tuple[int, int, str, int]]) -> dict:
  """`layouts.count_split` of a plan: (person_id, camera, modality, number of images) rows."""
  person_ids, cameras, modalities = [], [], []
  for person_id, camera, modality, num_images in images:
    person_ids += [person_id] * num_images
    cameras += [camera] * num_images
    modalities += [modality] * num_images
  return layouts.count_split(person_ids, cameras, modalities)


def expected_counts(info: dict) -> dict:
  """The counts a synthetic dataset has, from its options alone (the generator's plan).

  The generator writes them into its manifest; the builders' integrity check compares the
  images it finds against them, as it compares a real dataset against the published counts.

  Args:
    info: the manifest (`INFO_FILE_NAME`), or any dict with "layout" and the generator options.

  Returns:
    {"train": counts, "test": counts} in `layouts.count_split` form (for RegDB the same for
    every trial: each trial splits the ids in halves and every id has the same number of
    images).
  """
  layout = info.get("layout")
  if layout not in GENERATORS:
    raise ValueError(f"Unknown synthetic layout {layout!r} in {info!r}")
  accepted = inspect.signature(_PLAN_COUNTS[layout]).parameters
  options = {key: (tuple(value) if isinstance(value, list) else value)
             for key, value in info.items() if key in accepted}
  return _PLAN_COUNTS[layout](**options)


# ----------------------------------------------------------------------------------------------
# The SYSU-MM01 layout.


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
      rng = _rng(seed, _PRESENCE_STREAM, person_id)
      for camera in _sample_cameras(rng, split, position):
        counts[(person_id, camera)] = int(rng.integers(min_images, max_images + 1))
  return dict(sorted(counts.items()))


def _sysu_counts(seed: int, num_train_ids: int, num_val_ids: int, num_test_ids: int,
                 num_single_modality_ids: int, images_per_camera: tuple[int, int]) -> dict:
  split_ids = sysu_split_ids(num_train_ids, num_val_ids, num_test_ids, num_single_modality_ids)
  counts = sysu_image_counts(seed, split_ids, images_per_camera)
  members = {"train": set(split_ids["train"] + split_ids["val"]), "test": set(split_ids["test"])}
  return {split: _count_plan((person_id, camera, layouts.sysu_camera_modality(camera), n)
                             for (person_id, camera), n in counts.items()
                             if person_id in people)
          for split, people in members.items()}


def generate_sysu(out_dir: str | os.PathLike, *, seed: int = 0, num_train_ids: int = 80,
                  num_val_ids: int = 16, num_test_ids: int = 24,
                  num_single_modality_ids: int = 2,
                  images_per_camera: tuple[int, int] = (3, 6), image_height: int = 128,
                  image_width: int = 64, nir_luminance_mix: float = 0.0,
                  overwrite: bool = False) -> pathlib.Path:
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
    overwrite: replace an existing non-empty `out_dir`.

  Returns:
    `out_dir` as an absolute path.

  Raises:
    FileExistsError: `out_dir` exists, is not empty and `overwrite` is False.
    ValueError: invalid sizes.
  """
  _check_common_options(seed, image_height, image_width, nir_luminance_mix)
  if min(num_train_ids, num_val_ids, num_test_ids) < 1 or num_single_modality_ids < 0:
    raise ValueError("num_train_ids, num_val_ids and num_test_ids must be ≥ 1 (got "
                     f"{num_train_ids}, {num_val_ids}, {num_test_ids}) and "
                     f"num_single_modality_ids ≥ 0 (got {num_single_modality_ids}).")
  min_images, max_images = _check_images_range("images_per_camera", images_per_camera)

  out_dir = pathlib.Path(out_dir).absolute()
  split_ids = sysu_split_ids(num_train_ids, num_val_ids, num_test_ids, num_single_modality_ids)
  counts = sysu_image_counts(seed, split_ids, (min_images, max_images))
  people = sample_identities(seed, [i for ids in split_ids.values() for i in ids],
                             nir_luminance_mix=nir_luminance_mix)

  with _atomic_output(out_dir, overwrite) as partial_dir:
    for (person_id, camera), num_images in counts.items():
      person_dir = partial_dir / f"cam{camera}" / f"{person_id:04d}"
      person_dir.mkdir(parents=True)
      for image_number in range(1, num_images + 1):
        image = render_image(people[person_id], camera, image_number, seed=seed,
                             image_height=image_height, image_width=image_width)
        _save_jpeg(image, person_dir / f"{image_number:04d}.jpg")
    # The real download has every camera folder, even if a split leaves one empty.
    for camera in layouts.SYSU_CAMERAS:
      (partial_dir / f"cam{camera}").mkdir(exist_ok=True)
    (partial_dir / "exp").mkdir()
    for split in layouts.SYSU_SPLITS:
      (partial_dir / "exp" / f"{split}_id.txt").write_text(
        ",".join(str(i) for i in split_ids[split]) + "\n", encoding="utf-8")
    _write_info(partial_dir, "sysu", dict(
      seed=int(seed), num_train_ids=num_train_ids, num_val_ids=num_val_ids,
      num_test_ids=num_test_ids, num_single_modality_ids=num_single_modality_ids,
      images_per_camera=[min_images, max_images], image_height=image_height,
      image_width=image_width, nir_luminance_mix=nir_luminance_mix), sum(counts.values()))
  return out_dir


# ----------------------------------------------------------------------------------------------
# The RegDB layout.

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
  order = _rng(_layout_seed("regdb", seed), _TRIAL_STREAM, trial).permutation(num_ids) + 1
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


def _regdb_counts(num_ids: int, images_per_id: int) -> dict:
  half = num_ids // 2
  cameras = {layouts.VISIBLE: layouts.REGDB_VISIBLE_CAMERA,
             layouts.INFRARED: layouts.REGDB_THERMAL_CAMERA}
  split = _count_plan((person_id, cameras[modality], modality, images_per_id)
                      for person_id in range(1, half + 1) for modality in layouts.MODALITIES)
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
  _check_common_options(seed, image_height, image_width, nir_luminance_mix)
  if num_ids < 2 or num_ids % 2 or images_per_id < 1:
    raise ValueError(f"num_ids must be even and ≥ 2 (got {num_ids}) and images_per_id ≥ 1 "
                     f"(got {images_per_id}): each trial splits the ids in halves.")
  out_dir = pathlib.Path(out_dir).absolute()
  layout_seed = _layout_seed("regdb", seed)
  people = sample_identities(layout_seed, range(1, num_ids + 1),
                             nir_luminance_mix=nir_luminance_mix)
  paths = {(person_id, modality): [regdb_relative_path(people[person_id], modality, k,
                                                       images_per_id)
                                   for k in range(1, images_per_id + 1)]
           for person_id in people for modality in layouts.MODALITIES}

  with _atomic_output(out_dir, overwrite) as partial_dir:
    for (person_id, modality), relative_paths in paths.items():
      (partial_dir / relative_paths[0]).parent.mkdir(parents=True, exist_ok=True)
      for image_number, relative_path in enumerate(relative_paths, start=1):
        image = render_image(people[person_id], REGDB_VIEWS[modality], image_number,
                             seed=layout_seed, image_height=image_height,
                             image_width=image_width)
        _save_bmp(image, partial_dir / relative_path)
    (partial_dir / "idx").mkdir()
    for trial in layouts.REGDB_TRIALS:
      for split, person_ids in regdb_trial_ids(seed, num_ids, trial).items():
        for modality in layouts.MODALITIES:
          lines = [f"{path} {label}" for label, person_id in enumerate(person_ids)
                   for path in paths[(person_id, modality)]]
          index_path = partial_dir / layouts.regdb_index_file(split, modality, trial)
          index_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_info(partial_dir, "regdb", dict(
      seed=int(seed), num_ids=num_ids, images_per_id=images_per_id, image_height=image_height,
      image_width=image_width, nir_luminance_mix=nir_luminance_mix),
      2 * num_ids * images_per_id)
  return out_dir


# ----------------------------------------------------------------------------------------------
# The LLCM layout.

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
      rng = _rng(_layout_seed("llcm", seed), _PRESENCE_STREAM, person_id)
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


def _llcm_counts(seed: int, num_train_ids: int, num_test_ids: int,
                 images_per_camera: tuple[int, int]) -> dict:
  split_ids = llcm_split_ids(num_train_ids, num_test_ids)
  counts = llcm_image_counts(seed, split_ids, images_per_camera)
  return {split: _count_plan((person_id, camera, modality, n)
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
  _check_common_options(seed, image_height, image_width, nir_luminance_mix)
  if min(num_train_ids, num_test_ids) < 1:
    raise ValueError(f"num_train_ids and num_test_ids must be ≥ 1 (got {num_train_ids}, "
                     f"{num_test_ids}).")
  images_per_camera = _check_images_range("images_per_camera", images_per_camera)
  out_dir = pathlib.Path(out_dir).absolute()
  layout_seed = _layout_seed("llcm", seed)
  split_ids = llcm_split_ids(num_train_ids, num_test_ids)
  counts = llcm_image_counts(seed, split_ids, images_per_camera)
  people = sample_identities(layout_seed, [i for ids in split_ids.values() for i in ids],
                             nir_luminance_mix=nir_luminance_mix)
  label_of_person = {person_id: label for label, person_id in enumerate(split_ids["train"])}
  index_lines = {modality: [] for modality in layouts.MODALITIES}

  with _atomic_output(out_dir, overwrite) as partial_dir:
    for (person_id, modality, camera), num_images in counts.items():
      if person_id in label_of_person:
        relative_dir = f"{_LLCM_TRAIN_FOLDERS[modality]}/{person_id:04d}"
      else:
        relative_dir = f"{layouts.LLCM_TEST_FOLDERS[modality]}/cam{camera}/{person_id:04d}"
      (partial_dir / relative_dir).mkdir(parents=True, exist_ok=True)
      for image_number in range(1, num_images + 1):
        file_name = llcm_file_name(person_id, modality, camera, image_number)
        relative_path = f"{relative_dir}/{file_name}"
        image = render_image(people[person_id], LLCM_VIEWS[(modality, camera)], image_number,
                             seed=layout_seed, image_height=image_height,
                             image_width=image_width)
        _save_jpeg(image, partial_dir / relative_path)
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
    _write_info(partial_dir, "llcm", dict(
      seed=int(seed), num_train_ids=num_train_ids, num_test_ids=num_test_ids,
      images_per_camera=list(images_per_camera), image_height=image_height,
      image_width=image_width, nir_luminance_mix=nir_luminance_mix), sum(counts.values()))
  return out_dir


# ----------------------------------------------------------------------------------------------
# Entry points.

# Layout name -> generator.
GENERATORS = {"sysu": generate_sysu, "regdb": generate_regdb, "llcm": generate_llcm}
# Layout name -> the generator's plan, as counts (see `expected_counts`).
_PLAN_COUNTS = {"sysu": _sysu_counts, "regdb": _regdb_counts, "llcm": _llcm_counts}


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


def main(argv: Sequence[str] | None = None) -> int:
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


if __name__ == "__main__":
  sys.exit(main())
