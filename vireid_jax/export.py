"""Export a trained model's evaluation feature of one modality: StableHLO and ONNX.

  python -m vireid_jax.export --checkpoint runs/demo --modality infrared --output_dir exports/demo
  python -m vireid_jax.export --checkpoint agw_sysu.t --config configs/sysu.py \
      --modality visible --output_dir exports/agw_sysu

`--checkpoint` is a workdir (its newest checkpoint, with the `config.json` it recorded), its
`checkpoints/` folder, one step's folder, or a method's released PyTorch file (`.pth`, `.t`,
or the torch-free `.npz`) with `--config`. Written to `--output_dir`, each file complete or not
at all:

  <modality>.jax_export   `jax.export` serialized (StableHLO, batch dimension symbolic):
                          `jax.export.deserialize(open(path, "rb").read()).call(images)`
  <modality>.onnx         the same function as an ONNX model (jax2onnx; opset 23), input
                          "images", output "features"
  <modality>.json         the contract below, the checkpoint, step, method and feature

The contract of both: `images` uint8 [b, H, W, 3], RGB (an infrared image as its three equal
channels, as the datasets store it), H x W the config's `data.image_height` x `image_width`
(resize first, as the dataset build does: PIL's Lanczos, or `config.data.resize_filter`),
any batch size b; `features` float32 [b, D], the feature the evaluation ranks by (`config.eval.main_feature`, or
`--feature`), normalised inside as evaluation does it (divide by 255, ImageNet mean and
standard deviation) and, with `config.eval.flip` (CAJ), averaged with the mirrored image's and
re-normalised. Rank a gallery by the distance evaluation uses (`config.eval.distance`, in the
contract: "cosine" or "euclidean"). Re-ranking (`config.eval.rerank`, e.g. MCJA's MSER over
spectral views of the images) is evaluation's, on top of these features, and not exported.

Which methods export: StableHLO, every method. ONNX (jax2onnx 0.17.1, after the rewrites of
`onnx_compatible`): AGW (tested), CAJ, MMN, MCJA, AlignGAN and DAN (checked on tiny models:
features within 1e-6 relative of the model's); not DJANet, whose Mamba selective scan runs
`lax.associative_scan` inside a `lax.scan` over chunks (vireid_jax/ops/selective_scan.py):
the scan's interleaving pads with interior padding, which jax2onnx cannot lower ("lax.pad with
interior padding > 0 is not supported in ONNX Pad"), and the rewrites do not enter the bodies
of loops. Export DJANet as StableHLO.

The ONNX file needs the `export` extra and jax2onnx (`pip install 'vireid-jax[export]' && pip
install --no-deps jax2onnx==0.17.1`, README); the StableHLO file needs JAX only. Neither needs
TensorFlow.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

FORMATS = ("stablehlo", "onnx")
SUFFIXES = {"stablehlo": ".jax_export", "onnx": ".onnx", "contract": ".json"}
INPUT_NAME = "images"
OUTPUT_NAME = "features"
# The symbol of the batch dimension in both artifacts.
BATCH = "b"

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "The experiment config the checkpoint was trained with (configs/*.py). "
    "Optional for a workdir (its config.json is read); required for a PyTorch file.",
    lock_config=True)
flags.DEFINE_string("checkpoint", None, "A workdir, its checkpoints/ folder, one step's "
                    "folder, or a PyTorch checkpoint file (.pth, .pt, .t, .tar, .npz).")
flags.DEFINE_enum("modality", None, ["visible", "infrared"],
                  "The stem the exported images go through.")
flags.DEFINE_string("output_dir", None, "Folder for <modality>.jax_export, .onnx and .json.")
flags.DEFINE_string("feature", None, "Feature to export (default: config.eval.main_feature).")
flags.DEFINE_list("formats", list(FORMATS), f"Any of {', '.join(FORMATS)}.")


class ExportError(RuntimeError):
  """A format that cannot be written here (converter missing, an op it cannot convert)."""


def input_spec(image_size: tuple[int, int]) -> Any:
  """The images' abstract value: uint8 [b, H, W, 3] with a symbolic batch dimension b."""
  import jax
  import jax.numpy as jnp
  height, width = image_size
  return jax.ShapeDtypeStruct(jax.export.symbolic_shape(f"{BATCH}, {height}, {width}, 3"),
                              jnp.uint8)


def export_stablehlo(fn: Callable, image_size: tuple[int, int]) -> bytes:
  """`fn(images uint8 [b, H, W, 3]) -> [b, D]` as serialized `jax.export` bytes (StableHLO,
  for the CPU, CUDA and TPU platforms that this JAX can lower to, b symbolic)."""
  import jax
  exported = jax.export.export(jax.jit(fn), platforms=_platforms())(input_spec(image_size))
  return bytes(exported.serialize())


