"""Data parallelism: one AGW step on 8 simulated CPU devices equals the step on one device.

The device count of the CPU platform is fixed when JAX starts, so the comparison runs in a
subprocess started with `XLA_FLAGS=--xla_force_host_platform_device_count=8`; it builds one
mesh over a single device and one over all eight, runs the same jitted step on both, and
prints the differences as JSON.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vireid_jax.training import parallel

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STEP_ON_TWO_MESHES = textwrap.dedent("""
    import json
    import jax
    import numpy as np
    from configs import synthetic
    from vireid_jax.methods import agw
    from vireid_jax.training import loop, parallel

    assert jax.device_count() == 8, jax.devices()
    config = synthetic.get_config()
    config.model.width = 8
    config.model.dtype = {dtype!r}
    rng = np.random.default_rng(0)
    batch = {{
        "visible": rng.normal(size=(8, 64, 32, 3)).astype(np.float32),
        "infrared": rng.normal(size=(8, 64, 32, 3)).astype(np.float32),
        "visible_labels": np.repeat(np.arange(4), 2).astype(np.int32),
        "infrared_labels": np.repeat(np.arange(4), 2).astype(np.int32),
    }}
    outputs = {{}}
    for name, devices in (("one", jax.devices()[:1]), ("eight", jax.devices())):
      mesh = parallel.make_mesh(devices)
      state = parallel.replicate(agw.create_state(config, 4, 10), mesh)
      step = loop.jit_train_step(agw, config, mesh)
      global_batch = parallel.global_batch(batch, mesh)
      assert len(global_batch["visible"].sharding.device_set) == len(devices)
      for _ in range(2):
        state, metrics = step(state, global_batch)
      outputs[name] = (jax.device_get(state.params), jax.device_get(state.batch_stats),
                       jax.device_get(metrics),
                       len(state.params["bottleneck"]["scale"].value.sharding.device_set))
    one, eight = outputs["one"], outputs["eight"]
    def max_relative(a, b):
      # Largest difference of a leaf, relative to that leaf's largest magnitude.
      a, b = jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)
      worst = max((float(np.max(np.abs(x - y)) / (np.max(np.abs(x)) + 1e-12)),
                   jax.tree_util.keystr(path)) for (path, x), (_, y) in zip(a, b))
      return worst[0]
    print("RESULT " + json.dumps({{
        "loss": [float(one[2]["loss"]), float(eight[2]["loss"])],
        "params": max_relative(one[0], eight[0]),
        "batch_stats": max_relative(one[1], eight[1]),
        "param_devices": [one[3], eight[3]],
        "param_dtypes": sorted({{str(x.dtype) for x in jax.tree.leaves(eight[0])}}),
        "stat_dtypes": sorted({{str(x.dtype) for x in jax.tree.leaves(eight[1])}}),
        "loss_dtype": str(eight[2]["loss"].dtype),
    }}))
    """)


def run_on_eight_devices(dtype):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
  completed = subprocess.run([sys.executable, "-c", STEP_ON_TWO_MESHES.format(dtype=dtype)],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
  assert completed.returncode == 0, completed.stderr[-3000:]
  line = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


def test_step_on_eight_devices_equals_the_step_on_one():
  result = run_on_eight_devices("float32")
  one_loss, eight_loss = result["loss"]
  assert abs(one_loss - eight_loss) <= 1e-5 * abs(one_loss)
  # Two SGD updates; only the order of the cross-device sums differs. The worst leaf is the
  # bias of a width-1 non-local projection, whose gradient sums thousands of nearly
  # cancelling float32 terms (about 1e-4 relative); every other leaf agrees to ~1e-6.
  assert result["params"] < 5e-4
  assert result["batch_stats"] < 1e-4
  # The state is replicated on every device of the mesh.
  assert result["param_devices"] == [1, 8]


def test_bfloat16_compute_keeps_float32_parameters_statistics_and_losses():
  result = run_on_eight_devices("bfloat16")
  assert result["param_dtypes"] == ["float32"]
  assert result["stat_dtypes"] == ["float32"]
  assert result["loss_dtype"] == "float32"
  one_loss, eight_loss = result["loss"]
  assert np.isfinite(one_loss) and abs(one_loss - eight_loss) <= 1e-2 * abs(one_loss)


def test_indivisible_batch_names_the_config_key():
  mesh = parallel.make_mesh()
  if mesh.size == 1:
    assert parallel.check_divisible(7, mesh, "config.data.eval_batch_size") is None
  fake_mesh = type("FakeMesh", (), {"size": 8})()
  with pytest.raises(ValueError, match=r"config.data.eval_batch_size=12 .* 8 devices"):
    parallel.check_divisible(12, fake_mesh, "config.data.eval_batch_size")
