"""The results browser (`figures/<name>/index.html`) opened from disk in headless Chromium
(Selenium with the system's chromedriver, never a downloaded browser): the ranks it shows
against the evaluation's distances, sorting by AP, the rank-1-miss filter, a screenshot."""

import json
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.evaluation.test_evaluator import _config
from tests.evaluation.test_evaluator import _reference_features
from tests.evaluation.test_evaluator import features_fn
from tests.evaluation.test_evaluator import llcm_split  # noqa: F401  (fixture)
from tests.evaluation.test_evaluator import sysu_split  # noqa: F401  (fixture)
from vireid_jax.evaluation import evaluate
from vireid_jax.evaluation import html_page
from vireid_jax.evaluation import protocols
from vireid_jax.evaluation import report

_BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser_paths():
  browser = next((path for path in map(shutil.which, _BROWSERS) if path), None)
  return browser, shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
  browser_path, driver_path = _browser_paths()
  if browser_path is None or driver_path is None:
    pytest.skip("No Chromium and chromedriver on PATH (Debian: apt-get install chromium"
                " chromium-driver; .ci/run installs them where apt is available).")
  options = webdriver.ChromeOptions()
  options.binary_location = browser_path
  for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                   "--window-size=1400,1000"):
    options.add_argument(argument)
  driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
  try:
    yield driver
  finally:
    driver.quit()


_READ_ROWS = """
return Array.from(document.querySelectorAll("#queries .query")).map(function (row) {
  const cells = Array.from(row.querySelectorAll("[data-gallery-position]"));
  return {
    position: Number(row.dataset.position),
    hidden: row.hidden,
    ap: row.dataset.ap === "" ? null : Number(row.dataset.ap),
    rank1_hit: row.dataset.rank1Hit === "true",
    query_image: row.querySelector(".query-image img").getAttribute("src"),
    gallery: cells.map(function (cell) { return Number(cell.dataset.galleryPosition); }),
    is_match: cells.map(function (cell) { return cell.classList.contains("match"); }),
    images: cells.map(function (cell) { return cell.querySelector("img").getAttribute("src"); }),
  };
});
"""


def _expected_rankings(split, variant):
  """Trial 0 from float64 reference features: each query's gallery positions by cosine
  distance (stable), SYSU's removal rule applied (camera-3 queries drop camera 2)."""
  features = _reference_features(split)["bn"]
  queries, gallery = variant.queries(0), variant.gallery(0)
  rankings = []
  for query in queries:
    order = np.argsort(-features[gallery] @ features[query], kind="stable")
    rankings.append([int(g) for g in order
                     if not (split.cameras[query] == 3 and split.cameras[gallery[g]] == 2)])
  return queries, gallery, rankings


def _average_precision(is_match):
  hits = np.flatnonzero(is_match)
  return np.mean((np.arange(len(hits)) + 1) / (hits + 1))


def _wait_until_ready(driver):
  WebDriverWait(driver, 30).until(
      lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))


