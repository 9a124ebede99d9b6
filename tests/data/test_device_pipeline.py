"""augment_on="device": what the pipeline ships, and what the step's augmentation makes of it.

The host batch carries the sampled uint8 images, their modalities and the views' seeds; the
jitted `DeviceAugmentation` turns it into the batch the host mode would have produced (same
keys, shapes, dtypes, the same images behind every row), whatever the number of processes or
devices.
"""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from vireid_jax.data import device_augment
from vireid_jax.data import pipeline
from vireid_jax.data import views
from vireid_jax.training import loop
from tests.data.test_train_pipeline import TRAIN
from tests.data.test_train_pipeline import data_config
from tests.data.test_train_pipeline import positions_of

CASES = [("agw", "agw"), ("agw", "caj"), ("mcja", "mcja"), ("djanet", "djanet"),
         ("domain_adaptation", "agw")]


def epoch(config, **kwargs):
  return list(pipeline.train_dataset(TRAIN, config, seed=3, epoch=1, target=TRAIN,
                                     **kwargs).as_numpy_iterator())


@pytest.mark.parametrize("sampler, augmentation", CASES)
def test_device_batches_carry_the_host_batches_images_and_become_its_views(sampler,
                                                                          augmentation):
  # pad 0 and no erasing: a constant image stays constant under every recipe's geometry, so
  # each view row still names the image it was made from.
  host_config = data_config(sampler=sampler, augmentation=augmentation, pad=0,
                            ids_per_batch=2, images_per_id=2, augment_on="host")
  device_config = data_config(sampler=sampler, augmentation=augmentation, pad=0,
                              ids_per_batch=2, images_per_id=2, augment_on="device")
  host, device = epoch(host_config), epoch(device_config)
  # The sampler's choice does not depend on the recipe: the "agw" views (geometry only) name
  # the image behind each row of every stream.
  sampled = epoch(data_config(sampler=sampler, augmentation="agw", pad=0, ids_per_batch=2,
                              images_per_id=2, augment_on="host"))
  augmentation_fn = pipeline.device_augmentation(TRAIN, device_config, seed=3, target=TRAIN)
  assert pipeline.device_augmentation(TRAIN, host_config, seed=3, target=TRAIN) is None
  planned = augmentation_fn.views
  seeds = views.augmentation_seeds(3, 1, len(host), len(planned))
  step = jax.jit(augmentation_fn)
  assert len(host) == len(device)
  for batch_index, (expected, shipped) in enumerate(zip(host, device)):
    # What the host mode also has (labels, modalities, indices) is shipped unchanged.
    for key in set(expected) - {view.key for view in planned}:
      np.testing.assert_array_equal(shipped[key], expected[key], err_msg=key)
    assert np.all(shipped[device_augment.SEEDS_KEY] == seeds[batch_index])
    for view in planned:
      images = shipped[device_augment.images_key(view.stream)]
      assert images.dtype == np.uint8
      np.testing.assert_array_equal(images[:, 0, 0, 0],
                                    positions_of(sampled[batch_index][view.stream]))
    made = jax.device_get(step(shipped))
    assert made.keys() == expected.keys()
    for key, value in expected.items():
      assert (made[key].shape, made[key].dtype) == (value.shape, value.dtype), key
    for view in planned:
      # The same images behind every row (the colour ops may change a constant's value).
      if augmentation == "agw":
        np.testing.assert_array_equal(positions_of(made[view.key]),
                                      positions_of(expected[view.key]))
    assert augmentation_fn.count_images(shipped) == loop.count_images(expected)


@pytest.mark.parametrize("sampler, augmentation, process_count", [
    ("agw", "caj", 2), ("mcja", "mcja", 4), ("aligngan", "agw", 2)])
