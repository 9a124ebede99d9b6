"""Rendering one synthetic person image: `render_image`.

An image places a pedestrian (`identities.PersonAttributes`) in a camera's scene
(`scenes.CameraView`): a viewpoint (front, back, left or right side; a backpack is a large
block from the back and two straps from the front, an emblem is only seen from the front), a
walking phase, scale and position jitter, a crop of the camera's background panorama with
random clutter, and the camera's illumination. The geometry is drawn once as a label map at 2x,
garment patterns are applied in body coordinates (`pattern_mask`), and the labels are shaded
per modality: visible cameras with the materials' RGB reflectances, a colour cast and exposure;
infrared cameras with the NIR reflectances as a grey image under active illumination (a bright
vignetted spot, darker distant background), blur and stronger sensor noise. Crops are
box-downsampled (antialiasing); their native size varies per camera and per image.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vireid_jax.data import layouts
from vireid_jax.data.synthetic.common import IMAGE_STREAM
from vireid_jax.data.synthetic.common import stream_rng
from vireid_jax.data.synthetic.identities import Garment
from vireid_jax.data.synthetic.identities import Material
from vireid_jax.data.synthetic.identities import PersonAttributes
from vireid_jax.data.synthetic.identities import random_material
from vireid_jax.data.synthetic.scenes import MAX_SIZE_FACTORS
from vireid_jax.data.synthetic.scenes import SYSU_VIEWS
from vireid_jax.data.synthetic.scenes import CameraView
from vireid_jax.data.synthetic.scenes import camera_scene

# Crops are drawn at this multiple of their size, then box-downsampled (antialiasing).
_SUPERSAMPLE = 2

# Viewpoints a pedestrian is seen from.
VIEWS = ("front", "back", "left", "right")

# Label-map values: geometry is drawn once as labels, then shaded per modality.
_BACKGROUND, _SKIN, _HAIR, _UPPER, _UPPER_2, _LOWER, _LOWER_2 = 0, 1, 2, 3, 4, 5, 6
_SHOES, _HAT, _BAG, _EMBLEM, _CLUTTER_1, _CLUTTER_2 = 7, 8, 9, 10, 11, 12
_NUM_LABELS = 13
_FIRST_CLUTTER = _CLUTTER_1


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
  route_view = VIEWS[stream_rng(seed, IMAGE_STREAM, person.person_id, 0, 0).integers(2)]
  tracklet_rng = stream_rng(seed, IMAGE_STREAM, person.person_id, camera_view.key, 0)
  other_view = VIEWS[tracklet_rng.choice(4, p=[0.45, 0.45, 0.05, 0.05])]
  dominant_view = route_view if tracklet_rng.random() < 0.7 else other_view
  tracklet_scale = tracklet_rng.uniform(0.82, 0.9)
  rng = stream_rng(seed, IMAGE_STREAM, person.person_id, camera_view.key, image_number)

  height, width = _crop_size(camera_view, image_height, image_width, rng)
  canvas_height, canvas_width = height * _SUPERSAMPLE, width * _SUPERSAMPLE
  # The panorama must hold the largest crop of any camera (size factor x 1.07 jitter).
  max_height = int(np.ceil(image_height * MAX_SIZE_FACTORS[0] * 1.07)) * _SUPERSAMPLE
  max_width = int(np.ceil(image_width * MAX_SIZE_FACTORS[1] * 1.07)) * _SUPERSAMPLE
  scene = camera_scene(seed, camera_view, max_height, max_width)
  scene_height, scene_width = scene.nir.shape
  y0 = int(rng.uniform(0.2, 0.8) * (scene_height - canvas_height))
  x0 = int(rng.uniform(0.0, 1.0) * (scene_width - canvas_width))

  labels = Image.new("L", (canvas_width, canvas_height), _BACKGROUND)
  draw = ImageDraw.Draw(labels)
  # Clutter behind the person: objects of the scene that differ from crop to crop.
  clutter = [random_material(rng), random_material(rng)]
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
