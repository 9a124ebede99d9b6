"""A results browser: one static HTML page per evaluation, beside its PNG figures.

`write_results_page` writes `index.html` into the evaluation's figure folder: the CMC
curves (`cmc.png`, linked) and the results table at the top, then every query of the
main protocol with its top-k gallery images (true matches framed green, false ones red,
the query blue, as in the ranking grids of `plots`), sortable by AP and filterable to the
rank-1 misses. The page is plain HTML with inline CSS and JavaScript and no external
resource, so it works opened straight from disk (file://) with no server or network.

Images are JPEG thumbnails written once per split image into `thumbnails/` beside the
page and linked relatively, not embedded as data URIs: SYSU-MM01's 3,803 queries and
their galleries would make a page of tens of MB of base64 that the browser must parse
before showing anything, whereas linked thumbnails keep the page at about 1-2 MB and load
lazily as one scrolls (each thumbnail is stored once however many top-10 lists show it).
Copying the page elsewhere therefore means copying its folder.

The page only shows what it is given: the caller (`evaluator.write_results_page`) takes
the rankings, AP and rank-1 hits from the evaluation's first-trial distances and removal
rule, with the metrics' definitions.
"""

from __future__ import annotations

import concurrent.futures
import html
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from vireid_jax.evaluation import plots
from vireid_jax.evaluation import report

PAGE_NAME = "index.html"
THUMBNAILS_FOLDER = "thumbnails"
# Thumbnail height in pixels (shown at 96 CSS pixels: sharp on 1.33x screens). A SYSU-MM01
# 288 x 144 image becomes 128 x 64, about 2 KB as JPEG.
THUMBNAIL_HEIGHT = 128
JPEG_QUALITY = 85


def thumbnail_path(row: int) -> str:
  """The page-relative path of split image `row`'s thumbnail."""
  return f"{THUMBNAILS_FOLDER}/{int(row)}.jpg"


