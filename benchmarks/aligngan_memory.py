"""Peak device memory of AlignGAN's compiled train step at the reference's sizes.

  python benchmarks/aligngan_memory.py                              # every phase, f32 and bf16
  python benchmarks/aligngan_memory.py --dtypes=bfloat16 --remat=true

The reference needs a 40 GB GPU for its batch (IDE 18 x 4 per modality at 384 x 192 through
the encoder, GAN 4 x 4 at 128 x 128). This lowers the step of each phase on its own
(`AlignGANMethod.train_step` with its `phase`) and the whole step (`train_step`, whose branches share one
program) for abstract inputs and reads XLA's memory analysis of the compiled program: no GPU,
no data, no weights are needed (the figures are those of the backend it runs on; the default
is this machine's). The state is donated, as the training loop does. Needs no TensorFlow.
"""

from __future__ import annotations

import os
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import aligngan as aligngan_configs  # noqa: E402
from vireid_jax import methods  # noqa: E402
from vireid_jax.methods import aligngan  # noqa: E402
from vireid_jax.methods.base import DataInfo  # noqa: E402

flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes.")
flags.DEFINE_list("phases", list(aligngan.PHASES), "Phases to lower.")
flags.DEFINE_bool("remat", False, "config.aligngan.remat_encoder.")
FLAGS = flags.FLAGS

GIB = 2.0**30


def abstract_inputs(config):
  """The state and one batch at the config's sizes, as ShapeDtypeStructs."""
  method = methods.resolve(config)
  info = DataInfo(num_classes=395, num_visible=22258, num_infrared=11909, steps_per_epoch=100)
  state = jax.eval_shape(lambda: method.create_state(info))
  data = config.data
  image = lambda rows: jax.ShapeDtypeStruct((rows, data.image_height, data.image_width, 3),
                                            jnp.float32)
  labels = lambda rows: jax.ShapeDtypeStruct((rows,), jnp.int32)
  ide = data.ids_per_batch * data.images_per_id
  gan = data.gan_ids_per_batch * data.gan_images_per_id
  batch = {"visible": image(ide), "infrared": image(ide), "visible_labels": labels(ide),
           "infrared_labels": labels(ide), "gan_visible": image(gan), "gan_infrared": image(gan),
           "gan_visible_labels": labels(gan), "gan_infrared_labels": labels(gan)}
  return method, state, batch


def measure(dtype: str, phase: str) -> dict:
  config = aligngan_configs.get_config("sysu")
  config.model.dtype = dtype
  config.model.pretrained = "none"
  config.aligngan.remat_encoder = FLAGS.remat
  method, state, batch = abstract_inputs(config)
  index = aligngan.PHASES.index(phase)
  step = lambda state, batch: method.train_step(state, batch, index)
  start = time.time()
  compiled = jax.jit(step, donate_argnums=0).lower(state, batch).compile()
  seconds = time.time() - start
  analysis = compiled.memory_analysis()
  # The program's device memory: its arguments (the donated state and the batch), its
  # temporaries (one buffer sized by XLA's heap simulation of their live ranges) and the outputs
  # that do not reuse a donated argument's buffer. (`peak_memory_in_bytes` would be the same
  # figure, but the CPU backend leaves the temporaries out of it.)
  arguments = analysis.argument_size_in_bytes
  temporaries = analysis.temp_size_in_bytes
  outputs = analysis.output_size_in_bytes - analysis.alias_size_in_bytes
  return {"dtype": dtype, "phase": phase, "arguments": arguments / GIB,
          "temporaries": temporaries / GIB, "peak": (arguments + temporaries + outputs) / GIB,
          "compile_s": seconds}


def main(argv):
  del argv
  print(f"backend {jax.default_backend()}, remat_encoder={FLAGS.remat}")
  print("| phase | dtype | arguments (GiB) | temporaries (GiB) | peak (GiB) | compile (s) |")
  print("|---|---|--:|--:|--:|--:|")
  for dtype in FLAGS.dtypes:
    for phase in FLAGS.phases:
      row = measure(dtype, phase)
      print(f"| {row['phase']} | {row['dtype']} | {row['arguments']:.2f} | "
            f"{row['temporaries']:.2f} | {row['peak']:.2f} | {row['compile_s']:.0f} |",
            flush=True)


if __name__ == "__main__":
  app.run(main)