def _platforms() -> tuple[str, ...]:
  # A deployment machine often has another accelerator than the exporting one; CPU always.
  import jax
  platforms = ["cpu"]
  for platform in ("cuda", "tpu"):
    try:
      jax.export.export(jax.jit(lambda x: x + 1), platforms=[platform])(
          jax.ShapeDtypeStruct((1,), "float32"))
      platforms.append(platform)
    except Exception:   # pylint: disable=broad-except  # no lowering for it in this jaxlib
      pass
  return tuple(platforms)


def export_onnx(fn: Callable, image_size: tuple[int, int]) -> bytes:
  """`fn(images uint8 [b, H, W, 3]) -> [b, D]` as a serialized ONNX model (jax2onnx).

  Raises:
    ExportError: jax2onnx is not installed, or cannot convert an operation (named).
  """
  try:
    import jax2onnx
  except ImportError as error:
    raise ExportError("ONNX export needs jax2onnx: pip install 'vireid-jax[export]' && pip "
                      "install --no-deps jax2onnx==0.17.1 (README, Installs), or "
                      "--formats=stablehlo for the StableHLO file only.") from error
  import logging as python_logging
  # onnx_ir warns about every constant of unknown type it skips while serialising.
  python_logging.getLogger("onnx_ir").setLevel(python_logging.ERROR)
  try:
    spec = input_spec(image_size)
    model = jax2onnx.to_onnx(onnx_compatible(fn, spec), [spec],
                             model_name="vireid_features", input_names=[INPUT_NAME],
                             output_names=[OUTPUT_NAME])
  except Exception as error:   # pylint: disable=broad-except  # whatever the converter raises
    raise ExportError(f"jax2onnx could not convert this model ({type(error).__name__}: "
                      f"{error})") from error
  return model.SerializeToString()


def onnx_compatible(fn: Callable, *specs: Any) -> Callable:
  """`fn`, traced once at `specs`, as a function of JAX primitives that jax2onnx converts.

  Rewritten, with the same values exactly (jax2onnx 0.17.1's failures in brackets):
  * `reduce_window_max` over H and W of [B, H, W, C] (the ResNet stem's 3 x 3 / 2 max-pool)
    as the maximum of its kh x kw strided slices [lowered to a MaxPool over every axis,
    batch and channels included, which onnxruntime refuses: "Unsupported pooling size"];
  * a `gather` that is one slice at a symbolic start (`rows[:b]`, `rows[b:]` of MMN's
    [originals; middle images]) and `split` (AlignGAN) as `slice`s [int() of the symbolic
    batch: InconclusiveDimensionOperation];
  * `pad` through `jnp.pad`, and interior padding (`lax.associative_scan` in DJANet's Mamba
    scan) as a stack and reshape [int() of the symbolic batch; "interior padding > 0 is not
    supported"].
  Everything else is re-emitted as traced; nested `jit`s and custom-derivative calls are
  inlined (only the forward pass is exported).

  `fn` is traced here, by JAX, not inside jax2onnx: jax2onnx traces Python code with its own
  replacements of `jnp` and `nnx` functions, whose shapes of a symbolic batch are wrong where
  a model concatenates two batches and splits them again (MMN's originals and middle images:
  "add got incompatible shapes (floordiv(b, 2), 256), (b - floordiv(b, 2), 256)").

  Args:
    fn: the function to convert.
    *specs: its arguments' `jax.ShapeDtypeStruct`s (symbolic dimensions allowed) or arrays.
  """
  import jax
  closed, output_shapes = jax.make_jaxpr(fn, return_shape=True)(*specs)
  output_tree = jax.tree.structure(output_shapes)

  def rewritten(*args):
    return jax.tree.unflatten(output_tree, _evaluate(closed.jaxpr, closed.consts, args))

  return rewritten


# Primitives whose body is inlined: the jaxpr parameter that holds it.
_INLINED = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr",
            "custom_jvp_call": "call_jaxpr", "custom_vjp_call": "call_jaxpr"}