def test_processes_concatenated_equal_the_single_process_device_batch(sampler, augmentation,
                                                                       process_count):
  config = data_config(sampler=sampler, augmentation=augmentation, pad=2, ids_per_batch=2,
                       images_per_id=4, augment_on="device", gan_ids_per_batch=2,
                       gan_images_per_id=2, batches_per_epoch=3)
  single = epoch(config)
  shares = [epoch(config, process_index=index, process_count=process_count)
            for index in range(process_count)]
  for batch_index, expected in enumerate(single):
    for key, value in expected.items():
      parts = [share[batch_index][key] for share in shares]
      np.testing.assert_array_equal(np.concatenate(parts), value, err_msg=key)


def test_auto_means_device_on_gpus_only_and_bad_values_name_the_field():
  assert device_augment.resolve_augment_on(data_config(augment_on="auto"), "gpu") == "device"
  assert device_augment.resolve_augment_on(data_config(augment_on="auto"), "cpu") == "host"
  assert device_augment.resolve_augment_on(data_config(augment_on="auto"), "tpu") == "host"
  assert device_augment.resolve_augment_on(data_config(augment_on="device"), "cpu") == "device"
  with pytest.raises(ValueError, match="config.data.augment_on='gpu'"):
    device_augment.resolve_augment_on(data_config(augment_on="gpu"))


def test_the_run_records_what_auto_resolved_to():
  """`loop.run` trains with, and the workdir records, "host" or "device", never "auto"; the
  config it was given is left as it was."""
  import ml_collections
  config = ml_collections.ConfigDict({"data": data_config(augment_on="auto"), "seed": 0})
  resolved = loop.resolve_augment_on(config)
  assert resolved.data.augment_on == "host"   # this test runs on a CPU
  assert config.data.augment_on == "auto" and resolved.data.pad == config.data.pad
  config.data.augment_on = "device"
  assert loop.resolve_augment_on(config) is config


# Run in a process of its own: eight CPU devices must be requested before JAX starts.
EIGHT_DEVICES = textwrap.dedent("""
    import numpy as np, jax
    from vireid_jax.data import pipeline
    from vireid_jax.training import parallel
    from tests.data.test_train_pipeline import TRAIN, data_config
    assert jax.device_count() == 8
    for sampler, augmentation in (("agw", "caj"), ("mcja", "mcja")):
      config = data_config(sampler=sampler, augmentation=augmentation, pad=2, ids_per_batch=2,
                           images_per_id=4, random_erasing="llcm", augment_on="device")
      augmentation_fn = pipeline.device_augmentation(TRAIN, config, seed=3)
      batch = next(pipeline.train_dataset(TRAIN, config, seed=3, epoch=0).as_numpy_iterator())
      one_device = parallel.make_mesh(jax.devices()[:1])
      eight_devices = parallel.make_mesh()
      outputs = []
      for mesh in (one_device, eight_devices):
        step = jax.jit(augmentation_fn, in_shardings=parallel.batch_sharded(mesh),
                       out_shardings=parallel.replicated(mesh))
        outputs.append(jax.device_get(step(parallel.global_batch(batch, mesh))))
      for key in outputs[0]:
        np.testing.assert_array_equal(outputs[1][key], outputs[0][key], err_msg=key)
      # The views are a function of the shipped seeds: the same seeds, the same views; others,
      # other views (the one-device program again, no new compilation).
      again = jax.device_get(step(parallel.global_batch(batch, eight_devices)))
      batch["augmentation_seeds"] = batch["augmentation_seeds"] + 1
      other = jax.device_get(step(parallel.global_batch(batch, eight_devices)))
      for view in augmentation_fn.views:
        np.testing.assert_array_equal(again[view.key], outputs[1][view.key])
        assert not np.array_equal(other[view.key], outputs[1][view.key]), view.key
      print("same", sampler, augmentation, sorted(outputs[0]))
""")


def test_eight_devices_compute_the_views_one_device_computes_and_seeds_decide_them():
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=root,
             JAX_DISABLE_MOST_OPTIMIZATIONS="true")
  completed = subprocess.run([sys.executable, "-c", EIGHT_DEVICES], cwd=root, env=env,
                             capture_output=True, text=True, timeout=600)
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert completed.stdout.count("same") == 2
  assert "visible_augmented" in completed.stdout and "'images'" in completed.stdout
