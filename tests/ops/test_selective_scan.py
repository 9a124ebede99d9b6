"""Mamba's selective scan against a float64 NumPy transcription of `mamba_ssm`'s
`selective_scan_ref` (real A, B and C varying over positions), for every chunking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vireid_jax.ops import selective_scan


def reference_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
  """`selective_scan_ref`, written channels-first as the library is, in float64."""
  u, delta, z = (np.asarray(x, np.float64).transpose(0, 2, 1) for x in (u, delta, z))
  B, C = (np.asarray(x, np.float64).transpose(0, 2, 1) for x in (B, C))   # [b, n, L]
  A, D, delta_bias = (np.asarray(x, np.float64) for x in (A, D, delta_bias))
  delta = delta + delta_bias[..., None]
  if delta_softplus:
    delta = np.log1p(np.exp(delta))
  batch, channels, length = u.shape
  x = np.zeros((batch, channels, A.shape[1]))
  delta_a = np.exp(np.einsum("bdl,dn->bdln", delta, A))
  delta_b_u = np.einsum("bdl,bnl,bdl->bdln", delta, B, u)
  ys = []
  for i in range(length):
    x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
    ys.append(np.einsum("bdn,bn->bd", x, C[:, :, i]))
  out = np.stack(ys, axis=2) + u * D[:, None]
  out = out * (z / (1 + np.exp(-z)))
  return out.transpose(0, 2, 1)


def inputs(seed, batch=2, length=10, channels=6, states=4):
  rng = np.random.default_rng(seed)
  normal = lambda *shape: rng.normal(size=shape).astype(np.float32)
  return dict(u=normal(batch, length, channels), delta=normal(batch, length, channels),
              A=-np.exp(normal(channels, states)), B=normal(batch, length, states),
              C=normal(batch, length, states), D=normal(channels),
              z=normal(batch, length, channels), delta_bias=normal(channels))


@pytest.mark.parametrize("chunk_size", [1, 3, 4, 10, 64])
def test_every_chunking_equals_the_reference(chunk_size):
  arrays = inputs(0)
  ours = selective_scan(**{k: jnp.asarray(v) for k, v in arrays.items()}, delta_softplus=True,
                        chunk_size=chunk_size)
  np.testing.assert_allclose(ours, reference_scan(**arrays, delta_softplus=True), rtol=2e-5,
                             atol=2e-5)


def test_gradients_agree_between_sequential_chunked_and_associative():
  arrays = {k: jnp.asarray(v) for k, v in inputs(1, length=9).items()}
  weights = jnp.asarray(np.random.default_rng(2).normal(size=(2, 9, 6)), jnp.float32)

  def grads(chunk_size):
    loss = lambda a: jnp.sum(weights * selective_scan(**a, delta_softplus=True,
                                                      chunk_size=chunk_size))
    return jax.jit(jax.grad(loss))(arrays)
  sequential = grads(1)
  for chunk_size in (4, 9):
    for name, value in grads(chunk_size).items():
      np.testing.assert_allclose(value, sequential[name], rtol=1e-4, atol=1e-5, err_msg=name)
  assert all(np.all(np.isfinite(value)) for value in sequential.values())


def test_bfloat16_inputs_are_scanned_in_float32_and_returned_in_bfloat16():
  arrays = inputs(3)
  low = {k: jnp.asarray(v, jnp.bfloat16) for k, v in arrays.items()}
  ours = selective_scan(**low, delta_softplus=True, chunk_size=4)
  assert ours.dtype == jnp.bfloat16
  exact = reference_scan(**{k: np.asarray(v, np.float32) for k, v in low.items()},
                         delta_softplus=True)
  np.testing.assert_allclose(np.asarray(ours, np.float32), exact, rtol=2e-2, atol=2e-2)


def test_optional_parts_and_shape_errors():
  arrays = {k: jnp.asarray(v) for k, v in inputs(4).items()}
  plain = selective_scan(arrays["u"], arrays["delta"], arrays["A"], arrays["B"], arrays["C"])
  expected = reference_scan(arrays["u"], arrays["delta"], arrays["A"], arrays["B"],
                            arrays["C"], np.zeros(6), np.full((2, 10, 6), 50.0), np.zeros(6),
                            False)   # SiLU(50) = 50: divide it back out
  np.testing.assert_allclose(plain, expected / 50.0, rtol=2e-5, atol=2e-5)
  with pytest.raises(ValueError, match=r"B, C \[batch, L, n\]"):
    selective_scan(arrays["u"], arrays["delta"], arrays["A"], arrays["B"][:, :5],
                   arrays["C"])
  with pytest.raises(ValueError, match="chunk_size"):
    selective_scan(arrays["u"], arrays["delta"], arrays["A"], arrays["B"], arrays["C"],
                   chunk_size=0)


def _torch_selective_scan_ref(torch, u, delta, A, B, C, D, z, delta_bias):
  """mamba_ssm's `selective_scan_ref` (channels-first [b, d, L], B/C [b, n, L]) with
  delta_softplus=True, in float64 with autograd."""
  delta = torch.nn.functional.softplus(delta + delta_bias[..., None])
  delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
  delta_b_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
  x = u.new_zeros((u.shape[0], u.shape[1], A.shape[1]))
  ys = []
  for i in range(u.shape[2]):
    x = delta_a[:, :, i] * x + delta_b_u[:, :, i]
    ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
  out = torch.stack(ys, dim=2) + u * D[:, None]
  return out * torch.nn.functional.silu(z)


@pytest.mark.parametrize("length,chunk_size", [(288, 1), (288, 16), (288, 288), (283, 16)])
def test_djanet_scale_values_and_gradients_equal_the_pytorch_reference(length, chunk_size):
  """DJANet's L = 288 positions and n = 64 states (spec djanet.md §4.4): value within 1e-5
  and every input's gradient within 1e-4 (relative norms) of `selective_scan_ref`."""
  torch = pytest.importorskip("torch")
  arrays = inputs(5, batch=1, length=length, channels=3, states=64)
  arrays["delta"] = arrays["delta"] - 2.0          # softplus ≈ 0.1: a long memory
  weights = np.random.default_rng(6).normal(size=(1, length, 3)).astype(np.float32)
  names = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
  channels_first = {"u", "delta", "z", "B", "C"}
  tensors = {name: torch.tensor(arrays[name].transpose(0, 2, 1) if name in channels_first
                                else arrays[name], dtype=torch.float64, requires_grad=True)
             for name in names}
  expected = _torch_selective_scan_ref(torch, **tensors)
  (expected * torch.tensor(weights.transpose(0, 2, 1), dtype=torch.float64)).sum().backward()

  def loss(a):
    out = selective_scan(**a, delta_softplus=True, chunk_size=chunk_size)
    return jnp.sum(weights * out), out
  grads, ours = jax.jit(jax.grad(loss, has_aux=True))({k: jnp.asarray(arrays[k]) for k in names})
  relative = lambda a, b: np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b)
  assert relative(ours, expected.detach().numpy().transpose(0, 2, 1)) <= 1e-5
  for name in names:
    theirs = tensors[name].grad.numpy()
    theirs = theirs.transpose(0, 2, 1) if name in channels_first else theirs
    assert relative(grads[name], theirs) <= 1e-4, name
