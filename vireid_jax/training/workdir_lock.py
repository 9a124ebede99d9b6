"""One live training run per workdir: an OS file lock in `<workdir>/run.lock`.

Two runs on one workdir would write the same checkpoints, summaries and results, silently
mixing two experiments (or two copies of one). A run therefore holds an exclusive
`fcntl.flock` on `<workdir>/run.lock` for its whole life. The kernel releases the lock when
the process ends, however it ends (SIGKILL, out of memory, a preempted node), so a killed run
never blocks the next one; the file itself stays and means nothing without the lock. The
holder writes its process id, host and start time into the file, so a second run can say who
holds the workdir.

`--mode eval` does not take the lock (it only reads committed checkpoints, which orbax renames
into place complete), and in a multi-host run only process 0 takes it: the others share its
workdir by design. `flock` works on local file systems and on NFS (Linux emulates it with
POSIX locks there); a file system without locks (some FUSE mounts) stops the run with the
error it gives.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator

LOCK_FILE_NAME = "run.lock"


class WorkdirLockedError(RuntimeError):
  """Another live process holds the workdir's lock."""


def lock_path(workdir: str) -> str:
  return os.path.join(workdir, LOCK_FILE_NAME)


def _holder(descriptor: int) -> dict:
  """What the holder wrote into the lock file ({} while it has not written it yet)."""
  # The holder writes its record just after taking the lock: give it a moment.
  for _ in range(20):
    os.lseek(descriptor, 0, os.SEEK_SET)
    text = os.read(descriptor, 4096).decode("utf-8", errors="replace")
    try:
      return json.loads(text)
    except json.JSONDecodeError:
      time.sleep(0.05)
  return {}


def acquire(workdir: str) -> int:
  """Takes the workdir's lock without waiting; returns the lock file's descriptor.

  Raises:
    WorkdirLockedError: another process holds it; the message names the workdir and the
      holder's process id and host.
  """
  os.makedirs(workdir, exist_ok=True)
  path = lock_path(workdir)
  # Not inherited by programs this process executes (os.open's default): only this process
  # (and children forked without exec) can keep the lock alive.
  descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as error:
    if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      os.close(descriptor)
      raise
    holder = _holder(descriptor)
    os.close(descriptor)
    who = (f"process {holder.get('pid', '?')} on host {holder.get('host', '?')} (started "
           f"{holder.get('started', '?')})" if holder else "another process (it has not yet "
           "written its process id)")
    raise WorkdirLockedError(
        f"The workdir {os.path.abspath(workdir)} is in use by a running training: {who} holds "
        f"its lock {path}. Two runs on one workdir would write the same checkpoints. Wait for "
        "it to end (or stop it), use another --workdir, or evaluate it meanwhile with "
        "--mode=eval (which reads its newest committed checkpoint).") from None
  record = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
  os.ftruncate(descriptor, 0)
  os.pwrite(descriptor, (json.dumps(record) + "\n").encode("utf-8"), 0)
  return descriptor


def release(descriptor: int) -> None:
  fcntl.flock(descriptor, fcntl.LOCK_UN)
  os.close(descriptor)


@contextlib.contextmanager
def hold(workdir: str, *, take: bool = True) -> Iterator[None]:
  """Holds the workdir's lock for the block (nothing with `take=False`: eval, processes > 0).

  Raises:
    WorkdirLockedError: see `acquire`.
  """
  if not take:
    yield
    return
  descriptor = acquire(workdir)
  try:
    yield
  finally:
    release(descriptor)
