"""Evaluation: protocols (who is query and gallery), distances, re-ranking, rank metrics,
reports and pictures; `evaluate` runs all of it on a model's features of a test split, and
`extract_features` is the one batched feature extraction (evaluation and inference).

JAX and NumPy only: this package must run on machines without TensorFlow.
"""

from vireid_jax.evaluation.evaluator import evaluate
from vireid_jax.evaluation.features import extract_features
from vireid_jax.evaluation.metrics import rank_metrics
from vireid_jax.evaluation.metrics import rank_metrics_from_features
from vireid_jax.evaluation.protocols import llcm_trials
from vireid_jax.evaluation.protocols import load_rand_perm_cam
from vireid_jax.evaluation.protocols import mean_over_trials
from vireid_jax.evaluation.protocols import negative_cosine_distance
from vireid_jax.evaluation.protocols import regdb_trials
from vireid_jax.evaluation.protocols import single_shot_gallery_indices
from vireid_jax.evaluation.protocols import sysu_gallery_indices
from vireid_jax.evaluation.protocols import sysu_official_gallery_indices
from vireid_jax.evaluation.protocols import sysu_query_indices
from vireid_jax.evaluation.protocols import sysu_trials
from vireid_jax.evaluation.protocols import Trials
from vireid_jax.evaluation.report import format_results_table
from vireid_jax.evaluation.report import summarize_trials
from vireid_jax.evaluation.report import write_results_json
from vireid_jax.evaluation.rerank import k_reciprocal_rerank
from vireid_jax.evaluation.rerank import mser_rerank

__all__ = [
    "Trials",
    "evaluate",
    "extract_features",
    "format_results_table",
    "k_reciprocal_rerank",
    "llcm_trials",
    "load_rand_perm_cam",
    "mean_over_trials",
    "mser_rerank",
    "negative_cosine_distance",
    "rank_metrics",
    "rank_metrics_from_features",
    "regdb_trials",
    "single_shot_gallery_indices",
    "summarize_trials",
    "sysu_gallery_indices",
    "sysu_official_gallery_indices",
    "sysu_query_indices",
    "sysu_trials",
    "write_results_json",
]
