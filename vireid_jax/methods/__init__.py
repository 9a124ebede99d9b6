"""One module per published system, each built from the shared models, losses and ops.

Every method is a subclass of `vireid_jax.methods.base.Method` (read that module's docstring:
it is the whole contract the training loop is written against). `main.py` resolves the method
named by `config.method` and hands it to the loop; the loop never imports this package.

`config.method` is
  * the name of a module in this package ("agw"): adding `methods/<name>.py` adds the method;
  * a module path of your own ("my_project.my_method"), or
  * "module.path:ClassName".
A module names its method class in its `METHOD` attribute.

Adding a method adds files only:
  1. `vireid_jax/methods/<name>.py`: the paper's method section as code (model, each loss with
     its weight, the order of updates) and `METHOD = <its Method subclass>`;
  2. `configs/<name>.py`: `get_config(dataset)` for "sysu", "regdb", "llcm" and "synthetic"
     (`configs/datasets.py` sets the data fields), setting `config.method = "<name>"`, its
     sampler and augmentation (registries in `vireid_jax.data.sampling` and
     `vireid_jax.data.augment`) and every field the paper varies, at the paper's value;
  3. optionally `vireid_jax/models/<name>.py` for a new network (with its PyTorch key map
     beside it) and new entries in the data registries.
"""

from __future__ import annotations

import importlib
import importlib.util

from vireid_jax.methods import base


def _import(module_path: str, what: str):
  try:
    return importlib.import_module(module_path)
  except ModuleNotFoundError as error:
    if error.name and module_path.startswith(error.name):
      raise ValueError(f"config.method={what!r}: no module {module_path!r}. Name a module of "
                       f"vireid_jax/methods ({', '.join(available())}), a module path of your "
                       "own, or 'module.path:ClassName'.") from None
    raise


def available() -> list[str]:
  """The methods of this package, by name."""
  import pkgutil
  return sorted(info.name for info in pkgutil.iter_modules(__path__)
                if info.name not in ("base",) and not info.name.startswith("_"))


def method_class(name: str) -> type[base.Method]:
  """The `Method` subclass that `config.method` names (see the module docstring)."""
  module_path, _, class_name = name.partition(":")
  if "." not in module_path and not class_name:
    if importlib.util.find_spec(f"vireid_jax.methods.{module_path}") is None or \
        module_path == "base":
      raise ValueError(f"Unknown config.method={name!r}; available: "
                       f"{', '.join(available())}, or a module path of your own method.")
    module_path = f"vireid_jax.methods.{module_path}"
  module = _import(module_path, name)
  attribute = class_name or "METHOD"
  if not hasattr(module, attribute):
    raise ValueError(f"config.method={name!r}: module {module.__name__} has no {attribute!r}; "
                     "a method module names its Method subclass in METHOD "
                     "(or use 'module.path:ClassName').")
  return getattr(module, attribute)


def resolve(config) -> base.Method:
  """The method `config.method` names, built with `config` and checked against the contract."""
  cls = method_class(config.method)
  if not (isinstance(cls, type) and issubclass(cls, base.Method)):
    raise base.MethodError(f"config.method={config.method!r} names {cls!r}, not a subclass of "
                           "vireid_jax.methods.base.Method.")
  return base.check(cls(config))
