"""Custom-gradient operations.

* :func:`gradient_reversal`, :func:`dann_lambda`: the gradient reversal layer
  and its DANN schedule (DAN's domain-adversarial alignment).
* :func:`minmax_value_and_grad`, :func:`adversarial_scores`,
  :func:`lsgan_loss`: one-pass gradients for adversarial games (DANN-style
  zero-sum games; AlignGAN's LSGAN game).
* :func:`soft_sort`, :func:`soft_rank`: differentiable sorting and ranking
  (Blondel et al. 2020, torchsort conventions; MCJA's retrieval loss), with
  the underlying :func:`isotonic_l2` and :func:`isotonic_kl` solvers.
* :func:`selective_scan`: Mamba's S6 recurrence as a chunked associative scan
  (DJANet's Mamba blocks), on any accelerator.
"""

from vireid_jax.ops.gradient_reversal import dann_lambda
from vireid_jax.ops.gradient_reversal import gradient_reversal
from vireid_jax.ops.minmax import adversarial_scores
from vireid_jax.ops.minmax import lsgan_loss
from vireid_jax.ops.minmax import minmax_value_and_grad
from vireid_jax.ops.selective_scan import selective_scan
from vireid_jax.ops.soft_sort import isotonic_kl
from vireid_jax.ops.soft_sort import isotonic_l2
from vireid_jax.ops.soft_sort import soft_rank
from vireid_jax.ops.soft_sort import soft_sort

__all__ = [
    "adversarial_scores",
    "dann_lambda",
    "gradient_reversal",
    "isotonic_kl",
    "isotonic_l2",
    "lsgan_loss",
    "minmax_value_and_grad",
    "selective_scan",
    "soft_rank",
    "soft_sort",
]
