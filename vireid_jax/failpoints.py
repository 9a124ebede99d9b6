"""Named points where a fault-injection test can SIGKILL the process (tests only).

`VIREID_FAILPOINTS="name:hit[,name:hit...]"` makes the process kill itself with SIGKILL (no
clean-up, no `finally`, no atexit: what a preemption or the OOM killer does) the `hit`-th time
(1-based) it reaches the point `name`. Unset, `hit` does nothing but one dictionary lookup.
The variable is read on the first `hit` call, not at import: the test launcher
(tests/training/main_runs.py) imports the package before it forks each run with its own
environment.

The points, each inside a write or computation that a kill must not corrupt:
  "train_step": a training step has run, its state is not saved yet (training/loop.py).
  "checkpoint_write": orbax's asynchronous save of a step has started, not committed
    (training/orbax_checkpoints.py).
  "checkpoint_manifest": a step has committed, its `checksums.json` is not written yet.
  "evaluation": one (protocol, feature) of an evaluation is scored, the rest are not
    (evaluation/evaluator.py).
  "tfrecord_example": the TFDS build has produced that many examples, into its temporary
    folder (data/builders/common.py).
  "rename:<file name>": an atomic write's temporary file is complete and synced, not yet
    renamed over <file name> (e.g. "rename:results.json:1"; evaluation/report.py).

tests/training/test_fault_injection.py kills a run at each and checks that the restarted run
ends with the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import os
import signal

ENVIRONMENT_VARIABLE = "VIREID_FAILPOINTS"

# {name: hit} of this process, parsed on first use; None until then.
_armed: dict[str, int] | None = None
_reached: dict[str, int] = {}


def parse(text: str) -> dict[str, int]:
  """"name:hit,name:hit" → {name: hit}; the hit is after the last colon (names may hold one).

  Raises:
    ValueError: an entry without a positive integer hit, naming the variable and the entry.
  """
  armed = {}
  for entry in filter(None, (part.strip() for part in text.split(","))):
    name, _, count = entry.rpartition(":")
    if not name or not count.isdigit() or int(count) < 1:
      raise ValueError(f"{ENVIRONMENT_VARIABLE}={text!r}: the entry {entry!r} is not "
                       "name:hit with a hit of 1 or more (e.g. checkpoint_write:2).")
    armed[name] = int(count)
  return armed


def hit(name: str) -> None:
  """Counts one arrival at the point `name`; SIGKILLs this process on the armed arrival."""
  global _armed
  if _armed is None:
    _armed = parse(os.environ.get(ENVIRONMENT_VARIABLE, ""))
  if name not in _armed:
    return
  _reached[name] = _reached.get(name, 0) + 1
  if _reached[name] == _armed[name]:
    os.kill(os.getpid(), signal.SIGKILL)
