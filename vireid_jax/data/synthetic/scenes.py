"""Synthetic cameras and the scenes they film.

A `CameraView` describes how one camera (in one modality) of a layout renders its images:
random-stream key, modality, scene, indoor or outdoor, native crop size, light and sensor noise
(`SYSU_VIEWS` are SYSU-MM01's six cameras; the RegDB and LLCM modules define theirs). Each scene
is a background panorama drawn once per (seed, scene) in both modalities, an indoor room or an
outdoor street (`camera_scene` adds the camera's own exposure and colour cast).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from PIL import Image, ImageDraw

from vireid_jax.data import layouts
from vireid_jax.data.synthetic.common import SCENE_STREAM
from vireid_jax.data.synthetic.common import stream_rng
from vireid_jax.data.synthetic.identities import Material
from vireid_jax.data.synthetic.identities import hsv_to_rgb
from vireid_jax.data.synthetic.identities import random_material

# Native crop size of each camera relative to the nominal (height, width): real detector crops
# differ between cameras (distance, lens, resolution).
_CAMERA_SIZE_FACTORS = {1: (1.0, 1.0), 2: (0.92, 1.06), 3: (1.08, 0.95),
                        4: (1.12, 0.94), 5: (0.96, 1.04), 6: (1.04, 1.0)}
# Every camera of every layout stays within these, so one panorama size serves all of them.
MAX_SIZE_FACTORS = tuple(max(f[i] for f in _CAMERA_SIZE_FACTORS.values()) for i in (0, 1))
# cam3 films the room of cam2 (the reason for the protocol's cam3/cam2 rule).
_SCENE_OF_CAMERA = {1: 1, 2: 2, 3: 2, 4: 4, 5: 5, 6: 6}


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
      `MAX_SIZE_FACTORS`.
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
    if not all(f <= m for f, m in zip(self.size_factors, MAX_SIZE_FACTORS)):
      raise ValueError(f"size_factors {self.size_factors} exceed {MAX_SIZE_FACTORS}.")


# SYSU-MM01's six cameras: the stream key is the camera number.
SYSU_VIEWS = {
  camera: CameraView(key=camera, modality=layouts.sysu_camera_modality(camera),
                     scene=_SCENE_OF_CAMERA[camera],
                     indoor=camera in layouts.SYSU_INDOOR_CAMERAS,
                     size_factors=_CAMERA_SIZE_FACTORS[camera])
  for camera in layouts.SYSU_CAMERAS}


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
  wall = _jittered(rng, hsv_to_rgb(rng.uniform(0.05, 0.6), rng.uniform(0.05, 0.3), wall_tone),
                   rng.uniform(0.45, 0.75))
  _draw_both(rgb_draw, nir_draw, "rectangle", [0, 0, width, horizon], wall)
  floor = _jittered(rng, hsv_to_rgb(rng.uniform(0.05, 0.15), rng.uniform(0.1, 0.4),
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
      door = random_material(rng)
      _draw_both(rgb_draw, nir_draw, "rectangle",
                 [x, horizon - height * rng.uniform(0.35, 0.45), x + item_width, horizon], door)
    elif kind == "window":
      glass = Material(rgb=hsv_to_rgb(0.58, rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)),
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
                 [x, top, x + item_width, top + item_width * 1.4], random_material(rng))
    x += item_width * rng.uniform(1.8, 3.5)
  skirting = _jittered(rng, np.asarray(wall.rgb) * 0.5, wall.nir * 0.6)
  _draw_both(rgb_draw, nir_draw, "rectangle", [0, horizon - height * 0.012, width, horizon],
             skirting)
  return horizon


def _outdoor_scene(rng, rgb_draw, nir_draw, height: int, width: int) -> float:
  """A street: sky, buildings, trees, pavement and road. Returns the horizon row."""
  horizon = height * rng.uniform(0.5, 0.62)
  # Sky is bright in RGB but dark in NIR; vegetation is the reverse (the red edge).
  sky = Material(rgb=hsv_to_rgb(0.58, rng.uniform(0.1, 0.5), rng.uniform(0.75, 1.0)),
                 nir=float(rng.uniform(0.15, 0.3)))
  _draw_both(rgb_draw, nir_draw, "rectangle", [0, 0, width, horizon], sky)
  x = -rng.uniform(0, width * 0.1)
  while x < width:
    building_width = width * rng.uniform(0.12, 0.3)
    top = horizon - height * rng.uniform(0.25, 0.55)
    facade = _jittered(rng, hsv_to_rgb(rng.uniform(0.0, 0.15), rng.uniform(0.0, 0.35),
                                        rng.uniform(0.35, 0.85)), rng.uniform(0.3, 0.6))
    _draw_both(rgb_draw, nir_draw, "rectangle", [x, top, x + building_width, horizon], facade)
    window = Material(rgb=hsv_to_rgb(0.6, 0.2, rng.uniform(0.2, 0.5)),
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
    leaves = Material(rgb=hsv_to_rgb(rng.uniform(0.22, 0.38), rng.uniform(0.4, 0.8),
                                      rng.uniform(0.25, 0.6)),
                      nir=float(rng.uniform(0.75, 0.95)))
    _draw_both(rgb_draw, nir_draw, "ellipse",
               [tree_x - crown, base - crown * 3.6, tree_x + crown, base - crown * 1.6], leaves)
  return horizon


@dataclasses.dataclass(frozen=True)
class CameraScene:
  """A camera's background panorama and its response (`camera_scene`)."""

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
  rng = stream_rng(seed, SCENE_STREAM, scene_index)
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


def camera_scene(seed: int, view: CameraView, max_height: int, max_width: int) -> CameraScene:
  """The background panorama of a camera and the camera's response."""
  rgb, nir = _scene_panorama(seed, view.scene, view.indoor, max_height, max_width)
  # The camera's own response, from a stream of the camera (cam2 and cam3 share the room only).
  camera_rng = stream_rng(seed, SCENE_STREAM, 100 + view.key)
  gain = float(camera_rng.uniform(0.85, 1.15))
  # Indoor lighting is warm, outdoor daylight cool.
  base_cast = np.array([1.06, 1.0, 0.9]) if view.indoor else np.array([0.95, 1.0, 1.07])
  colour_cast = base_cast * camera_rng.uniform(0.94, 1.06, 3)
  return CameraScene(rgb=rgb, nir=nir, indoor=view.indoor, gain=gain,
                      colour_cast=colour_cast.astype(np.float32))