def _evaluate(jaxpr, consts: Sequence[Any], args: Sequence[Any],
              static_args: Sequence[Any] = ()) -> list[Any]:
  from jax.extend import core as jex_core
  values = {}
  # Scalars known at trace time, symbolic ones (`dim_as_value` of the batch) included, by
  # variable: how `x[:n]` / `x[n:]` with a symbolic n reach a gather, and a pad its value.
  static = {var: value for var, value in zip(jaxpr.invars, static_args) if value is not None}

  def read(atom):
    return atom.val if isinstance(atom, jex_core.Literal) else values[atom]

  def static_value(atom):
    if isinstance(atom, jex_core.Literal):
      return atom.val
    return static.get(atom)

  for var, value in zip(jaxpr.constvars, consts):
    values[var] = value
  for var, value in zip(jaxpr.invars, args):
    values[var] = value
  for equation in jaxpr.eqns:
    inputs = [read(atom) for atom in equation.invars]
    name = equation.primitive.name
    if name == "dim_as_value":
      static[equation.outvars[0]] = equation.params["dim"]
    elif name in ("convert_element_type", "broadcast_in_dim") and \
        static_value(equation.invars[0]) is not None and equation.outvars[0].aval.size == 1:
      static[equation.outvars[0]] = static_value(equation.invars[0])
    slice_axis = _slice_axis(equation, inputs[0].shape) if name == "gather" else None
    if name == "reduce_window_max" and _is_spatial_window(equation.params, inputs[0].ndim):
      outputs = [_max_pool_by_slices(inputs[0], **equation.params)]
    elif (name == "pad" and static_value(equation.invars[1]) is not None
          and all(low >= 0 and high >= 0 for low, high, _ in equation.params["padding_config"])):
      # jax2onnx's lowering of the pad primitive calls int() on a symbolic batch and has no
      # interior padding (lax.associative_scan's interleaving, in Mamba's selective scan);
      # jnp.pad, called while jax2onnx traces, goes through its own lowering, which handles
      # the former; interior padding becomes a stack with the padding value and a reshape.
      outputs = [_pad(inputs[0], static_value(equation.invars[1]),
                      equation.params["padding_config"])]
    elif name == "split":
      # jax2onnx lowers split through int(size) of each part, a symbolic batch's included.
      import jax
      axis, start, outputs = equation.params["axis"], 0, []
      for size in equation.params["sizes"]:
        outputs.append(jax.lax.slice_in_dim(inputs[0], start, start + size, axis=axis))
        start = start + size
    elif slice_axis is not None and static_value(equation.invars[1]) is not None:
      # jax2onnx lowers a gather of a symbolic size through int(size) and fails; a slice
      # with symbolic bounds it converts.
      import jax
      start = static_value(equation.invars[1])
      start = start if isinstance(start, int) or not hasattr(start, "reshape") else \
          start.reshape(-1)[0]
      size = equation.params["slice_sizes"][slice_axis]
      outputs = [jax.lax.slice_in_dim(inputs[0], start, start + size, axis=slice_axis)]
    elif name in _INLINED and _INLINED[name] in equation.params:
      body = equation.params[_INLINED[name]]
      closed_consts = getattr(body, "consts", ())
      body = getattr(body, "jaxpr", body)
      outputs = _evaluate(body, closed_consts, inputs,
                          [static_value(atom) for atom in equation.invars])
    else:
      # As jax.core.eval_jaxpr binds an equation (JAX 0.10).
      with equation.ctx.manager:
        outputs = equation.primitive.bind(
            *inputs, **equation.primitive.get_bind_params(equation.params))
      if not equation.primitive.multiple_results:
        outputs = [outputs]
    for var, value in zip(equation.outvars, outputs):
      values[var] = value
  return [read(atom) for atom in jaxpr.outvars]


def _pad(x, value, padding_config):
  """`lax.pad` with non-negative edge padding, in `jnp` operations that jax2onnx converts."""
  import jax
  import jax.numpy as jnp
  for axis, (_, _, interior) in enumerate(padding_config):
    if interior:
      # [..., n, ...] -> [..., n, 1 + interior, ...] -> [..., n (1 + interior), ...], less the
      # padding after the last element.
      filler = jnp.full_like(x, value)
      x = jnp.stack([x] + [filler] * interior, axis=axis + 1)
      shape = list(x.shape)
      x = x.reshape(shape[:axis] + [shape[axis] * (1 + interior)] + shape[axis + 2:])
      x = jax.lax.slice_in_dim(x, 0, x.shape[axis] - interior, axis=axis)
  return jnp.pad(x, [(low, high) for low, high, _ in padding_config], constant_values=value)


def _slice_axis(equation, operand_shape) -> int | None:
  """The axis of a gather that is one contiguous slice along it (`x[a:b]`), else None."""
  numbers = equation.params["dimension_numbers"]
  sizes = equation.params["slice_sizes"]
  rank = len(operand_shape)
  if (tuple(numbers.offset_dims) != tuple(range(rank)) or numbers.collapsed_slice_dims
      or numbers.operand_batching_dims or len(numbers.start_index_map) != 1
      or equation.invars[1].aval.shape != (1,)):
    return None
  axis = numbers.start_index_map[0]
  if any(sizes[d] is not operand_shape[d] and sizes[d] != operand_shape[d]
         for d in range(rank) if d != axis):
    return None
  return axis


