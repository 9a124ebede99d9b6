"""DAN's synthetic target domains, made offline from a decoded split (dan.md §8).

Three per-image transforms (`SYNTHETIC_DOMAINS`): "noise" (Gaussian sensor noise), "lighting"
(gamma and gain: a darker scene) and "background" (the background recoloured behind a soft
foreground mask). Each image is transformed with its own generator, seeded by
`synthetic_domain_seed` from what the image is, so the result does not depend on the order in
which images are processed; `synthetic_target_domain` applies a domain to a whole split.

The person masks of the background domain are approximate, without a segmentation model:
GrabCut (RGB, and IR as a fallback) or Otsu's threshold (IR) inside a centred rectangle,
cleaned with morphology and checked for a plausible foreground fraction, with a centred
elliptical prior as the last resort (dan.md §8.4). OpenCV is imported only where a mask is made.

NumPy only (and OpenCV): no TensorFlow.
"""

from __future__ import annotations

import colorsys
import dataclasses
import hashlib

import numpy as np

from vireid_jax.data.splits import INFRARED
from vireid_jax.data.splits import SplitArrays

SYNTHETIC_DOMAINS = ("noise", "lighting", "background")

# dan.md §8.4: GrabCut's initial rectangle (fractions of W and H), its iterations, the accepted
# foreground fraction and the centred elliptical prior (centre, semi-axes as fractions of W, H).
PERSON_RECT_X = (0.10, 0.90)
PERSON_RECT_Y = (0.03, 0.97)
GRABCUT_ITERATIONS = 5
FOREGROUND_FRACTION_RANGE = (0.15, 0.80)
PRIOR_SEMI_AXES = (0.32, 0.47)
# IR background grey level: at least this far from the mean background intensity, redrawn at
# most this many times.
IR_MIN_GREY_CONTRAST = 60.0
IR_GREY_REDRAWS = 10


