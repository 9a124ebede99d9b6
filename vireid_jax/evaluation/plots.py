"""Pictures of an evaluation: ranked-retrieval grids and CMC curves, as PNG files.

Researchers look at rankings, not only at numbers: the grid shows each chosen query
with its top-ranked gallery images, true matches framed green and false ones red, so
failure modes (a colour that dominates, a camera that confuses) are visible at a
glance. Figures are drawn with Matplotlib's object API on the Agg canvas (no pyplot
state, no display needed) and written atomically (`report.write_file_atomically`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vireid_jax.evaluation import report

# Frame colours (RGB uint8): true match, false match, query, identity unknown (search).
MATCH_COLOUR = (0, 170, 0)
NON_MATCH_COLOUR = (220, 0, 0)
QUERY_COLOUR = (40, 90, 220)
UNLABELLED_COLOUR = (140, 140, 140)


def framed(image: np.ndarray, colour: Sequence[int], width: int) -> np.ndarray:
  """`image` [H, W, 3] uint8 inside a solid frame of `width` pixels: [H + 2w, W + 2w, 3]."""
  height, image_width = image.shape[:2]
  result = np.empty((height + 2 * width, image_width + 2 * width, 3), np.uint8)
  result[...] = np.asarray(colour, np.uint8)
  result[width:width + height, width:width + image_width] = image
  return result


# Height of each image in the ranking grid.
_IMAGE_HEIGHT_INCHES = 1.5


def _frame_width(image_height: int) -> int:
  return max(2, image_height // 24)


def _save(figure: Figure, path: str | os.PathLike) -> None:
  buffer = io.BytesIO()
  FigureCanvasAgg(figure).print_png(buffer)
  report.write_file_atomically(path, buffer.getvalue())


def write_ranking_grid(
    path: str | os.PathLike,
    *,
    query_images: np.ndarray,
    query_captions: Sequence[str],
    ranked_images: np.ndarray,
    ranked_captions: Sequence[Sequence[str]],
    ranked_is_match: np.ndarray | None,
    title: str,
) -> None:
  """One row per query: the query (blue frame), then its ranked gallery images.

  Args:
    path: the PNG file to write; its folder must exist.
    query_images: [num_rows, H, W, 3] uint8.
    query_captions: [num_rows] text under each query.
    ranked_images: [num_rows, top_k, H, W, 3] uint8, best first.
    ranked_captions: [num_rows][top_k] text under each gallery image.
    ranked_is_match: [num_rows, top_k] bool, True = same identity (green frame); None when
      the identities are unknown (grey frames: a search of unlabelled folders).
    title: figure title.
  """
  query_images = np.asarray(query_images)
  ranked_images = np.asarray(ranked_images)
  labelled = ranked_is_match is not None
  ranked_is_match = np.asarray(ranked_is_match if labelled else np.zeros(ranked_images.shape[:2]),
                               bool)
  num_rows, top_k = ranked_is_match.shape
  if query_images.shape[0] != num_rows or ranked_images.shape[:2] != (num_rows, top_k):
    raise ValueError(
        f"{query_images.shape[0]} query images, ranked images {ranked_images.shape[:2]} and"
        f" match flags {ranked_is_match.shape} disagree."
    )
  image_height, image_width = query_images.shape[1:3]
  width = _frame_width(image_height)
  # Fixed cell size in inches whatever the image size (288 x 144 images are shown
  # downscaled, tiny test images upscaled), with room below for two caption lines.
  image_inches = (_IMAGE_HEIGHT_INCHES * (image_width + 2 * width) / (image_height + 2 * width),
                  _IMAGE_HEIGHT_INCHES)
  cell = (image_inches[0] + 0.12, image_inches[1] + 0.42)
  title_inches = 0.55
  figure = Figure(figsize=((top_k + 1) * cell[0] + 0.2, num_rows * cell[1] + title_inches),
                  dpi=100)
  axes = figure.subplots(num_rows, top_k + 1, squeeze=False)
  for row in range(num_rows):
    cells = [(query_images[row], QUERY_COLOUR, query_captions[row])]
    cells += [
        (
            ranked_images[row, rank],
            (MATCH_COLOUR if ranked_is_match[row, rank] else NON_MATCH_COLOUR) if labelled
            else UNLABELLED_COLOUR,
            ranked_captions[row][rank],
        )
        for rank in range(top_k)
    ]
    for column, (image, colour, caption) in enumerate(cells):
      ax = axes[row, column]
      ax.imshow(framed(image, colour, width))
      ax.set_xticks([])
      ax.set_yticks([])
      for spine in ax.spines.values():
        spine.set_visible(False)
      ax.set_xlabel(caption, fontsize=6.5, labelpad=1.5, linespacing=1.1)
  figure_width, figure_height = figure.get_size_inches()
  figure.suptitle(title, fontsize=8.5, y=1 - 0.08 / figure_height, va="top")
  figure.subplots_adjust(left=0.1 / figure_width, right=1 - 0.1 / figure_width,
                         bottom=0.4 / figure_height, top=1 - title_inches / figure_height,
                         wspace=0.12 / image_inches[0], hspace=0.42 / image_inches[1])
  _save(figure, path)


def write_cmc_curves(
    path: str | os.PathLike,
    curves: Sequence[tuple[str, Sequence[float], Sequence[float] | None]],
    *,
    title: str = "CMC",
) -> None:
  """CMC curves (rank 1..len) in percent, one line per (label, mean, std) entry.

  Args:
    path: the PNG file to write; its folder must exist.
    curves: (legend label, mean CMC fractions [K], std over trials [K] or None);
      a std draws a shaded ±1 std band.
    title: figure title.
  """
  if not curves:
    raise ValueError("No CMC curves to draw.")
  figure = Figure(figsize=(6.4, 4.4))
  ax = figure.subplots()
  longest = 1
  for label, mean, std in curves:
    mean = 100 * np.asarray(mean, np.float64)
    ranks = np.arange(1, len(mean) + 1)
    longest = max(longest, len(mean))
    (line,) = ax.plot(ranks, mean, marker="o", markersize=3, label=f"{label} (R1 {mean[0]:.1f})")
    if std is not None and len(mean) > 1:
      std = 100 * np.asarray(std, np.float64)
      ax.fill_between(ranks, mean - std, np.minimum(mean + std, 100), color=line.get_color(),
                      alpha=0.15, linewidth=0)
  ax.set_xlabel("rank")
  ax.set_ylabel("matching rate (%)")
  ax.set_xlim(1, longest)
  ax.set_xticks(np.unique(np.r_[1, np.arange(5, longest + 1, 5), longest]))
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")
  ax.set_title(title, fontsize=10)
  figure.tight_layout()
  _save(figure, path)
