"""Synthetic identities: materials, garments and pedestrians, drawn from the dataset seed.

A `Material` has an RGB and an independent NIR reflectance (the modality gap); a `Garment` a
style, a texture pattern and two materials; `PersonAttributes` everything that identifies one
pedestrian. `sample_person_attributes` draws one identity from (seed, person_id, attempt) and
`sample_identities` draws a set whose discrete attributes differ enough to tell them apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from vireid_jax.data.synthetic.common import ATTRIBUTE_STREAM
from vireid_jax.data.synthetic.common import stream_rng

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


def hsv_to_rgb(hue: float, saturation: float, value: float) -> tuple[float, float, float]:
  """HSV (each in [0, 1]) to an RGB triple in [0, 1]."""
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


def random_material(rng: np.random.Generator, nir_luminance_mix: float = 0.0) -> Material:
  """A dye: any hue, greys included; NIR reflectance independent of the colour.

  Textile dyes are largely transparent in the NIR, so a fabric's NIR brightness is unrelated
  to its colour; drawing it independently is what makes the modality gap real.
  `nir_luminance_mix` > 0 narrows the gap: that fraction of the NIR reflectance follows the
  visible luminance (never the hue). The random draws are the same for every mix.
  """
  saturation = 0.0 if rng.random() < 0.2 else rng.uniform(0.3, 1.0)
  rgb = hsv_to_rgb(rng.random(), saturation, rng.uniform(0.12, 0.95))
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
    material = random_material(rng, nir_luminance_mix)
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
  rng = stream_rng(seed, ATTRIBUTE_STREAM, person_id, attempt)
  skin_value = rng.uniform(0.35, 0.95)
  skin = Material(rgb=hsv_to_rgb(rng.uniform(0.03, 0.1), rng.uniform(0.25, 0.6), skin_value),
                  # Skin reflects NIR strongly whatever its visible tone.
                  nir=float(rng.uniform(0.55, 0.85)))
  hair = Material(rgb=hsv_to_rgb(rng.uniform(0.02, 0.12), rng.uniform(0.2, 0.7),
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