def synthetic_domain_seed(dataset: str, variant: str, relative_path: str) -> int:
  """The first 8 bytes (big-endian) of SHA-256("<dataset>/<variant>/<relative path>").

  One generator per image, keyed by what the image is: the transform does not depend on the
  order in which images are processed (dan.md §8.1).
  """
  digest = hashlib.sha256(f"{dataset}/{variant}/{relative_path}".encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big")


def synthetic_domain_image(image: np.ndarray, variant: str, *, infrared: bool,
                           seed: int) -> np.ndarray:
  """One image of DAN's synthetic target domain `variant` (dan.md §8.1–8.3, all [P]).

  Infrared images are treated as one grey channel (the mean of the stored three), transformed
  and replicated to three channels. Draws, in this order, from `np.random.default_rng(seed)`:
    "noise": sigma ~ U[10, 30], then zero-mean Gaussian noise of that sigma, independent per
      pixel and channel (RGB) or one map (IR); O = clip(round(I + n), 0, 255).
    "lighting": RGB: gamma ~ U[1.5, 2.5], then a ~ U[0.6, 0.9],
      O = round(255 clip(a (I/255)^gamma, 0, 1)); IR: a ~ U[0.7, 0.9],
      O = round(255 clip(a I/255, 0, 1)).
    "background" (§8.4): first an integer GrabCut seed in [0, 2^31 - 1) (drawn for IR too,
      so the later draws sit at the same positions whether or not GrabCut runs), passed to
      `cv2.setRNGSeed` before GrabCut so the mask is deterministic; the mask M is
      `foreground_mask`. Then RGB: hue ~ U[0, 360), saturation ~ U[0.5, 1], value ~
      U[0.4, 0.9] (the colour c, HSV → RGB on 0–255), then beta ~ U[0.5, 0.8]; IR: beta ~
      U[0.5, 0.8], then g ~ U[0, 255] drawn up to 1 + 10 times until |g - m| >= 60, m the
      mean grey of the binary mask's background (the last draw is kept if none qualifies).
      B' = (1 - beta) I + beta c (or g); O = clip(round(M I + (1 - M) B'), 0, 255).
    Masks are approximate (GrabCut/Otsu, no segmentation model).

  Args:
    image: [H, W, 3] uint8.
    variant: one of `SYNTHETIC_DOMAINS` ("noise", "lighting", "background").
    infrared: whether the image is infrared (SYSU cams 3/6, RegDB thermal, LLCM NIR).
    seed: `synthetic_domain_seed` of the image.

  Returns:
    [H, W, 3] uint8.
  """
  if variant not in SYNTHETIC_DOMAINS:
    raise ValueError(f"Unknown synthetic target domain {variant!r}; expected one of "
                     f"{SYNTHETIC_DOMAINS}.")
  rng = np.random.default_rng(seed)
  if variant == "background":
    return _background_domain_image(image, rng, infrared=infrared)
  pixels = image.astype(np.float64)
  if infrared:
    pixels = pixels.mean(axis=-1, keepdims=True)
  if variant == "noise":
    sigma = rng.uniform(10.0, 30.0)
    out = np.rint(pixels + rng.normal(0.0, sigma, pixels.shape))
  elif infrared:
    out = np.rint(255.0 * np.clip(rng.uniform(0.7, 0.9) * pixels / 255.0, 0.0, 1.0))
  else:
    gamma = rng.uniform(1.5, 2.5)
    gain = rng.uniform(0.6, 0.9)
    out = np.rint(255.0 * np.clip(gain * (pixels / 255.0) ** gamma, 0.0, 1.0))
  out = np.clip(out, 0, 255).astype(np.uint8)
  return np.repeat(out, 3, axis=-1) if infrared else out


def _background_domain_image(image: np.ndarray, rng: np.random.Generator, *,
                             infrared: bool) -> np.ndarray:
  """The "background" domain of `synthetic_domain_image` (draw order documented there)."""
  grabcut_seed = int(rng.integers(0, 2**31 - 1))
  binary, _ = binary_foreground_mask(image, infrared=infrared, grabcut_seed=grabcut_seed)
  mask = soften_mask(binary)[..., None]
  pixels = image.astype(np.float64)
  if infrared:
    pixels = pixels.mean(axis=-1, keepdims=True)
    beta = rng.uniform(0.5, 0.8)
    background_mean = pixels[..., 0][~binary].mean()
    for _ in range(1 + IR_GREY_REDRAWS):
      colour = rng.uniform(0.0, 255.0)
      if abs(colour - background_mean) >= IR_MIN_GREY_CONTRAST:
        break
    colour = np.array([colour])
  else:
    hue = rng.uniform(0.0, 360.0)
    saturation = rng.uniform(0.5, 1.0)
    value = rng.uniform(0.4, 0.9)
    beta = rng.uniform(0.5, 0.8)
    colour = 255.0 * np.array(colorsys.hsv_to_rgb(hue / 360.0, saturation, value))
  recoloured = (1.0 - beta) * pixels + beta * colour
  out = np.clip(np.rint(mask * pixels + (1.0 - mask) * recoloured), 0, 255).astype(np.uint8)
  return np.repeat(out, 3, axis=-1) if infrared else out


def person_rectangle(height: int, width: int) -> tuple[int, int, int, int]:
  """GrabCut's initial rectangle (x, y, w, h): x in [0.10 W, 0.90 W], y in [0.03 H, 0.97 H],
  ends rounded to pixels (person crops are roughly centred and fill the height)."""
  x0, x1 = (int(round(f * width)) for f in PERSON_RECT_X)
  y0, y1 = (int(round(f * height)) for f in PERSON_RECT_Y)
  return x0, y0, x1 - x0, y1 - y0


def morphology_kernel_size(height: int, width: int) -> int:
  """max(3, odd(round(0.03 min(H, W)))), odd(n) = n if n is odd else n + 1."""
  size = int(round(0.03 * min(height, width)))
  return max(3, size if size % 2 else size + 1)


def grabcut_foreground(image: np.ndarray, *, seed: int) -> np.ndarray:
  """GrabCut (5 iterations) from `person_rectangle`: [H, W, 3] uint8 → [H, W] bool, True on
  definite or probable foreground.

  OpenCV's RNG (used by GrabCut's k-means initialisation of its colour models) is seeded with
  `seed` first, so the result is deterministic. GrabCut failing (e.g. a rectangle too small to
  leave background samples) gives an empty mask, which the area check turns into the prior.
  """
  import cv2
  height, width = image.shape[:2]
  labels = np.zeros((height, width), np.uint8)
  background_model = np.zeros((1, 65), np.float64)
  foreground_model = np.zeros((1, 65), np.float64)
  cv2.setRNGSeed(seed)
  try:
    cv2.grabCut(np.ascontiguousarray(image), labels, person_rectangle(height, width),
                background_model, foreground_model, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
  except cv2.error:
    return np.zeros((height, width), bool)
  return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def otsu_foreground(grey: np.ndarray) -> np.ndarray:
  """Otsu's threshold of `grey` ([H, W] uint8) inside `person_rectangle`; True on its brighter
  class (warm bodies in thermal images, lit subjects in NIR); False outside the rectangle and
  everywhere when the rectangle holds a single grey level."""
  import cv2
  x, y, w, h = person_rectangle(*grey.shape)
  inside = np.ascontiguousarray(grey[y:y + h, x:x + w])
  mask = np.zeros(grey.shape, bool)
  # One grey level has no two classes to separate (OpenCV's threshold would then be 0 and make
  # the whole rectangle "foreground"); report no foreground and let the fallbacks decide.
  if inside.size == 0 or inside.min() == inside.max():
    return mask
  threshold, _ = cv2.threshold(inside, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
  mask[y:y + h, x:x + w] = inside > threshold
  return mask


def clean_mask(mask: np.ndarray) -> np.ndarray:
  """Opening then closing with an elliptical `morphology_kernel_size` kernel, the largest
  8-connected component, holes filled. [H, W] bool → [H, W] bool."""
  import cv2
  height, width = mask.shape
  size = morphology_kernel_size(height, width)
  kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
  binary = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
  binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel)
  count, components, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
  if count <= 1:
    return np.zeros_like(mask, bool)
  largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
  binary = (components == largest).astype(np.uint8)
  # Holes = background not 4-connected to the border: flood the background from a frame of
  # background pixels around the image; whatever stays unreached is a hole.
  framed = np.pad(binary, 1)
  cv2.floodFill(framed, np.zeros((height + 4, width + 4), np.uint8), (0, 0), 2)
  return framed[1:-1, 1:-1] != 2


def elliptical_prior(height: int, width: int) -> np.ndarray:
  """The centred ellipse, centre (0.5 W, 0.5 H), semi-axes 0.32 W and 0.47 H, on pixel
  centres (x + 0.5, y + 0.5). Returns [H, W] bool."""
  rows = (np.arange(height) + 0.5 - 0.5 * height) / (PRIOR_SEMI_AXES[1] * height)
  columns = (np.arange(width) + 0.5 - 0.5 * width) / (PRIOR_SEMI_AXES[0] * width)
  return rows[:, None] ** 2 + columns[None, :] ** 2 <= 1.0


def _plausible(mask: np.ndarray) -> bool:
  low, high = FOREGROUND_FRACTION_RANGE
  return low <= mask.mean() <= high


def binary_foreground_mask(image: np.ndarray, *, infrared: bool,
                           grabcut_seed: int = 0) -> tuple[np.ndarray, bool]:
  """The person's binary mask before soft edges (dan.md §8.4 steps 1–3).

  RGB: `grabcut_foreground`. IR: `otsu_foreground` of the grey image (mean of the three
  channels, rounded), and if the cleaned result fails the area check, GrabCut on the grey image
  in three channels. Each estimate is `clean_mask`ed; one whose foreground fraction is outside
  [0.15, 0.80] is rejected, and if none is left the mask is `elliptical_prior`.

  Args:
    image: [H, W, 3] uint8.
    infrared: whether the image is infrared.
    grabcut_seed: seed of OpenCV's RNG for GrabCut.

  Returns:
    ([H, W] bool mask, whether the elliptical prior was used).
  """
  height, width = image.shape[:2]
  if infrared:
    grey = np.rint(image.astype(np.float64).mean(axis=-1)).astype(np.uint8)
    mask = clean_mask(otsu_foreground(grey))
    if _plausible(mask):
      return mask, False
    image = np.repeat(grey[..., None], 3, axis=-1)
  mask = clean_mask(grabcut_foreground(image, seed=grabcut_seed))
  if _plausible(mask):
    return mask, False
  return elliptical_prior(height, width), True


def soften_mask(mask: np.ndarray) -> np.ndarray:
  """Soft edges: Gaussian blur of a [H, W] bool mask with sigma = max(1, 0.01 H) px (kernel
  OpenCV derives from sigma), clipped to [0, 1]. Returns [H, W] float64."""
  import cv2
  sigma = max(1.0, 0.01 * mask.shape[0])
  blurred = cv2.GaussianBlur(mask.astype(np.float64), (0, 0), sigmaX=sigma, sigmaY=sigma)
  return np.clip(blurred, 0.0, 1.0)


def foreground_mask(image: np.ndarray, *, infrared: bool,
                    grabcut_seed: int = 0) -> tuple[np.ndarray, bool]:
  """DAN's soft foreground mask M (dan.md §8.4 steps 1–4).

  Args:
    image: [H, W, 3] uint8.
    infrared: whether the image is infrared.
    grabcut_seed: seed of OpenCV's RNG for GrabCut.

  Returns:
    ([H, W] float64 in [0, 1], whether the elliptical prior was used).
  """
  binary, used_fallback = binary_foreground_mask(image, infrared=infrared,
                                                 grabcut_seed=grabcut_seed)
  return soften_mask(binary), used_fallback


def synthetic_target_domain(split: SplitArrays, variant: str, dataset: str) -> SplitArrays:
  """`split` with every image moved into DAN's synthetic domain `variant` (dan.md §8).

  Each image is transformed by `synthetic_domain_image`, seeded by
  (dataset, variant, relative path), so the result does not depend on the split's order.
  dan.md applies the transform to the original-resolution images before resizing; here it
  runs on the decoded (already resized) arrays. Labels are kept: a domain-adaptation run
  replaces them by -1 or pseudo-labels for training and keeps them for evaluation.

  Args:
    split: decoded images and their metadata.
    variant: one of `SYNTHETIC_DOMAINS` ("noise", "lighting", "background").
    dataset: dataset name in the seed ("sysu", "regdb", "llcm").
  """
  images = np.stack([
      synthetic_domain_image(
          image, variant, infrared=modality == INFRARED,
          seed=synthetic_domain_seed(dataset, variant, str(path)))
      for image, modality, path in zip(split.images, split.modalities, split.relative_paths)
  ]) if len(split) else split.images
  return dataclasses.replace(split, images=images)