# The split fixtures, imported above, are parameters here (pyflakes: F811).
def test_results_page_in_chromium(sysu_split, browser, tmp_path):  # noqa: F811
  output_dir = tmp_path / "figures" / "trained"
  config = _config(num_trials=2, features=("bn",), ranking_queries=0, ranking_top_k=5)
  summaries = evaluate(features_fn, sysu_split, config, dataset="sysu", batch_size=8,
                       output_dir=str(output_dir))
  bn = next(summary for summary in summaries if summary["feature"] == "bn")
  variant = protocols.sysu_trials(sysu_split.person_ids, sysu_split.cameras,
                                  sysu_split.relative_paths, num_trials=2)
  queries, gallery, rankings = _expected_rankings(sysu_split, variant)
  top_k = config.ranking_top_k
  assert len(gallery) > top_k  # the page must cut the list

  browser.get((output_dir / "index.html").as_uri())
  _wait_until_ready(browser)
  rows = browser.execute_script(_READ_ROWS)

  # Every query of trial 0, in protocol order, with the top k of the evaluation after removal.
  assert [row["position"] for row in rows] == list(range(len(queries)))
  valid_aps, hits = [], []
  for row, query, ranking in zip(rows, queries, rankings):
    assert not row["hidden"]
    assert row["gallery"] == ranking[:top_k]
    is_match = sysu_split.person_ids[gallery[ranking]] == sysu_split.person_ids[query]
    assert row["is_match"] == list(is_match[:top_k])
    assert row["query_image"] == html_page.thumbnail_path(query)
    assert row["images"] == [html_page.thumbnail_path(gallery[g]) for g in ranking[:top_k]]
    if is_match.any():
      np.testing.assert_allclose(row["ap"], _average_precision(is_match), atol=1e-6)
      assert row["rank1_hit"] == is_match[0]
      valid_aps.append(row["ap"])
      hits.append(row["rank1_hit"])
    else:
      assert row["ap"] is None
  # The page's queries average to the evaluation's own trial-0 numbers.
  np.testing.assert_allclose(np.mean(valid_aps), bn["per_trial"]["mAP"][0], atol=1e-6)
  np.testing.assert_allclose(np.mean(hits), bn["per_trial"]["rank1"][0], atol=1e-9)
  assert 0 < sum(hits) < len(hits)  # both hits and misses, so the filter is tested

  # Thumbnails: one file per shown image, each the thumbnail of its own split image.
  thumbnails = sorted(os.listdir(output_dir / html_page.THUMBNAILS_FOLDER))
  shown = {int(query) for query in queries} | {int(gallery[g]) for r in rankings for g in r[:top_k]}
  assert thumbnails == sorted(f"{row}.jpg" for row in shown)
  images = sysu_split.images.astype(np.float64)
  for row in list(shown)[:12]:
    thumbnail = np.asarray(Image.open(output_dir / html_page.thumbnail_path(row)), np.float64)
    errors = np.abs(images - thumbnail).mean(axis=(1, 2, 3))
    assert np.argmin(errors) == row

  # Everything the page loads is local, and its images did load (CMC curve, first row).
  urls = browser.execute_script(
      "return Array.from(document.querySelectorAll('[src],[href]'))"
      ".map(e => e.src || e.href);")
  assert urls and all(url.startswith("file://") for url in urls)
  browser.execute_script("window.scrollTo(0, 0);")
  WebDriverWait(browser, 30).until(lambda d: d.execute_script(
      "const images = [document.getElementById('cmc')].concat(Array.from("
      "document.querySelector('#queries .query').querySelectorAll('img')));"
      "return images.every(i => i.complete && i.naturalWidth > 0);"))
  table = browser.find_element(By.ID, "results-table").text
  assert table.strip() == report.format_results_table(summaries).strip()

  # Sorted by AP, worst first, then best first: every query still there, in stable AP order.
  ap_of = {row["position"]: row["ap"] for row in rows}
  for choice, sign in (("ap-ascending", 1), ("ap-descending", -1)):
    Select(browser.find_element(By.ID, "sort")).select_by_value(choice)
    order = [row["position"] for row in browser.execute_script(_READ_ROWS)]
    expected = sorted(range(len(rows)), key=lambda position: (
        ap_of[position] is None, 0 if ap_of[position] is None else sign * ap_of[position]))
    assert order == expected
    assert order != list(range(len(rows)))

  # Rank-1 misses only: exactly the valid queries whose first kept item is another identity.
  browser.find_element(By.ID, "failures-only").click()
  shown_rows = [row for row in browser.execute_script(_READ_ROWS) if not row["hidden"]]
  misses = {position for position, (query, ranking) in enumerate(zip(queries, rankings))
            if (sysu_split.person_ids[gallery[ranking]] == sysu_split.person_ids[query]).any()
            and sysu_split.person_ids[gallery[ranking[0]]] != sysu_split.person_ids[query]}
  assert {row["position"] for row in shown_rows} == misses
  aps = [row["ap"] for row in shown_rows]
  assert aps == sorted(aps, reverse=True)  # the filter keeps the chosen order
  assert browser.find_element(By.ID, "count").text == (
      f"showing {len(misses)} of {len(queries)} queries")

  screenshot = tmp_path / "results_page.png"
  assert browser.save_screenshot(str(screenshot))
  assert min(Image.open(screenshot).size) >= 500


def _page_data(folder):
  page = (folder / html_page.PAGE_NAME).read_text(encoding="utf-8")
  return json.loads(re.search(r'id="page-data">(.*?)</script>', page, re.S).group(1))