def _is_spatial_window(params: dict, ndim: int) -> bool:
  """A [B, H, W, C] max-pool: window and stride 1 over B and C, no dilation."""
  window, strides = params["window_dimensions"], params["window_strides"]
  return (ndim == 4 and window[0] == window[3] == 1 and strides[0] == strides[3] == 1
          and tuple(params["padding"][0]) == tuple(params["padding"][3]) == (0, 0)
          and all(d == 1 for d in params["base_dilation"])
          and all(d == 1 for d in params["window_dilation"]))


def _max_pool_by_slices(x, *, window_dimensions, window_strides, padding, **unused_params):
  """`reduce_window_max` over H and W of [B, H, W, C] as a maximum of strided slices."""
  import jax.numpy as jnp
  del unused_params
  _, window_h, window_w, _ = window_dimensions
  _, stride_h, stride_w, _ = window_strides
  x = jnp.pad(x, [tuple(pair) for pair in padding], constant_values=-jnp.inf)
  out_h = (x.shape[1] - window_h) // stride_h + 1
  out_w = (x.shape[2] - window_w) // stride_w + 1
  result = None
  for row in range(window_h):
    for column in range(window_w):
      window = x[:, row:row + stride_h * (out_h - 1) + 1:stride_h,
                 column:column + stride_w * (out_w - 1) + 1:stride_w]
      result = window if result is None else jnp.maximum(result, window)
  return result


def export(model: Any, modality: str, output_dir: str, *, feature: str | None = None,
           formats: Sequence[str] = FORMATS) -> dict[str, str]:
  """Writes the artifacts of `model`'s evaluation feature for `modality` (module docstring).

  Args:
    model: a `vireid_jax.inference.InferenceModel` (`load_model_for_inference`).
    modality: "visible" or "infrared".
    output_dir: created if missing; existing files of the same names are replaced.
    feature: default `config.eval.main_feature`.
    formats: any of FORMATS.

  Returns:
    {"stablehlo" / "onnx" / "contract": path written}.

  Raises:
    ValueError: an unknown format, modality or feature.
    ExportError: the ONNX converter is missing or fails (the StableHLO file, if asked for, is
      written first).
  """
  import jax
  from vireid_jax import inference
  from vireid_jax.evaluation import report

  unknown = sorted(set(formats) - set(FORMATS))
  if unknown or not formats:
    raise ValueError(f"formats {list(formats)}: expected one or more of {', '.join(FORMATS)}.")
  feature = feature or model.config.eval.main_feature
  fn = inference.evaluation_feature_fn(model, modality, feature)
  height, width = model.image_size
  dimension = jax.eval_shape(fn, jax.ShapeDtypeStruct((1, height, width, 3), "uint8")).shape[-1]
  os.makedirs(output_dir, exist_ok=True)
  paths = {}
  precision = model.config.get("train", {}).get("matmul_precision", "default")
  # The precision evaluation runs with is recorded in the exported matrix products.
  with jax.default_matmul_precision(precision):
    for kind, serialize in (("stablehlo", export_stablehlo), ("onnx", export_onnx)):
      if kind in formats:
        paths[kind] = os.path.join(output_dir, modality + SUFFIXES[kind])
        report.write_file_atomically(paths[kind], serialize(fn, (height, width)))
  contract = {
      "modality": modality,
      "feature": feature,
      "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": [BATCH, height, width, 3],
                "layout": "NHWC, RGB",
                "normalisation": "inside: /255, ImageNet mean and standard deviation"},
      "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [BATCH, int(dimension)]},
      "flip_averaged": bool(model.config.eval.get("flip", False)),
      "distance": model.config.eval.get("distance", "cosine"),
      "method": model.config.get("method", "agw"),
      "checkpoint": model.source,
      "step": model.step,
      "files": {kind: os.path.basename(path) for kind, path in paths.items()},
  }
  paths["contract"] = os.path.join(output_dir, modality + SUFFIXES["contract"])
  report.write_file_atomically(paths["contract"],
                               (json.dumps(contract, indent=2) + "\n").encode("utf-8"))
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  for name in ("checkpoint", "modality", "output_dir"):
    if FLAGS[name].value is None:
      raise app.UsageError(f"--{name} is required.")
  if not FLAGS["verbosity"].present:
    # Orbax's and jax2onnx's log lines say nothing a person exporting needs;
    # --verbosity=0 brings them back.
    logging.set_verbosity(logging.ERROR)
  # Imported here so that --help answers without loading JAX.
  from vireid_jax import inference
  from vireid_jax.training import orbax_checkpoints
  try:
    model = inference.load_model_for_inference(FLAGS.checkpoint, FLAGS.config)
    paths = export(model, FLAGS.modality, FLAGS.output_dir, feature=FLAGS.feature,
                   formats=FLAGS.formats)
  except (FileNotFoundError, ValueError, ExportError,
          orbax_checkpoints.CheckpointMismatchError) as error:
    print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  for kind, path in paths.items():
    print(f"{kind}: {path}")


if __name__ == "__main__":
  app.run(main)
