"""A full disk (or quota) named as such, with the path whose write it stopped.

Every writer of the package writes into a temporary file or folder and renames it into place
when complete (orbax checkpoints, TFDS builds, `results.json`, dataset folders), so a write
that fails leaves the previous file as it was. What this module adds is the message: the
failure surfaces as an `OSError(ENOSPC)` from Python, or as another exception whose text says
"No space left on device" (TensorStore under orbax, TensorFlow's file system under TFDS), and
`reporting_full_disk` turns either into a `DiskFullError` that says the disk is full, names the
path and says that the previous data is intact.

Standard library only (the data package imports it without TensorFlow or JAX).
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

# errno values of a full file system and of an exhausted quota.
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# What libraries that wrap the C error put in their messages (strerror of the errnos above).
FULL_MESSAGES = ("No space left on device", "Disk quota exceeded", "ENOSPC", "EDQUOT")


class DiskFullError(OSError):
  """A write stopped because the file system (or the user's quota) is full.

  `errno` is ENOSPC, `filename` the path, and the message is the whole text (no "[Errno 28]").
  """

  def __str__(self):
    return self.strerror or super().__str__()


def is_disk_full(error: BaseException) -> bool:
  """Whether `error`, or an exception it was raised from, is a full disk or quota."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
      return True
    if any(text in str(error) for text in FULL_MESSAGES):
      return True
    error = error.__cause__ or error.__context__
  return False


@contextlib.contextmanager
def reporting_full_disk(path, what: str, kept: str = "") -> Iterator[None]:
  """Re-raises a full-disk failure inside the block as `DiskFullError` naming `path`.

  Args:
    path: the file or folder being written.
    what: what is written there, for the message ("the checkpoint of step 9").
    kept: what stays intact, for the message; default: "the previous version, if any".

  Any other exception passes unchanged.
  """
  try:
    yield
  except DiskFullError:
    raise
  except BaseException as error:  # pylint: disable=broad-except
    if not is_disk_full(error):
      raise
    raise DiskFullError(
        errno.ENOSPC,
        f"The disk is full: writing {what} to {path} failed ({type(error).__name__}: {error}). "
        f"{kept or 'The previous version, if any, is intact'}; free space (or move the "
        "folder to a disk with room) and start again.", str(path)) from error