@pytest.mark.parametrize("dataset, rerank", [("llcm", "none"), ("sysu", "k_reciprocal")])
def test_page_queries_average_to_trial_0(dataset, rerank, llcm_split, sysu_split,  # noqa: F811
                                         tmp_path):
  """LLCM's removal rule (same id and camera) and re-ranked distances, without a browser."""
  split = {"llcm": llcm_split, "sysu": sysu_split}[dataset]
  config = _config(num_trials=2, features=("bn",), rerank=rerank, ranking_queries=0,
                   llcm_directions=("ir_to_vis",))
  (summary,) = evaluate(features_fn, split, config, dataset=dataset, batch_size=8,
                        output_dir=str(tmp_path))
  data = _page_data(tmp_path)
  queries = data["queries"]
  valid = [query for query in queries if query["valid"]]
  assert len(queries) == summary["num_queries"]
  assert len(valid) == summary["per_trial"]["num_valid_queries"][0]
  np.testing.assert_allclose(np.mean([query["ap"] for query in valid]),
                             summary["per_trial"]["mAP"][0], atol=1e-6)
  np.testing.assert_allclose(np.mean([query["rank1_hit"] for query in valid]),
                             summary["per_trial"]["rank1"][0], atol=1e-9)
  for query in queries:
    assert query["distances"] == sorted(query["distances"])
  if dataset == "llcm":
    # The rule drops the query's identity seen by the query's own camera: such gallery items
    # exist, and none is shown.
    gallery = protocols.llcm_trials(split.person_ids, split.cameras, split.modalities,
                                    split.relative_paths, direction="ir_to_vis",
                                    num_trials=2).gallery(0)
    def removed(query, rows):
      return ((split.person_ids[rows] == split.person_ids[query["row"]])
              & (split.cameras[rows] == query["camera"]))
    assert any(removed(query, gallery).any() for query in queries)
    for query in queries:
      shown_rows = [data["gallery"][str(position)]["row"] for position in query["ranked"]]
      assert not removed(query, shown_rows).any()


def test_page_data_cannot_break_out_of_the_page(tmp_path):
  """Paths and ids are data, never markup: a path holding "</script>" stays in the JSON."""
  images = np.zeros((3, 8, 4, 3), np.uint8)
  hostile = "cam1/</script><script>document.title='hacked'</script>.jpg"
  path = html_page.write_results_page(
      tmp_path, images=images, title="t <b>", description="d", results_table="| x |",
      cmc_picture=None, person_ids=np.array([1, 1, 2]), cameras=np.array([3, 1, 1]),
      relative_paths=np.array(["q.jpg", hostile, "g2.jpg"]), query_rows=np.array([0]),
      gallery_rows=np.array([1, 2]), ranked=[np.array([1, 0])],
      ranked_distances=[np.array([0.1, 0.2], np.float32)],
      ranked_is_match=[np.array([False, True])], average_precision=np.array([0.5]),
      rank1_hit=np.array([False]), valid=np.array([True]))
  page = open(path, encoding="utf-8").read()
  assert page.count("</script>") == 2  # the data's and the code's own
  data = json.loads(re.search(r'id="page-data">(.*?)</script>', page, re.S).group(1))
  assert data["gallery"]["0"]["path"] == hostile
  assert "<title>t &lt;b&gt;</title>" in page
  assert sorted(os.listdir(tmp_path / html_page.THUMBNAILS_FOLDER)) == ["0.jpg", "1.jpg",
                                                                        "2.jpg"]
  # A second page replaces the thumbnails folder whole, leaving no staging folder.
  html_page.write_thumbnails(tmp_path, images, [2])
  assert sorted(os.listdir(tmp_path)) == ["index.html", html_page.THUMBNAILS_FOLDER]
  assert os.listdir(tmp_path / html_page.THUMBNAILS_FOLDER) == ["2.jpg"]


def test_a_nan_distance_is_written_as_null(tmp_path):
  """An all-zero feature normalises to NaN (as in the references): its distances become null,
  not a page that JSON cannot hold (a tiny trained model gave such features)."""
  images = np.zeros((3, 8, 4, 3), np.uint8)
  path = html_page.write_results_page(
      tmp_path, images=images, title="t", description="d", results_table="| x |",
      cmc_picture=None, person_ids=np.array([1, 1, 2]), cameras=np.array([3, 1, 1]),
      relative_paths=np.array(["q.jpg", "g1.jpg", "g2.jpg"]), query_rows=np.array([0]),
      gallery_rows=np.array([1, 2]), ranked=[np.array([0, 1])],
      ranked_distances=[np.array([np.nan, 0.25], np.float32)],
      ranked_is_match=[np.array([True, False])], average_precision=np.array([1.0]),
      rank1_hit=np.array([True]), valid=np.array([True]))
  page = open(path, encoding="utf-8").read()
  data = json.loads(re.search(r'id="page-data">(.*?)</script>', page, re.S).group(1))
  assert data["queries"][0]["distances"] == [None, 0.25]
  assert '"d n/a"' in page
