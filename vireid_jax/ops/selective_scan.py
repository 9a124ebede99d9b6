"""Mamba's selective scan (the S6 recurrence of `mamba_ssm` v1) in plain JAX, any accelerator.

For each channel d and state j, from h_0 = 0:

    h_t = exp(Δ_t,d · A_d,j) · h_{t−1} + Δ_t,d · B_t,j · u_t,d
    y_t,d = Σ_j C_t,j · h_t,d,j + D_d · u_t,d,     then y ← y ⊙ SiLU(z)

exactly `mamba_ssm`'s `selective_scan_fn` / `selective_scan_ref` (real A, B and C shared over
channels), channels last and in float32 whatever the input dtype; the result has the input's
dtype, as the reference's.

Memory decides the algorithm (spec djanet.md §4.4): at SYSU-MM01 scale one block has batch ×
L × d × n = 384 × 288 × 512 × 64 states (14 GB in float32), which a full associative scan would
hold at once and a plain sequential scan would keep for its backward pass. So the sequence is
cut into chunks of `chunk_size` positions: an outer `lax.scan` carries h [batch, d, n] from
chunk to chunk, and inside a chunk `lax.associative_scan` combines the affine maps
(a₁, b₁)∘(a₂, b₂) = (a₁a₂, a₂b₁ + b₂) over (exp(ΔA), Δ·B·u) and contracts the states with C at
once, so only y leaves the chunk; the chunk body is rematerialised (`jax.checkpoint`) in the
backward pass. Only the L / chunk_size boundary states are stored. Chunk size 1 is the
sequential recurrence and chunk size ≥ L the fully associative scan; all agree to rounding.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _combine(first, second):
  """Composition of the affine maps h ↦ a·h + b, `first` applied before `second`."""
  a1, b1 = first
  a2, b2 = second
  return a1 * a2, a2 * b1 + b2


def _chunk(A, state, inputs):
  """One chunk: states from `state` [batch, d, n] through c positions; (last state, y)."""
  delta, u, B, C = inputs                                  # [batch, c, d], [batch, c, n]
  decay = jnp.exp(delta[..., None] * A)                   # [batch, c, d, n]
  drive = (delta * u)[..., None] * B[:, :, None, :]        # [batch, c, d, n]
  cumulative_decay, cumulative_drive = jax.lax.associative_scan(_combine, (decay, drive), axis=1)
  states = cumulative_decay * state[:, None] + cumulative_drive
  # A multiply-and-reduce, not an einsum: XLA fuses it (and its transpose) with the states;
  # as a batched [d, n] x [n] product it runs an order of magnitude slower on CPU.
  y = jnp.sum(states * C[:, :, None, :], axis=-1)
  return states[:, -1], y


def selective_scan(u: jax.Array, delta: jax.Array, A: jax.Array, B: jax.Array, C: jax.Array,
                   D: jax.Array | None = None, *, z: jax.Array | None = None,
                   delta_bias: jax.Array | None = None, delta_softplus: bool = False,
                   chunk_size: int = 16) -> jax.Array:
  """The selective scan, channels last (module docstring).

  Args:
    u: [batch, L, d] input.
    delta: [batch, L, d] step sizes Δ (before `delta_bias` and the softplus).
    A: [d, n] state matrix (Mamba: −exp(A_log)).
    B, C: [batch, L, n] input and output projections.
    D: [d] skip weight, or None.
    z: [batch, L, d] gate (y ⊙ SiLU(z)), or None.
    delta_bias: [d] added to Δ before the softplus, or None.
    delta_softplus: Δ ← softplus(Δ + delta_bias).
    chunk_size: the most positions per chunk (`config.model.scan_chunk_size`); the
      ⌈L / chunk_size⌉ chunks are made equal, a ragged last one padded with Δ = 0, which
      leaves the state unchanged.

  Returns:
    y [batch, L, d] in u's dtype.
  """
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
  batch, length, channels = u.shape
  if delta.shape != u.shape or (z is not None and z.shape != u.shape):
    raise ValueError(f"u, delta and z must share one [batch, L, d] shape, got {u.shape}, "
                     f"{delta.shape}, {None if z is None else z.shape}.")
  if A.shape[0] != channels or B.shape != (batch, length, A.shape[1]) or B.shape != C.shape:
    raise ValueError(f"A must be [d, n] and B, C [batch, L, n] for u {u.shape}, got A "
                     f"{A.shape}, B {B.shape}, C {C.shape}.")
  dtype = u.dtype
  f32 = lambda x: None if x is None else x.astype(jnp.float32)
  u, delta, A, B, C, D, z, delta_bias = map(f32, (u, delta, A, B, C, D, z, delta_bias))
  if delta_bias is not None:
    delta = delta + delta_bias
  if delta_softplus:
    delta = jax.nn.softplus(delta)
  # As few chunks as `chunk_size` allows, balanced: L = 18 with chunk_size 16 runs two chunks
  # of 9, not 16 + 16 of which 14 positions would be padding.
  num_chunks = -(-length // chunk_size)
  chunk = -(-length // num_chunks)
  padded = num_chunks * chunk

  def chunks(x):  # [batch, L, k] -> [L / chunk, batch, chunk, k], zero-padded
    x = jnp.pad(x, ((0, 0), (0, padded - length), (0, 0)))
    return x.reshape(batch, padded // chunk, chunk, x.shape[-1]).swapaxes(0, 1)

  body = jax.checkpoint(functools.partial(_chunk, A))
  initial = jnp.zeros((batch, channels, A.shape[1]), jnp.float32)
  _, y = jax.lax.scan(body, initial, (chunks(delta), chunks(u), chunks(B), chunks(C)))
  y = y.swapaxes(0, 1).reshape(batch, padded, channels)[:, :length]
  if D is not None:
    y = y + u * D
  if z is not None:
    y = y * jax.nn.silu(z)
  return y.astype(dtype)
