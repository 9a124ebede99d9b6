"""Multi-host input: each process's share of a batch, and their union = the global batch."""

import numpy as np
import pytest

from vireid_jax.data import pipeline
from tests.data.test_train_pipeline import TRAIN
from tests.data.test_train_pipeline import data_config


def epoch_batches(config, **kwargs):
  return list(pipeline.train_dataset(TRAIN, config, seed=5, epoch=2, target=TRAIN,
                                     **kwargs).as_numpy_iterator())


@pytest.mark.parametrize("sampler, augmentation, process_count", [
    ("agw", "caj", 2),              # three views, CAJ erasing and channel ops
    ("mcja", "mcja", 4),            # VIMC on the visible rows of a mixed stream
    ("djanet", "djanet", 2),        # four views, brightness, ChannelT
    ("domain_adaptation", "agw", 2),  # source and target streams
])
def test_processes_concatenated_equal_the_single_process_batch(sampler, augmentation,
                                                                process_count):
  config = data_config(sampler=sampler, augmentation=augmentation, pad=2, ids_per_batch=2,
                       images_per_id=4, random_erasing="llcm")
  single = epoch_batches(config)
  shares = [epoch_batches(config, process_index=index, process_count=process_count)
            for index in range(process_count)]
  assert all(len(share) == len(single) for share in shares)
  for batch_index, expected in enumerate(single):
    for key, value in expected.items():
      parts = [share[batch_index][key] for share in shares]
      # Process p holds rows [p * R / n, (p + 1) * R / n).
      assert all(len(part) == len(value) // process_count for part in parts)
      np.testing.assert_array_equal(np.concatenate(parts), value, err_msg=key)