def write_thumbnails(folder: str | os.PathLike, images: np.ndarray, rows: Sequence[int], *,
                     height: int = THUMBNAIL_HEIGHT) -> None:
  """Writes `thumbnail_path(row)` under `folder` for each split row in `rows`, once each.

  The thumbnails are written into a new hidden folder that then replaces `thumbnails/`
  (the old one is removed), so the folder never holds a half-written JPEG.

  Args:
    folder: the page's folder; must exist.
    images: [N, H, W, 3] uint8, the split's images.
    rows: split rows to write (duplicates are written once).
    height: thumbnail height; smaller images are kept as they are.
  """
  folder = os.fspath(folder)
  target = os.path.join(folder, THUMBNAILS_FOLDER)
  staging = tempfile.mkdtemp(dir=folder, prefix=f".{THUMBNAILS_FOLDER}.", suffix=".tmp")

  def write_one(row):
    image = Image.fromarray(np.asarray(images[row]))
    if image.height > height:
      image = image.resize((max(1, round(image.width * height / image.height)), height),
                           Image.Resampling.BILINEAR, reducing_gap=2.0)
    image.save(os.path.join(staging, f"{row}.jpg"), quality=JPEG_QUALITY)

  try:
    # Threads: PIL's encoder and file writes release the GIL (thousands of small files).
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
      list(pool.map(write_one, np.unique(np.asarray(rows, np.int64))))
    os.chmod(staging, 0o755)  # mkdtemp's folders are private; results are meant to be shared
    if os.path.isdir(target):
      retired = staging + ".old"
      os.rename(target, retired)
      os.rename(staging, target)
      shutil.rmtree(retired, ignore_errors=True)
    else:
      os.rename(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def _json_number(value: float) -> float | None:
  # float32 distances printed with 7 significant digits rather than float64's 17. A feature
  # of all zeros normalises to NaN (as in the references), whose distances JSON cannot hold:
  # null, shown as "d n/a".
  value = float(value)
  return float(f"{value:.7g}") if math.isfinite(value) else None


def page_data(
    *,
    person_ids: np.ndarray,
    cameras: np.ndarray,
    relative_paths: np.ndarray,
    query_rows: np.ndarray,
    gallery_rows: np.ndarray,
    ranked: Sequence[np.ndarray],
    ranked_distances: Sequence[np.ndarray],
    ranked_is_match: Sequence[np.ndarray],
    average_precision: np.ndarray,
    rank1_hit: np.ndarray,
    valid: np.ndarray,
) -> dict[str, Any]:
  """The page's data (JSON-ready): every query with its ranked list, and the gallery.

  Args:
    person_ids, cameras, relative_paths: [N] the split's labels and image paths.
    query_rows: [Q] split rows of the queries, in protocol order.
    gallery_rows: [G] split rows of the gallery.
    ranked: [Q] of int arrays [<= top_k]: gallery positions (indices into
      `gallery_rows`), best first, removed items left out.
    ranked_distances: [Q] of float arrays, the distances of `ranked`.
    ranked_is_match: [Q] of bool arrays, True = same identity as the query.
    average_precision: [Q] the query's AP (ignored where not valid).
    rank1_hit: [Q] bool, the rank-1 item is a true match.
    valid: [Q] bool, the query has a true match in its gallery after removal.

  Returns:
    {"queries": [Q] dicts (split row, id, camera, path, thumbnail, position,
    valid, ap, rank1_hit, ranked, distances, is_match), "gallery": {gallery
    position (str): dict (row, id, camera, path, thumbnail)} of the shown items}.
  """
  def describe(row):
    row = int(row)
    return {"row": row, "id": str(person_ids[row]), "camera": int(cameras[row]),
            "path": str(relative_paths[row]), "image": thumbnail_path(row)}

  queries = []
  for position, row in enumerate(query_rows):
    queries.append({
        **describe(row),
        "position": position,
        "valid": bool(valid[position]),
        "ap": _json_number(average_precision[position]) if valid[position] else None,
        "rank1_hit": bool(rank1_hit[position]),
        "ranked": [int(g) for g in ranked[position]],
        "distances": [_json_number(d) for d in ranked_distances[position]],
        "is_match": [bool(m) for m in ranked_is_match[position]],
    })
  # Only the gallery items some query shows: each has its thumbnail.
  shown = sorted({position for query in queries for position in query["ranked"]})
  return {"queries": queries,
          "gallery": {str(position): describe(gallery_rows[position]) for position in shown}}


def _rgb(colour: Sequence[int]) -> str:
  return "rgb({}, {}, {})".format(*colour)


_STYLE = """
body { font: 14px/1.35 system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
.summary { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.summary img { max-width: 640px; width: 100%; border: 1px solid #ddd; }
.summary pre { font-size: 12px; background: #f6f6f6; padding: 8px; overflow-x: auto; }
.controls { position: sticky; top: 0; background: #fff; padding: 8px 0; border-bottom: 1px solid
  #ddd; z-index: 1; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
.query { display: flex; gap: 6px; padding: 6px 0; border-bottom: 1px solid #eee;
  content-visibility: auto; contain-intrinsic-size: auto 150px; }
.query[hidden] { display: none; }
.cell { margin: 0; width: 88px; font-size: 11px; text-align: center; }
.cell img { height: 96px; width: auto; max-width: 70px; border: 3px solid; display: block;
  margin: 0 auto; background: #eee; }
.cell.query-image { width: 96px; margin-right: 10px; }
.cell.query-image img { border-color: __query__; }
.cell.match img { border-color: __match__; }
.cell.non-match img { border-color: __non_match__; }
figcaption { overflow-wrap: anywhere; }
.legend span { padding: 0 4px; border: 3px solid; }
"""

_SCRIPT = """
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const list = document.getElementById("queries");
  const sortChoice = document.getElementById("sort");
  const failuresOnly = document.getElementById("failures-only");
  const count = document.getElementById("count");

  function cell(kind, entry, lines) {
    const figure = document.createElement("figure");
    figure.className = "cell " + kind;
    const image = document.createElement("img");
    image.loading = "lazy";
    image.src = entry.image;
    image.alt = entry.path;
    image.title = entry.path;
    figure.appendChild(image);
    const caption = document.createElement("figcaption");
    lines.forEach(function (line, i) {
      if (i) caption.appendChild(document.createElement("br"));
      caption.appendChild(document.createTextNode(line));
    });
    figure.appendChild(caption);
    return figure;
  }

  const rows = data.queries.map(function (query) {
    const element = document.createElement("div");
    element.className = "query";
    element.dataset.position = query.position;
    element.dataset.valid = query.valid;
    element.dataset.ap = query.valid ? query.ap : "";
    element.dataset.rank1Hit = query.rank1_hit;
    const apText = query.valid ? "AP " + (100 * query.ap).toFixed(2) + "%" : "no true match";
    element.appendChild(cell("query-image", query, [
      "query " + query.position, "id " + query.id + " \u00b7 cam " + query.camera, apText]));
    query.ranked.forEach(function (position, rank) {
      const item = data.gallery[position];
      const figure = cell(query.is_match[rank] ? "match" : "non-match", item, [
        (rank + 1) + ": id " + item.id + " \u00b7 cam " + item.camera,
        query.distances[rank] === null ? "d n/a" : "d " + query.distances[rank].toFixed(4)]);
      figure.dataset.galleryPosition = position;
      element.appendChild(figure);
    });
    return {element: element, query: query};
  });

  // Invalid queries (no true match after removal) have no AP: they go last either way.
  function byAp(sign) {
    return function (a, b) {
      if (a.query.valid !== b.query.valid) return a.query.valid ? -1 : 1;
      return a.query.valid ? sign * (a.query.ap - b.query.ap) : 0;
    };
  }

  function update() {
    const shown = rows.slice();  // query order; Array.prototype.sort is stable
    if (sortChoice.value === "ap-ascending") shown.sort(byAp(1));
    if (sortChoice.value === "ap-descending") shown.sort(byAp(-1));
    const fragment = document.createDocumentFragment();
    let visible = 0;
    shown.forEach(function (row) {
      const hide = failuresOnly.checked && !(row.query.valid && !row.query.rank1_hit);
      row.element.hidden = hide;
      visible += hide ? 0 : 1;
      fragment.appendChild(row.element);
    });
    list.appendChild(fragment);
    count.textContent = "showing " + visible + " of " + rows.length + " queries";
  }

  sortChoice.addEventListener("change", update);
  failuresOnly.addEventListener("change", update);
  update();
  document.body.dataset.ready = "true";
})();
"""


def render_page(*, title: str, description: str, results_table: str, cmc_picture: str | None,
                data: dict[str, Any]) -> str:
  """The HTML document: header, summary (CMC picture, results table), controls, queries.

  Args:
    title: page title and heading.
    description: one line under the heading (which protocol, trial and feature).
    results_table: the results table as text (`report.format_results_table`).
    cmc_picture: page-relative path of the CMC picture, or None.
    data: `page_data`'s result, embedded as JSON and rendered by the script.
  """
  style = (_STYLE.replace("__query__", _rgb(plots.QUERY_COLOUR))
           .replace("__match__", _rgb(plots.MATCH_COLOUR))
           .replace("__non_match__", _rgb(plots.NON_MATCH_COLOUR)))
  # "<" escaped so that no string in the data can close the script element.
  data_json = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
  cmc = (f'<img id="cmc" src="{html.escape(cmc_picture)}" alt="CMC curves">'
         if cmc_picture else "")
  legend = (f'<span style="border-color:{_rgb(plots.QUERY_COLOUR)}">query</span> '
            f'<span style="border-color:{_rgb(plots.MATCH_COLOUR)}">same identity</span> '
            f'<span style="border-color:{_rgb(plots.NON_MATCH_COLOUR)}">another identity</span>')
  return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{style}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p id="description">{html.escape(description)}</p>
<div class="summary">{cmc}<pre id="results-table">{html.escape(results_table)}</pre></div>
<div class="controls">
<label>Sort <select id="sort">
<option value="query">query order</option>
<option value="ap-ascending">AP, worst first</option>
<option value="ap-descending">AP, best first</option>
</select></label>
<label><input type="checkbox" id="failures-only"> rank-1 misses only</label>
<span id="count"></span>
<span class="legend">{legend}</span>
</div>
<div id="queries"></div>
<script type="application/json" id="page-data">{data_json}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def write_results_page(
    folder: str | os.PathLike,
    *,
    images: np.ndarray,
    title: str,
    description: str,
    results_table: str,
    cmc_picture: str | None,
    **rankings: Any,
) -> str:
  """Writes the thumbnails and `index.html` into `folder`; returns the page's path.

  Args:
    folder: the figure folder; must exist.
    images: [N, H, W, 3] uint8, the split's images (thumbnails of the shown ones).
    title, description, results_table, cmc_picture: see `render_page`.
    **rankings: the keyword arguments of `page_data`.
  """
  data = page_data(**rankings)
  shown_rows = [query["row"] for query in data["queries"]]
  shown_rows += [item["row"] for item in data["gallery"].values()]
  write_thumbnails(folder, images, shown_rows)
  path = os.path.join(os.fspath(folder), PAGE_NAME)
  page = render_page(title=title, description=description, results_table=results_table,
                     cmc_picture=cmc_picture, data=data)
  report.write_file_atomically(path, page.encode("utf-8"))
  return path
