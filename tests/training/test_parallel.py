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
    from vireid_jax.methods.base import DataInfo
    from vireid_jax.training import loop, parallel

    # Equality across meshes does not depend on XLA's optimisations; compiling is faster.
    jax.config.update("jax_disable_most_optimizations", True)
    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(0)
    batch = {
        "visible": rng.normal(size=(8, 64, 32, 3)).astype(np.float32),
        "infrared": rng.normal(size=(8, 64, 32, 3)).astype(np.float32),
        "visible_labels": np.repeat(np.arange(4), 2).astype(np.int32),
        "infrared_labels": np.repeat(np.arange(4), 2).astype(np.int32),
    }

    def max_relative(a, b):
      # Largest difference of a leaf, relative to that leaf's largest magnitude.
      return max(float(np.max(np.abs(x - y)) / (np.max(np.abs(x)) + 1e-12))
                 for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    report = {}
    for dtype in ("float32", "bfloat16"):
      config = synthetic.get_config()
      config.model.width = 8
      config.model.dtype = dtype
      outputs = {}
      for name, devices in (("one", jax.devices()[:1]), ("eight", jax.devices())):
        mesh = parallel.make_mesh(devices)
        method = agw.AGWMethod(config)
        data_info = DataInfo(num_classes=4, num_visible=8, num_infrared=8, steps_per_epoch=10)
        state = parallel.replicate(method.create_state(data_info), mesh)
        step = loop.jit_train_step(method, mesh)
        global_batch = parallel.global_batch(batch, mesh)
        assert len(global_batch["visible"].sharding.device_set) == len(devices)
        losses = []
        for _ in range(2):
          state, metrics = step(state, global_batch)
          losses.append(float(metrics["loss"]))
        outputs[name] = dict(
            params=jax.device_get(state.net.params),
            stats=jax.device_get(state.net.batch_stats),
            losses=losses, loss_dtype=str(metrics["loss"].dtype),
            param_devices=len(
                state.net.params["bottleneck"]["scale"].value.sharding.device_set))
      one, eight = outputs["one"], outputs["eight"]
      report[dtype] = {
          "losses": [one["losses"], eight["losses"]],
          "params": max_relative(one["params"], eight["params"]),
          "batch_stats": max_relative(one["stats"], eight["stats"]),
          "param_devices": [one["param_devices"], eight["param_devices"]],
          "param_dtypes": sorted({str(x.dtype) for x in jax.tree.leaves(eight["params"])}),
          "stat_dtypes": sorted({str(x.dtype) for x in jax.tree.leaves(eight["stats"])}),
          "loss_dtype": eight["loss_dtype"],
      }
    print("RESULT " + json.dumps(report))
    """)


@pytest.fixture(scope="module")
def eight_device_steps():
  """Two AGW steps in float32 and in bfloat16, each on a 1-device and an 8-device mesh."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
  completed = subprocess.run([sys.executable, "-c", STEP_ON_TWO_MESHES], cwd=REPO_ROOT,
                             env=env, capture_output=True, text=True, timeout=900)
  assert completed.returncode == 0, completed.stderr[-3000:]
  line = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


def test_step_on_eight_devices_equals_the_step_on_one(eight_device_steps):
  result = eight_device_steps["float32"]
  for one_loss, eight_loss in zip(*result["losses"]):
    assert abs(one_loss - eight_loss) <= 1e-5 * abs(one_loss)
  # Two SGD updates; only the order of the cross-device sums differs. The worst leaf is the
  # bias of a width-1 non-local projection, whose gradient sums thousands of nearly
  # cancelling float32 terms (about 1e-4 relative); every other leaf agrees to ~1e-6.
  assert result["params"] < 5e-4
  assert result["batch_stats"] < 1e-4
  # The state is replicated on every device of the mesh.
  assert result["param_devices"] == [1, 8]


def test_bfloat16_compute_keeps_float32_parameters_statistics_and_losses(eight_device_steps):
  result = eight_device_steps["bfloat16"]
  assert result["param_dtypes"] == ["float32"]
  assert result["stat_dtypes"] == ["float32"]
  assert result["loss_dtype"] == "float32"
  # The first step's loss (same parameters on both meshes) agrees to bfloat16 rounding, and
  # with the float32 model's; after an update, bfloat16 rounding of different partial sums
  # makes the meshes drift apart a little more.
  (one_first, one_second), (eight_first, eight_second) = result["losses"]
  float32_first = eight_device_steps["float32"]["losses"][0][0]
  assert abs(one_first - eight_first) <= 1e-2 * abs(one_first)
  assert abs(one_first - float32_first) <= 2e-2 * abs(float32_first)
  assert np.isfinite(one_second) and abs(one_second - eight_second) <= 5e-2 * abs(one_second)


def test_indivisible_batch_names_the_config_key():
  mesh = parallel.make_mesh()
  if mesh.size == 1:
    assert parallel.check_divisible(7, mesh, "config.data.eval_batch_size") is None
  fake_mesh = type("FakeMesh", (), {"size": 8})()
  with pytest.raises(ValueError, match=r"config.data.eval_batch_size=12 .* 8 devices"):
    parallel.check_divisible(12, fake_mesh, "config.data.eval_batch_size")
