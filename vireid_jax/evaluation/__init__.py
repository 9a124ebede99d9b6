"""Evaluation: protocols (who is query and gallery), rank metrics, reports.

JAX and NumPy only: this package must run on machines without TensorFlow.
"""

from vireid_jax.evaluation.metrics import rank_metrics
from vireid_jax.evaluation.protocols import evaluate_split
from vireid_jax.evaluation.protocols import evaluate_sysu
from vireid_jax.evaluation.protocols import mean_over_trials
from vireid_jax.evaluation.protocols import negative_cosine_distance
from vireid_jax.evaluation.protocols import single_shot_gallery_indices
from vireid_jax.evaluation.protocols import sysu_gallery_indices
from vireid_jax.evaluation.protocols import sysu_query_indices
from vireid_jax.evaluation.report import format_results_table
from vireid_jax.evaluation.report import summarize_trials
from vireid_jax.evaluation.report import write_results_json

__all__ = [
    "evaluate_split",
    "evaluate_sysu",
    "format_results_table",
    "mean_over_trials",
    "negative_cosine_distance",
    "rank_metrics",
    "single_shot_gallery_indices",
    "summarize_trials",
    "sysu_gallery_indices",
    "sysu_query_indices",
    "write_results_json",
]
