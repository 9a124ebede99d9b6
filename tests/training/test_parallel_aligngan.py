"""AlignGAN's three phases on 8 simulated CPU devices equal the same steps on one device.

As tests/training/test_parallel.py (a file of its own so that the two subprocesses run on
both test workers): a subprocess started with 8 host devices runs one step of each phase
(`loop.jit_train_step`, the program the loop runs for that phase) from the same state on a
1-device and an 8-device mesh, the IDE batch (8 rows) and the GAN batch (8 rows) split by
rows, and prints the differences.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PHASES_ON_TWO_MESHES = textwrap.dedent("""
    import json
    import jax
    import jax.numpy as jnp
    import numpy as np
    from tests.methods.test_aligngan import INFO, make_batch, tiny_config
    from vireid_jax import methods
    from vireid_jax.training import loop, parallel

    jax.config.update("jax_disable_most_optimizations", True)
    assert jax.device_count() == 8, jax.devices()
    config = tiny_config(dropout=0.5)           # dropout keys must agree across meshes too
    for field in ("ids_per_batch", "gan_ids_per_batch"):
      config.data[field] = 2
    config.data.images_per_id = config.data.gan_images_per_id = 4   # 8 rows: 1 per device
    labels = np.repeat(np.arange(2), 4).astype(np.int32)
    rng = np.random.default_rng(0)
    images = lambda: rng.normal(size=(8, 64, 32, 3)).astype(np.float32)
    batch = {"visible": images(), "infrared": images(), "visible_labels": labels,
             "infrared_labels": labels, "gan_visible": images(), "gan_infrared": images(),
             "gan_visible_labels": labels, "gan_infrared_labels": labels}
    method = methods.resolve(config)
    initial = jax.device_get(method.create_state(INFO))   # host copies: the steps donate
    report = {}
    for phase, iteration in (("feature_warmup", 0), ("pixel_warmup", 2), ("joint", 4)):
      outputs = {}
      for name, devices in (("one", jax.devices()[:1]), ("eight", jax.devices())):
        mesh = parallel.make_mesh(devices)
        state = parallel.replicate(initial.replace(step=np.asarray(iteration, np.int32)), mesh)
        step = loop.jit_train_step(method, mesh)
        state, metrics = step(state, parallel.global_batch(batch, mesh), iteration)
        outputs[name] = (jax.device_get(state), {k: float(v) for k, v in metrics.items()},
                         len(jax.tree.leaves(state.generators.params)[0].sharding.device_set))
      (one, one_metrics, one_devices), (eight, eight_metrics, eight_devices) = (
          outputs["one"], outputs["eight"])
      players = {}
      for player in ("generators", "d_rgb", "d_ir", "d_rgb_warmup", "d_ir_warmup", "features"):
        before = jax.tree.leaves(getattr(initial, player).params)
        after_one = jax.tree.leaves(getattr(one, player).params)
        after_eight = jax.tree.leaves(getattr(eight, player).params)
        update = max(float(np.abs(a - b).max()) for a, b in zip(after_one, before))
        differences = np.concatenate([np.abs(a - b).ravel()
                                      for a, b in zip(after_one, after_eight)])
        difference = float(differences.max())
        over_one_percent = float(np.mean(differences > 1e-2 * max(update, 1e-12)))
        stats = [float(np.max(np.abs(a - b) / (np.abs(a) + 1e-3))) for a, b in zip(
            jax.tree.leaves(getattr(one, player).batch_stats),
            jax.tree.leaves(getattr(eight, player).batch_stats))]
        players[player] = {"update": update, "difference": difference,
                           "over_one_percent": over_one_percent,
                           "stats": max(stats, default=0.0)}
      report[phase] = {"metrics": [one_metrics, eight_metrics], "players": players,
                       "devices": [one_devices, eight_devices]}
    print("RESULT " + json.dumps(report))
    """)


@pytest.fixture(scope="module")
def phases_on_two_meshes():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu", PYTHONPATH=REPO_ROOT)
  completed = subprocess.run([sys.executable, "-c", PHASES_ON_TWO_MESHES], cwd=REPO_ROOT,
                             env=env, capture_output=True, text=True, timeout=900)
  assert completed.returncode == 0, completed.stderr[-3000:]
  line = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("phase", ["feature_warmup", "pixel_warmup", "joint"])
def test_each_phase_on_eight_devices_equals_one_device(phases_on_two_meshes, phase):
  result = phases_on_two_meshes[phase]
  one, eight = result["metrics"]
  for name, value in one.items():
    if name != "accuracy":
      assert abs(value - eight[name]) <= 1e-4 * max(abs(value), 1e-3), (name, result)
  for player, numbers in result["players"].items():
    # Only the order of the cross-device sums differs. A player the phase does not update is
    # bit-identical. SGD (features): every element within 5 % of the largest update. Adam's
    # first step moves every element by ± its rate, so an element whose gradient is at
    # rounding level may move either way (2x the rate apart): a few per thousand at most.
    if numbers["update"] == 0.0:
      assert numbers["difference"] == 0.0, (player, result)
    elif player == "features":
      assert numbers["difference"] <= 5e-2 * numbers["update"], (player, result)
    else:
      assert numbers["difference"] <= 2.01 * numbers["update"], (player, result)
      assert numbers["over_one_percent"] < 5e-3, (player, result)
    assert numbers["stats"] < 1e-3, (player, result)
  assert result["devices"] == [1, 8]
